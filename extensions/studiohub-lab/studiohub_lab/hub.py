"""The hub's StudioHub API, called with this server's own token (see ``studiohub.hubapi``).

Only inside a JupyterHub-spawned server: ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``
and ``JUPYTERHUB_USER`` say where the hub is and who we are. The hub's refusals keep their
status and message (a 409 "no room" reaches the user as that sentence).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import Conflict, LabError, Unavailable

#: Set by the hub's spawner: ``notebook`` where the hub places kernels per notebook (the
#: local StudioSpawner), ``server`` where a server is one pod of one size (Kubernetes).
SWITCHING_ENV = "STUDIOHUB_SWITCHING"
PER_SERVER = (
    "on this hub each server is one pod (Kubernetes), so every notebook runs on the "
    "server's image and size: to change them, stop your server from the hub's home page "
    "(File > Hub Control Panel) and start it with another profile")


def available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this server's hub offers StudioHub's kernel API (per-notebook switching)."""
    env = os.environ if environ is None else environ
    return all(env.get(k) for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN",
                                    "JUPYTERHUB_USER")) and env.get(SWITCHING_ENV) == "notebook"


def switching(environ: Mapping[str, str] | None = None) -> str:
    """``notebook``, ``server`` (one size per server), or ``none`` (not started by a hub)."""
    env = os.environ if environ is None else environ
    if available(env):
        return "notebook"
    return "server" if env.get(SWITCHING_ENV) == "server" else "none"


async def call(method: str, path: str, body: Mapping[str, Any] | None = None,
               timeout: float = 30.0) -> Any:
    """``method`` on ``<hub api>/studiohub/users/<me>/<path>``; the answer's JSON (or None)."""
    mode = switching()
    if mode == "server":
        raise Conflict(PER_SERVER)
    if mode != "notebook":
        raise Unavailable("this server was not started by StudioHub's hub, so it cannot "
                          "choose images and sizes per notebook")
    base = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    user = quote(os.environ["JUPYTERHUB_USER"], safe="")
    request = HTTPRequest(
        f"{base}/studiohub/users/{user}/{path}", method=method,
        headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}",
                 "Content-Type": "application/json"},
        body=None if body is None else json.dumps(body),
        allow_nonstandard_methods=True, request_timeout=timeout)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        raise LabError(_message(e), e.code if 400 <= e.code < 500 else 502) from None
    except OSError as e:
        raise LabError(f"cannot reach the hub ({e}): try again in a moment", 502) from None
    return json.loads(response.body) if response.body else None


def _message(error: HTTPClientError) -> str:
    body = error.response.body if error.response is not None else b""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return f"the hub answered {error.code} {error.message}"
