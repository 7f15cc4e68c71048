"""Where the hub's jobs service is, and the calls to it with this server's own token.

The browser at ``/user/NAME/lab`` holds no token for the jobs service, so the Training
panel calls this server (``studiohub/api/v1/training/…``) and this server forwards to
the service (``/services/jobs/api/…``) with its own ``$JUPYTERHUB_API_TOKEN``, which the
spawner grants ``access:services!service=jobs``. The service's refusals keep their
status and message (:mod:`..client`); a followed log is streamed through chunk by chunk.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from traitlets import Float, Unicode, default
from traitlets.config import Configurable

from studiohub import contract

from ..client import call_json, forwarded_error
from ..errors import LabError, Unavailable

SERVICE_PATH = "services/jobs/"
WHAT = "the jobs service"


class JobsClient(Configurable):
    """Where the jobs service is, and how long to wait for it (``c.JobsClient.<trait>``)."""

    service_url = Unicode(
        help=f"""URL of the jobs service as this server reaches it, ending in
        ``/services/jobs/``. Default: ${contract.JOBS_URL} (set by StudioHub's hub for
        every server), else $JUPYTERHUB_PUBLIC_URL's origin + $JUPYTERHUB_BASE_URL +
        services/jobs/. Empty: training jobs are unavailable from this server (503).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return service_url_from(os.environ)

    timeout = Float(
        60.0, help="""Seconds to wait for the jobs service's answer (a submit copies the
        code before answering). A followed log is not bounded by it.""",
    ).tag(config=True)

    def _target(self, path: str, query: Mapping[str, str] | None) -> tuple[str, str]:
        """The service URL for ``path`` and this server's token, or the 503 saying why."""
        if not self.service_url:
            raise Unavailable("training jobs are not available on this server: it was not "
                              f"started by StudioHub's hub (set ${contract.JOBS_URL} or "
                              "c.JobsClient.service_url)")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            raise Unavailable("training jobs need this server's $JUPYTERHUB_API_TOKEN: "
                              "start the server from the hub")
        url = f"{self.service_url.rstrip('/')}/api/{path}"
        if query:
            url += "?" + urlencode(query)
        return url, token

    @property
    def unreachable(self) -> str:
        return (f"it should be at {self.service_url}; try again in a moment, or ask an "
                "administrator to check that the hub's jobs service runs")

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                   query: Mapping[str, str] | None = None) -> Any:
        """``method`` on ``<service>api/<path>``; the answer's JSON (or None)."""
        url, token = self._target(path, query)
        return await call_json(url, method, token, body, timeout=self.timeout, what=WHAT,
                               unreachable=self.unreachable)

    async def stream(self, path: str, query: Mapping[str, str],
                     on_chunk: Callable[[bytes], None], follow: bool) -> None:
        """``GET <service>api/<path>``, each chunk of a 200 answer handed to ``on_chunk``
        as it arrives (a followed log runs until the job ends: no overall timeout then).

        A refusal's body is kept, not passed on, and raised as the service's 4xx. When
        ``on_chunk`` raises (the browser went away), the call to the service stops.
        """
        url, token = self._target(path, query)
        status: list[int] = []
        refused = bytearray()

        def header(line: str) -> None:
            if line.startswith("HTTP/") and not status:
                parts = line.split(" ", 2)
                status.append(int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0)

        def chunk(data: bytes) -> None:
            if status and status[0] == 200:
                on_chunk(data)
            elif len(refused) < 64 * 1024:
                refused.extend(data)

        request = HTTPRequest(url, method="GET", headers={"Authorization": f"token {token}"},
                              header_callback=header, streaming_callback=chunk,
                              follow_redirects=False, connect_timeout=self.timeout,
                              request_timeout=24 * 3600.0 if follow else self.timeout)
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if refused:  # the refusal's body went to the streaming callback: put it back
                e = HTTPClientError(e.code, e.message, HTTPResponse(
                    request, e.code, buffer=io.BytesIO(bytes(refused))))
            raise forwarded_error(e, WHAT) from None
        except OSError as e:
            raise LabError(f"cannot reach {WHAT} ({e}): {self.unreachable}", 502) from None


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see :attr:`JobsClient.service_url`)."""
    if environ.get(contract.JOBS_URL):
        return environ[contract.JOBS_URL]
    public = urlparse(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if public.scheme and public.netloc:
        base = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        return f"{public.scheme}://{public.netloc}{base.rstrip('/')}/{SERVICE_PATH}"
    return ""
