"""``studiohub/api/v1/endpoints/…``: the Lab's calls to the hub's models service.

Every route forwards to the service's management API (``/services/models/api/…``, the
contract of issue #15) with this server's token after the body check every handler
shares; the service decides, and its ``{status, message}`` refusals reach the browser as
they are. ``predict`` sends a "try it" request to the endpoint itself and passes its
answer, or its 4xx error as the endpoint worded it, back.

| route | forwards to |
| --- | --- |
| ``GET endpoints``, ``POST endpoints`` (``?check=true``: dry run) | ``api/endpoints`` |
| ``GET endpoints/<name>``, ``DELETE endpoints/<name>`` | ``api/endpoints/<name>`` |
| ``GET endpoints/<name>/logs?version=&replica=&offset=`` | the same (text) |
| ``GET endpoints/<name>/metrics`` | the same |
| ``POST endpoints/<name>/traffic`` and ``/rollback`` | the same |
| ``GET``/``POST endpoints/<name>/tokens``, ``DELETE …/tokens/<id>`` | the same |
| ``POST endpoints/<name>/predict`` ``{protocol, version?, body}`` | the endpoint (below) |
| ``GET endpoints/<name>/metadata?version=`` | ``<name>/v2/models/<name>`` (V2 metadata) |

A ``predict`` goes to ``<name>/v1/models/<name>:predict`` (``v1``) or
``<name>/v2/models/<name>/infer`` (``v2``), under ``/versions/<n>`` when ``version`` is
given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tornado import web

from ..base import LabAPIHandler, Route
from ..errors import LabError
from ..training.handlers import flag
from .client import EndpointsClient

#: The service's endpoint names (the route takes any segment, to say why one is refused).
NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
#: What a deploy may hold (the service checks the values; here only keys and types).
DEPLOY_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "model": (str, dict), "image": str, "size": str, "replicas": int,
    "canary": (int, float),
}
PREDICT_KEYS: dict[str, type | tuple[type, ...]] = {
    "protocol": str, "version": int, "body": dict,
}
PROTOCOLS = ("v1", "v2")
#: The log arguments passed on, each with the form it must have.
LOG_ARGUMENTS: dict[str, tuple[re.Pattern[str], str]] = {
    "version": (re.compile(r"[1-9]\d{0,5}"), "a version number"),
    "replica": (re.compile(r"[a-z]{1,16}-\d{1,3}"), "a replica name like replica-0"),
    "offset": (re.compile(r"\d{1,15}"), "a whole number"),
}
ENDPOINT = r"(?P<name>[^/]+)"
TOKEN_ID = r"(?P<token_id>[0-9a-zA-Z_-]{1,64})"


def routes(api: str, kw: dict[str, Any]) -> list[Route]:
    endpoint = rf"{api}/endpoints/{ENDPOINT}"
    return [
        (rf"{api}/endpoints", EndpointsHandler, kw),
        (endpoint, EndpointHandler, kw),
        (rf"{endpoint}/logs", LogsHandler, kw),
        (rf"{endpoint}/metrics", MetricsHandler, kw),
        (rf"{endpoint}/(?P<action>traffic|rollback)", ActionHandler, kw),
        (rf"{endpoint}/tokens", TokensHandler, kw),
        (rf"{endpoint}/tokens/{TOKEN_ID}", TokenHandler, kw),
        (rf"{endpoint}/predict", PredictHandler, kw),
        (rf"{endpoint}/metadata", MetadataHandler, kw),
    ]


def checked_name(name: str) -> str:
    """An endpoint's name as the service spells them, or the 400 saying what they are."""
    if not NAME.fullmatch(name):
        raise LabError(f"endpoint name {name[:40]!r} is not valid: names are 1 to 40 "
                       "lowercase letters, digits and dashes, starting with a letter")
    return name


def log_query(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """The log arguments the service knows, each checked for its form (400 naming it)."""
    query: dict[str, str] = {}
    for key, (form, what) in LOG_ARGUMENTS.items():
        if not arguments.get(key):
            continue
        value = arguments[key][-1].decode("utf-8", "replace").lower()
        if not form.fullmatch(value):
            raise LabError(f"{key}: {value[:40]!r} is not {what}")
        query[key] = value
    return query


class EndpointsAPIHandler(LabAPIHandler):
    max_body = 64 * 1024

    @property
    def client(self) -> EndpointsClient:
        return EndpointsClient(parent=self.lab)


class EndpointsHandler(EndpointsAPIHandler):
    """``GET endpoints``: my endpoints; ``POST endpoints`` deploys a model as a new
    endpoint or a new version of mine (``?check=true``: would it deploy, doing nothing)."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "endpoints"))

    @web.authenticated
    async def post(self) -> None:
        check = flag(self.request.arguments, "check")
        spec = self.body(DEPLOY_KEYS)
        if check:
            self.write_json(await self.client.call("POST", "endpoints", spec,
                                                   query={"check": "true"}))
            return
        self.write_json(await self.client.call("POST", "endpoints", spec), 201)


class EndpointHandler(EndpointsAPIHandler):
    """``GET endpoints/<name>``: one endpoint; ``DELETE``: stop and forget it (204)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        self.write_json(await self.client.call("GET", f"endpoints/{checked_name(name)}"))

    @web.authenticated
    async def delete(self, name: str) -> None:
        await self.client.call("DELETE", f"endpoints/{checked_name(name)}")
        self.set_status(204)
        self.finish()


class MetricsHandler(EndpointsAPIHandler):
    """``GET endpoints/<name>/metrics``: requests/s, p50/p99 and errors per version and
    replica."""

    @web.authenticated
    async def get(self, name: str) -> None:
        path = f"endpoints/{checked_name(name)}/metrics"
        self.write_json(await self.client.call("GET", path))


class LogsHandler(EndpointsAPIHandler):
    """``GET endpoints/<name>/logs?version=&replica=&offset=``: a replica's output as
    text, from byte ``offset``."""

    @web.authenticated
    async def get(self, name: str) -> None:
        query = log_query(self.request.arguments)
        text = await self.client.text(f"endpoints/{checked_name(name)}/logs", query)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        # Sent before finish(), which would call a JSON API's answer application/json.
        self.write(text)
        await self.flush()
        self.finish()


class ActionHandler(EndpointsAPIHandler):
    """``POST endpoints/<name>/traffic`` ``{canary: 0..100}`` (the newest version's
    share; 100 promotes it) and ``POST …/rollback`` (back to the previous version)."""

    @web.authenticated
    async def post(self, name: str, action: str) -> None:
        path = f"endpoints/{checked_name(name)}/{action}"
        if action == "traffic":
            body = self.body({"canary": (int, float)}, required=("canary",))
            self.write_json(await self.client.call("POST", path, body))
            return
        self.body({})
        self.write_json(await self.client.call("POST", path))


class TokensHandler(EndpointsAPIHandler):
    """``GET endpoints/<name>/tokens``: its tokens (never their secret);
    ``POST`` (``{note}``, what will use it): a new one, whose secret is in this answer
    only (201)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        path = f"endpoints/{checked_name(name)}/tokens"
        self.write_json(await self.client.call("GET", path))

    @web.authenticated
    async def post(self, name: str) -> None:
        path = f"endpoints/{checked_name(name)}/tokens"
        body = self.body({"note": str})
        self.write_json(await self.client.call("POST", path, body), 201)


class TokenHandler(EndpointsAPIHandler):
    """``DELETE endpoints/<name>/tokens/<id>``: revoke one (204)."""

    @web.authenticated
    async def delete(self, name: str, token_id: str) -> None:
        await self.client.call("DELETE", f"endpoints/{checked_name(name)}/tokens/{token_id}")
        self.set_status(204)
        self.finish()


class PredictHandler(EndpointsAPIHandler):
    """``POST endpoints/<name>/predict`` ``{protocol: "v1"|"v2", version?, body}``: the
    "try it" box's request, sent to the endpoint with this server's token; the answer
    as the endpoint gave it."""

    #: A replica accepts 32 MiB; a request typed or pasted in a box is far smaller.
    max_body = 8 * 1024 * 1024

    @web.authenticated
    async def post(self, name: str) -> None:
        checked_name(name)
        request = self.body(PREDICT_KEYS, required=("protocol", "body"))
        protocol = request["protocol"]
        if protocol not in PROTOCOLS:
            raise LabError(f"protocol: {protocol[:20]!r} is not v1 (TensorFlow Serving's "
                           "REST API) or v2 (the Open Inference Protocol)")
        version = request.get("version")
        if version is not None and version < 1:
            raise LabError(f"version: {version} is not a version number (1 or more)")
        self.write_json(await self.client.predict(name, protocol, version, request["body"]))


class MetadataHandler(EndpointsAPIHandler):
    """``GET endpoints/<name>/metadata?version=``: the model's V2 metadata (the "try it"
    box's example request is built from its inputs)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        checked_name(name)
        version = log_query(self.request.arguments).get("version")
        self.write_json(await self.client.metadata(name, int(version) if version else None))
