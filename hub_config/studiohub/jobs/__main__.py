"""``python -m studiohub.jobs``: run the training jobs service (JupyterHub starts it)."""

from .app import main

main()
