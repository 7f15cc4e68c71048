"""Where the hub's sharing service is, and the calls to it with this server's own token.

The browser at ``/user/NAME/lab`` holds no token for the sharing service, so the Lab
panel calls this server (``studiohub/api/v1/sharing/…``) and this server forwards to the
service's API (``/services/sharing/api/v1/…``) with its own ``$JUPYTERHUB_API_TOKEN``,
which the spawner grants ``access:services!service=sharing`` (docs/sharing.md). The
service's refusals keep their status and message (:mod:`..client`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlparse

from traitlets import Float, Unicode, default
from traitlets.config import Configurable

from studiohub import contract

from ..client import call_json
from ..errors import Unavailable

SERVICE_PATH = "services/sharing/"


class SharingClient(Configurable):
    """Where the sharing service is, and how long to wait for it
    (``c.SharingClient.<trait>``)."""

    service_url = Unicode(
        help=f"""URL of the sharing service as this server reaches it, ending in
        ``/services/sharing/`` (e.g. ``http://127.0.0.1:8000/services/sharing/``).
        Default: ${contract.SHARING_URL} (set by StudioHub's hub for every server), else
        $JUPYTERHUB_PUBLIC_URL's origin + $JUPYTERHUB_BASE_URL + services/sharing/.
        Empty: sharing is unavailable from this server (503 saying so).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return service_url_from(os.environ)

    timeout = Float(
        120.0, help="""Seconds to wait for the sharing service (sharing a large notebook
        renders its preview before answering).""",
    ).tag(config=True)

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                   query: Mapping[str, str] | None = None) -> Any:
        """``method`` on ``<service>api/v1/<path>``; the answer's JSON (or None).

        Raises :class:`LabError` with the service's status and message for its 4xx
        answers, 502 when it failed or could not be reached, 503 when not configured.
        """
        if not self.service_url:
            raise Unavailable("notebook sharing is not available on this server: it was not "
                              f"started by StudioHub's hub (set ${contract.SHARING_URL} or "
                              "c.SharingClient.service_url)")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            raise Unavailable("notebook sharing needs this server's $JUPYTERHUB_API_TOKEN: "
                              "start the server from the hub")
        url = f"{self.service_url.rstrip('/')}/api/v1/{path}"
        if query:
            url += "?" + urlencode(query)
        return await call_json(
            url, method, token, body, timeout=self.timeout, what="the sharing service",
            unreachable=f"it should be at {self.service_url}; try again in a moment, or ask "
                        "an administrator to check that the hub's sharing service runs")


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see :attr:`SharingClient.service_url`)."""
    if environ.get(contract.SHARING_URL):
        return environ[contract.SHARING_URL]
    public = urlparse(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if public.scheme and public.netloc:
        base = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        return f"{public.scheme}://{public.netloc}{base.rstrip('/')}/{SERVICE_PATH}"
    return ""
