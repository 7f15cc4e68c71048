"""Where the hub's models service is, and the calls to it with this server's own token.

The Endpoints panel calls this server (``studiohub/api/v1/endpoints/…``), which forwards
to the service's management API (``/services/models/api/endpoints…``) as
:class:`..client.ServiceClient` does, and a "try it" request to the endpoint itself
(``/services/models/<name>/v1/…`` or ``/v2/…``). The service's ``{status, message}``
refusals and a replica's ``{"error": …}`` keep their status and wording.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float

from studiohub import contract

from .. import client
from ..client import MAX_MESSAGE, ServiceClient, forwarded_error
from ..errors import LabError


class EndpointsClient(ServiceClient):
    """Where the models service is, and how long to wait for it
    (``c.EndpointsClient.<trait>``)."""

    SERVICE = "models"
    API = "api"
    URL_VARIABLE = contract.MODELS_URL
    FEATURE_IS = "model endpoints are"

    timeout = Float(
        60.0, help="""Seconds to wait for the models service's answer to a management call
        (a deploy checks the model before answering).""",
    ).tag(config=True)

    predict_timeout = Float(
        60.0, help="""Seconds to wait for an endpoint's answer to a "try it" prediction.""",
    ).tag(config=True)

    async def text(self, path: str, query: Mapping[str, str] | None = None) -> bytes:
        """``GET <service>api/<path>`` answered as text (a replica's log): its bytes."""
        url, token = self.target(path, query)
        request = HTTPRequest(url, method="GET", headers={"Authorization": f"token {token}"},
                              request_timeout=self.timeout, follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise forwarded_error(e, self.what) from None
        except OSError as e:
            raise LabError(f"cannot reach {self.what} ({e}): {self.unreachable}",
                           502) from None
        return response.body or b""

    async def predict(self, name: str, protocol: str, version: int | None,
                      body: Mapping[str, Any]) -> Any:
        """``body`` sent to endpoint ``name`` by its TF Serving (``v1``) or Open Inference
        (``v2``) route, of ``version`` when given; the endpoint's JSON answer."""
        return await self.endpoint_call(name, "POST", predict_path(name, protocol, version),
                                        body)

    async def metadata(self, name: str, version: int | None) -> Any:
        """The model's Open Inference metadata (inputs and outputs with their names,
        types and shapes), from which the "try it" box builds an example request."""
        model = f"{name}/v2/models/{name}" + (f"/versions/{version}" if version else "")
        return await self.endpoint_call(name, "GET", model)

    async def endpoint_call(self, name: str, method: str, path: str,
                            body: Mapping[str, Any] | None = None) -> Any:
        """``method`` on the endpoint's own ``path`` (``<service>/<name>/v1|v2/…``).

        Its 4xx refusals (bad input, unknown version, no access) keep their status and
        the endpoint's words; a 5xx is a 502 quoting them, a timeout a 504.
        """
        _, token = self.target(name)  # its 503s: no service configured, no token
        # The data plane is beside the API, not under it: <service>/<name>/v1/….
        url = f"{self.service_url.rstrip('/')}/{path}"
        what = f"the endpoint {name}"
        request = HTTPRequest(
            url, method=method, body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            request_timeout=self.predict_timeout, follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise endpoint_error(e, what) from None
        except OSError as e:
            raise LabError(f"cannot reach {what} ({e}): {self.unreachable}", 502) from None
        try:
            return json.loads(response.body) if response.body else None
        except (ValueError, RecursionError):
            raise LabError(f"{what} answered something that is not JSON", 502) from None


def predict_path(name: str, protocol: str, version: int | None) -> str:
    """The endpoint's prediction route, relative to the service's URL."""
    if protocol == "v1":
        model = f"v1/models/{name}" + (f"/versions/{version}" if version else "")
        return f"{name}/{model}:predict"
    model = f"v2/models/{name}" + (f"/versions/{version}" if version else "")
    return f"{name}/{model}/infer"


def endpoint_error(error: HTTPClientError, what: str) -> LabError:
    """An endpoint's refusal as a :class:`LabError`: the replica's ``{"error": …}`` (or
    the service's ``{"message": …}``: no access, no such endpoint) kept as worded."""
    body = error.response.body if error.response is not None else b""
    message = ""
    with contextlib.suppress(ValueError, TypeError, RecursionError):
        answer = json.loads(body)
        if isinstance(answer, dict):
            message = str(answer.get("error") or answer.get("message") or "")[:MAX_MESSAGE]
    if 400 <= error.code < 500:
        return LabError(message or f"{what} refused the request ({error.code} "
                                   f"{error.message})", error.code)
    if error.code == 599:
        return LabError(f"{what} did not answer in time: try again", 504)
    return LabError(f"{what} failed ({error.code}): {message or error.message}", 502)


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see
    :attr:`EndpointsClient.service_url`)."""
    return client.service_url_from(environ, contract.MODELS_URL, EndpointsClient.SERVICE)
