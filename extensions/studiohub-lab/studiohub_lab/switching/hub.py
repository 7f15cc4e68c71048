"""The hub's StudioHub API (``studiohub.hubapi``), called with this server's own token.

Only inside a JupyterHub-spawned server: ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``
and ``JUPYTERHUB_USER`` say where the hub is and who we are; ``STUDIOHUB_SWITCHING``
(read through :mod:`studiohub.contract`) how this hub switches images and sizes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from studiohub import contract

from ..client import call_json
from ..errors import Conflict, Unavailable

_HUB_VARS = ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
PER_SERVER = (
    "on this hub each server is one pod (Kubernetes), so every notebook runs on the "
    "server's image and size: to change them, stop your server from the hub's home page "
    "(File > Hub Control Panel) and start it with another profile")


def available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this server's hub offers StudioHub's kernel API (per-notebook switching)."""
    env = os.environ if environ is None else environ
    return all(env.get(k) for k in _HUB_VARS) and \
        contract.read_server_env(env).switching == contract.SWITCH_NOTEBOOK


def switching(environ: Mapping[str, str] | None = None) -> str:
    """``notebook``, ``server`` (one size per server), or ``none`` (not started by a hub)."""
    env = os.environ if environ is None else environ
    if available(env):
        return contract.SWITCH_NOTEBOOK
    mode = contract.read_server_env(env).switching
    return contract.SWITCH_SERVER if mode == contract.SWITCH_SERVER else "none"


def require_switching() -> None:
    """A 409 (one size per server) or 503 (no StudioHub hub) unless this server's
    notebooks can each choose their image and size."""
    mode = switching()
    if mode == contract.SWITCH_SERVER:
        raise Conflict(PER_SERVER)
    if mode != contract.SWITCH_NOTEBOOK:
        raise Unavailable("this server was not started by StudioHub's hub, so it cannot "
                          "choose images and sizes per notebook")


async def call(method: str, path: str, body: Mapping[str, Any] | None = None,
               timeout: float = 30.0) -> Any:
    """``method`` on ``<hub api>/studiohub/users/<me>/<path>``; the answer's JSON (or None)."""
    require_switching()
    base = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    user = quote(os.environ["JUPYTERHUB_USER"], safe="")
    return await call_json(f"{base}/studiohub/users/{user}/{path}", method,
                           os.environ["JUPYTERHUB_API_TOKEN"], body, timeout=timeout)
