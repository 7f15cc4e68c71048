"""StudioHub: a self-hostable ML workspace on JupyterHub."""

__version__ = "0.1.0"
