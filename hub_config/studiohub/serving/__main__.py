"""``python -m studiohub.serving``: run the models service (JupyterHub starts it)."""

from .app import main

main()
