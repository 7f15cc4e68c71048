"""The one HTTP client from this server to the hub and its services.

The hub's StudioHub API (:mod:`.switching.hub`) and the hub's services (sharing and
jobs: :class:`ServiceClient`) are called with this server's own ``$JUPYTERHUB_API_TOKEN``.
Their refusals keep their status and message (a 409 "no room" reaches the user as that
sentence); only a failure or no answer is a 502 (504 when it timed out).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Unicode, default
from traitlets.config import Configurable

from .errors import LabError, Unavailable

#: Longest message of theirs passed on to the browser.
MAX_MESSAGE = 2000


async def call_json(url: str, method: str, token: str, body: Mapping[str, Any] | None = None,
                    *, timeout: float = 30.0, what: str = "the hub",
                    unreachable: str = "try again in a moment") -> Any:
    """``method`` on ``url`` with ``token``; the answer's JSON (or None).

    ``what`` names the other side in messages; ``unreachable`` says what to do when it
    cannot be reached.
    """
    request = HTTPRequest(
        url, method=method, headers={"Authorization": f"token {token}",
                                     "Content-Type": "application/json"},
        body=None if body is None else json.dumps(body),
        allow_nonstandard_methods=True, request_timeout=timeout, follow_redirects=False)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        raise forwarded_error(e, what) from None
    except OSError as e:
        raise LabError(f"cannot reach {what} ({e}): {unreachable}", 502) from None
    try:
        return json.loads(response.body) if response.body else None
    except (ValueError, RecursionError):
        raise LabError(f"{what} answered something that is not JSON", 502) from None


def forwarded_error(error: HTTPClientError, what: str) -> LabError:
    """Their refusal as a :class:`LabError`: 4xx kept with its message, else 502/504."""
    body = error.response.body if error.response is not None else b""
    message = ""
    with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
        message = str(json.loads(body)["message"])[:MAX_MESSAGE]
    if 400 <= error.code < 500:
        return LabError(message or f"{what} refused the request ({error.code} "
                                   f"{error.message})", error.code)
    if error.code == 599:  # tornado's own code for a timeout
        return LabError(f"{what} did not answer in time: try again", 504)
    return LabError(f"{what} failed ({error.code}): {message or error.message}; try "
                    "again, or ask an administrator to look at the hub's log", 502)


class ServiceClient(Configurable):
    """One of the hub's services (sharing, jobs) as this server reaches it.

    The browser holds no token for the service, so a Lab panel calls this server and this
    server forwards to the service with its own ``$JUPYTERHUB_API_TOKEN``, which the
    spawner grants ``access:services!service=<name>``. Subclasses name the service.
    """

    #: The service's name in the hub (``/services/<SERVICE>/``).
    SERVICE: ClassVar[str]
    #: Where its API is under the service's URL, e.g. ``api/v1``.
    API: ClassVar[str]
    #: The variable StudioHub's hub sets to the service's URL for every server.
    URL_VARIABLE: ClassVar[str]
    #: What users get from it, with its verb, for messages: "training jobs are".
    FEATURE_IS: ClassVar[str]

    service_url = Unicode(
        help="""URL of the service as this server reaches it, ending in
        ``/services/<name>/``. Default: the variable StudioHub's hub sets for every server
        ($STUDIOHUB_SHARING_URL, $STUDIOHUB_JOBS_URL), else $JUPYTERHUB_PUBLIC_URL's origin
        + $JUPYTERHUB_BASE_URL + services/<name>/. Empty: unavailable from this server
        (503 saying so).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return service_url_from(os.environ, self.URL_VARIABLE, self.SERVICE)

    timeout: float

    @property
    def what(self) -> str:
        return f"the {self.SERVICE} service"

    @property
    def unreachable(self) -> str:
        return (f"it should be at {self.service_url}; try again in a moment, or ask an "
                f"administrator to check that the hub's {self.SERVICE} service runs")

    def target(self, path: str, query: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The service URL for ``path`` and this server's token, or the 503 saying why."""
        if not self.service_url:
            raise Unavailable(f"{self.FEATURE_IS} not available on this server: it was not "
                              f"started by StudioHub's hub (set ${self.URL_VARIABLE} or "
                              f"c.{type(self).__name__}.service_url)")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            raise Unavailable(f"{self.FEATURE_IS} not available without this server's "
                              "$JUPYTERHUB_API_TOKEN: start the server from the hub")
        url = f"{self.service_url.rstrip('/')}/{self.API}/{path}"
        if query:
            url += "?" + urlencode(query)
        return url, token

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                   query: Mapping[str, str] | None = None) -> Any:
        """``method`` on ``<service>/<API>/<path>``; the answer's JSON (or None).

        Raises :class:`LabError` with the service's status and message for its 4xx
        answers, 502 when it failed or could not be reached, 503 when not configured.
        """
        url, token = self.target(path, query)
        return await call_json(url, method, token, body, timeout=self.timeout,
                               what=self.what, unreachable=self.unreachable)


def service_url_from(environ: Mapping[str, str], variable: str, service: str) -> str:
    """A service's URL from a server's environment (see :attr:`ServiceClient.service_url`)."""
    if environ.get(variable):
        return environ[variable]
    public = urlparse(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if public.scheme and public.netloc:
        base = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        return f"{public.scheme}://{public.netloc}{base.rstrip('/')}/services/{service}/"
    return ""
