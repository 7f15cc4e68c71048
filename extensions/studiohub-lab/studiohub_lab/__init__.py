"""StudioHub's Jupyter server extension, shipped with the prebuilt JupyterLab extension.

``jupyter server extension enable studiohub_lab`` (done by ``pip install studiohub``
through ``etc/jupyter/jupyter_server_config.d/studiohub_lab.json``) loads
:class:`~studiohub_lab.app.StudioHubLab`, whose routes live under
``<base_url>studiohub/api/v1/``.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .app import StudioHubLab

__all__ = ["StudioHubLab", "__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "@studiohub/lab"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "studiohub_lab", "app": StudioHubLab}]
