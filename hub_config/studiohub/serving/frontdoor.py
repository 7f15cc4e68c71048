"""The data plane: ``/services/models/<endpoint>/v1/…`` and ``…/v2/…``.

Each request is authenticated here, then handed to the balancer (HAProxy, root's unix
socket), which picks a replica by the versions' weights and health checks; this handler
picks no replica. Who may call: the owner, an admin, a user of the endpoint's domain (a
JupyterHub token or login cookie with access to this service), or the holder of an
endpoint token of *that* endpoint (``Authorization: Bearer shm_…``, checked here against
its SHA-256, without a call to the hub). Anyone else gets a 403, anonymous callers too.

Requests that name a version (``/v1/models/<m>/versions/<n>…``,
``/v2/models/<m>/versions/<n>/…``) go to that version's own backend; one that does not
serve is a 404 in the protocol's shape. Errors here are the protocols' ``{"error": …}``.
The bodies are bounded (``max_body_bytes``: 413). The answer's replica (the balancer's
``X-Studiohub-Replica`` header) and latency feed :mod:`.meter`.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from typing import Any
from urllib.parse import quote

from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from ..sharing.base import MAX_DRAINED_BYTES, BaseHandler, hub_or_503
from . import balancer as balancer_mod
from .unixhttp import UnixHTTPError
from .view import TOKEN_PREFIX, View

log = logging.getLogger("studiohub.models")

MAX_BODY_BYTES = 32 * 1024 * 1024
_PINNED = re.compile(r"^v([12])/models/([^/:]+)/versions/([^/:]+)")
REPLICA_HEADER = "X-Studiohub-Replica"
#: The answer's header naming the version that answered.
VERSION_HEADER = "X-Studiohub-Version"
#: Headers of the caller's request passed on to the replica (nothing that authenticates).
PASSED = ("Content-Type", "Accept", "Accept-Encoding")


class UnixResolver(Resolver):
    """Every host name resolves to one unix socket (the balancer's)."""

    def initialize(self, path: str) -> None:
        self.path = path

    async def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC
                      ) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.path)]


def make_client(socket_path: str) -> SimpleAsyncHTTPClient:
    return SimpleAsyncHTTPClient(force_instance=True, max_clients=512,
                                 resolver=UnixResolver(path=socket_path),
                                 max_body_size=MAX_BODY_BYTES * 4,
                                 max_buffer_size=MAX_BODY_BYTES * 4)


@web.stream_request_body
class EndpointProxy(BaseHandler):
    service_name = "models"

    @property
    def view(self) -> View:
        view: View = self.settings["view"]
        return view

    def check_xsrf_cookie(self) -> None:
        """API calls; a cookie alone never reaches a replica with a body from another
        site: browsers send JSON posts cross-site only after a CORS preflight, which
        this service never grants."""

    async def prepare(self) -> None:
        self._body, self._size = bytearray(), 0
        self._limit = int(self.settings.get("max_body_bytes", MAX_BODY_BYTES))
        self._endpoint_token = self._bearer().startswith(TOKEN_PREFIX)
        # A body over the limit is read and dropped (up to MAX_DRAINED_BYTES), then
        # refused with a 413: a server that stopped reading mid-upload would leave the
        # client, behind the proxy, with the proxy's 503 instead.
        if isinstance(self.request.connection, HTTP1Connection):
            self.request.connection.set_max_body_size(MAX_DRAINED_BYTES)
        if not self._endpoint_token:
            await hub_or_503(self.hub_auth.get_user(self, sync=False))
        # Decided before the body arrives: a caller who may not call has nothing of
        # theirs kept in memory (their body is read and dropped, then refused).
        self._allowed = bool(self.path_args) and self.allowed(self.path_args[0])

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self._limit and self._allowed:
            self._body += chunk

    def _bearer(self) -> str:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() in ("bearer", "token") else ""

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))
        if status >= 400:
            self.refusal_logged = True
            log.log(logging.WARNING if status < 500 else logging.ERROR, "%d %s %s: %s",
                    status, self.request.method, self.request.path[:200], message[:300])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or (
            f"{self.request.method} is not answered here: predictions are POST, reads GET"
            if status_code == 405 else self._reason if status_code < 500 else
            "internal error in the models service: see its log")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def allowed(self, name: str) -> bool:
        if self._endpoint_token:
            return self.view.token_endpoint(self._bearer()) == name
        user = self.current_user
        if user is None or user.get("kind", "user") != "user":
            return False
        return self.view.may_call(name, user["name"], tuple(user.get("groups") or ()),
                                  bool(user.get("admin")))

    async def get(self, name: str, rest: str) -> None:
        await self.forward(name, rest)

    async def post(self, name: str, rest: str) -> None:
        await self.forward(name, rest)

    def refused(self, name: str) -> bool:
        """Answers the caller who may not call ``name`` (True), else nothing (False)."""
        if self._finished:
            return True
        if self._endpoint_token and self.view.token_endpoint(self._bearer()) is None:
            self.fail(401, "unknown or revoked endpoint token: ask the endpoint's owner for "
                           "a new one")
            return True
        if not self._allowed:
            self.fail(403, f"you may not call the endpoint {name[:60]!r} (or there is none "
                           "by that name: `studiohub endpoints list`): its owner, their "
                           "domain and holders of its tokens may")
            return True
        if self._size > self._limit:
            self.fail(413, f"request body is {self._size} bytes; at most {self._limit} are "
                           "accepted")
            return True
        return False

    async def forward(self, name: str, rest: str) -> None:
        if self.refused(name):
            return
        backend = self.backend(name, rest)
        if backend is None:
            return
        await self.relay(name, rest, backend)

    def backend(self, name: str, rest: str) -> str | None:
        """The balancer's backend for this request (None: answered already)."""
        pinned = _PINNED.match(rest)
        if pinned is None:
            return balancer_mod.backend_name(name)
        protocol, model, number = pinned.groups()
        if not number.isdigit() or len(number) > 9 or \
                int(number) not in self.view.versions_serving(name):
            message = f"Servable not found for request: Specific({model[:60]}, " \
                      f"{number[:12]})" if protocol == "1" else \
                      f"version {number[:12]!r} of model {model[:60]!r} is not serving"
            self.fail(404, message)
            return None
        return balancer_mod.backend_name(name, int(number))

    async def relay(self, name: str, rest: str, backend: str) -> None:
        headers = {h: self.request.headers[h] for h in PASSED if h in self.request.headers}
        headers[balancer_mod.BACKEND_HEADER] = backend
        query = f"?{self.request.query}" if self.request.query else ""
        path = quote(rest, safe="/:@!$&'()*+,;=-._~")  # as sent: no space or CR/LF in it
        method = self.request.method or "GET"
        client = self.settings["balancer_client"]
        if client.generation != self.view.generation:
            # The routes changed (and with them the balancer's worker, after a reload):
            # connections kept to the one before would still be answered by its routes.
            client.close()
            client.generation = self.view.generation
        started = time.perf_counter()
        try:
            answer = await client.request(
                method, f"/{path}{query}", headers,
                bytes(self._body) if method == "POST" else None,
                float(self.settings.get("request_timeout", 120)))
        except UnixHTTPError:
            self.fail(503, f"the endpoint {name!r} is not reachable right now (the balancer "
                           "did not answer): try again, or see the models service's log")
            return
        elapsed = time.perf_counter() - started
        where = balancer_mod.parse_server_name(answer.headers.get(REPLICA_HEADER.lower(), ""))
        if where is not None and method == "POST":  # predictions, not metadata reads
            self.settings["meter"].record(self.view.meter_key(name), where[0], where[1],
                                          elapsed, answer.status)
        self.set_status(answer.status)
        if where is not None:  # which version answered (a canary's share is visible)
            self.set_header(VERSION_HEADER, str(where[0]))
        if "content-type" in answer.headers:
            self.set_header("Content-Type", answer.headers["content-type"])
        self.finish(answer.body)


class EndpointIndex(EndpointProxy):
    """``/services/models/<endpoint>/``, the address the Lab and the CLI show: for those
    who may call it, where its two protocols' routes are (a 404 there read as "broken")."""

    async def forward(self, name: str, rest: str = "") -> None:
        if self.refused(name):
            return
        urls = self.urls(name)
        if self.request.method != "GET":
            self.fail(405, f"predictions go to {urls['tf_serving']['predict']} or "
                           f"{urls['open_inference']['infer']}")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"endpoint": name,
                                "versions_serving": sorted(self.view.versions_serving(name)),
                                **urls, "docs": "docs/endpoints.md"}))

    async def get(self, name: str, rest: str = "") -> None:
        await self.forward(name)

    async def post(self, name: str, rest: str = "") -> None:
        await self.forward(name)

    def urls(self, name: str) -> dict[str, dict[str, str]]:
        base = f"{self.settings['service_prefix']}{name}"
        return {"tf_serving": {"status": f"{base}/v1/models/{name}",
                               "metadata": f"{base}/v1/models/{name}/metadata",
                               "predict": f"{base}/v1/models/{name}:predict"},
                "open_inference": {"ready": f"{base}/v2/health/ready",
                                   "metadata": f"{base}/v2/models/{name}",
                                   "infer": f"{base}/v2/models/{name}/infer"}}


class NotFoundProxy(EndpointProxy):
    async def forward(self, name: str = "", rest: str = "") -> None:
        self.fail(404, "nothing here: call /services/models/<endpoint>/v1/models/<endpoint>"
                       " or …/v2/models/<endpoint>/infer (docs/endpoints.md)")

    async def get(self, *_: str) -> None:
        await self.forward()

    async def post(self, *_: str) -> None:
        await self.forward()
