"""``python -m studiohub.sharing``: run the sharing service (JupyterHub starts it)."""

from .app import main

main()
