"""Notebook sharing from JupyterLab: this server calls the hub's sharing service for the
user (:mod:`.client`), reading notebooks through the contents manager
(:mod:`.notebooks`); routes in :mod:`.handlers` (docs/sharing.md)."""
