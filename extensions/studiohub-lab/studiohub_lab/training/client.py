"""Where the hub's jobs service is, and the calls to it with this server's own token.

The Training panel calls this server (``studiohub/api/v1/training/…``), which forwards to
the service (``/services/jobs/api/…``) as :class:`..client.ServiceClient` does; the
service's refusals keep their status and message, and a followed log is streamed through
chunk by chunk.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from traitlets import Float

from studiohub import contract

from .. import client
from ..client import ServiceClient, forwarded_error
from ..errors import LabError


class JobsClient(ServiceClient):
    """Where the jobs service is, and how long to wait for it (``c.JobsClient.<trait>``)."""

    SERVICE = "jobs"
    API = "api"
    URL_VARIABLE = contract.JOBS_URL
    FEATURE_IS = "training jobs are"

    timeout = Float(
        60.0, help="""Seconds to wait for the jobs service's answer (a submit copies the
        code before answering). A followed log is not bounded by it.""",
    ).tag(config=True)

    async def stream(self, path: str, query: Mapping[str, str],
                     on_chunk: Callable[[bytes], None], follow: bool) -> None:
        """``GET <service>api/<path>``, each chunk of a 200 answer handed to ``on_chunk``
        as it arrives (a followed log runs until the job ends: no overall timeout then).

        A refusal's body is kept, not passed on, and raised as the service's 4xx. When
        ``on_chunk`` raises (the browser went away), the call to the service stops.
        """
        url, token = self.target(path, query)
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
            raise forwarded_error(e, self.what) from None
        except OSError as e:
            raise LabError(f"cannot reach {self.what} ({e}): {self.unreachable}",
                           502) from None


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see :attr:`JobsClient.service_url`)."""
    return client.service_url_from(environ, contract.JOBS_URL, JobsClient.SERVICE)
