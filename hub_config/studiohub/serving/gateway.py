"""The models service's gateway: the JupyterHub service at ``/services/models/``.

Two processes make the models service, so that **predictions go on while the manager
restarts** (an upgrade, a crash):

- the **gateway** (this module, ``python -m studiohub.serving.gateway``): the only one
  the hub's proxy reaches. It authenticates every request with the hub (HubOAuth, a
  token or the login cookie), answers predictions itself (:mod:`.frontdoor`: who may
  call comes from :mod:`.view`, the file the manager writes; the replica is HAProxy's
  choice), keeps the request figures (:mod:`.meter`, ``api/endpoints/NAME/metrics``),
  and relays the rest of the management API to the manager, with the caller it
  authenticated, over the manager's root-only unix socket;
- the **manager** (:mod:`.app`, ``python -m studiohub.serving``): deploys, supervises
  replicas, drives the balancer, answers the management API. While it restarts, its API
  answers 503 ("restarting") and every endpoint keeps answering.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from tornado import web
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_unix_socket
from traitlets import Integer, Unicode, default
from traitlets.config import Application

from ..catalog_choice import cached_catalog
from ..jobs.app import OAuthCallback
from ..paths import paths
from ..sharing.base import MAX_DRAINED_BYTES, APIHandler, authenticated, request_logger
from . import frontdoor
from .api import CALLER_HEADER
from .balancer import ENDPOINT_NAME, FRONTEND, parse_server_name
from .layout import (
    balancer_dir,
    endpoints_dir,
    gateway_socket,
    manager_socket,
    meter_socket,
    view_path,
)
from .meter import Meter
from .unixhttp import UnixHTTP
from .view import TOKEN_PREFIX, View

log = logging.getLogger("studiohub.models")
MIB = 1024 * 1024
#: Headers of the manager's answer passed back to the caller.
ANSWER_HEADERS = ("Content-Type", "X-Log-Size")
RESTARTING = "the models service's manager is restarting: try again in a few seconds " \
             "(endpoints keep answering meanwhile)"


class GatewayAPI(APIHandler):
    """The hub's identity of the caller; ``{status, message}`` errors."""

    service_name = "models"
    max_body_bytes = 64 * 1024

    async def prepare(self) -> None:
        await super().prepare()
        _, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if self.current_user is None and token.strip().startswith(TOKEN_PREFIX):
            raise web.HTTPError(403, "an endpoint token opens predictions only (…/<name>/v1/…"
                                     ", …/<name>/v2/…); the management API takes a "
                                     "JupyterHub token")

    def caller(self) -> dict[str, Any]:
        user = self.current_user
        if user is None or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "only JupyterHub users can manage model endpoints")
        return {"name": user["name"], "groups": list(user.get("groups") or ()),
                "admin": bool(user.get("admin")), "kind": "user"}


class MetricsHandler(GatewayAPI):
    """Requests/s, p50/p99 latency and errors per version and replica, as the gateway
    saw them (the owner's and admins' only)."""

    @authenticated
    def get(self, name: str) -> None:
        caller = self.caller()
        if not caller["admin"] and self.settings["view"].owner(name) != caller["name"]:
            raise web.HTTPError(404, f"you have no endpoint {name[:60]!r}")
        view: View = self.settings["view"]
        self.write_json({**self.settings["meter"].summary(view.meter_key(name)),
                         "endpoint": name})


class ManagerRelay(GatewayAPI):
    """Everything else under ``api/``: to the manager, with the authenticated caller."""

    @authenticated
    async def get(self, path: str) -> None:
        await self.relay(path)

    @authenticated
    async def post(self, path: str) -> None:
        await self.relay(path)

    @authenticated
    async def delete(self, path: str) -> None:
        await self.relay(path)

    async def relay(self, _path: str) -> None:
        caller = json.dumps(self.caller())
        # The path as sent (still percent-encoded), never the decoded route group.
        path = self.request.path[len(self.settings["service_prefix"]) + len("api/"):]
        query = f"?{self.request.query}" if self.request.query else ""
        method = self.request.method or "GET"
        headers = {CALLER_HEADER: caller}
        if "Content-Type" in self.request.headers:
            headers["Content-Type"] = self.request.headers["Content-Type"]
        request = HTTPRequest(f"http://manager/api/{path}{query}", method=method,
                              headers=headers, body=bytes(self._body)
                              if method == "POST" else None,
                              request_timeout=1000.0, follow_redirects=False,
                              allow_nonstandard_methods=True)
        try:
            response = await self.settings["manager_client"].fetch(request, raise_error=False)
        except OSError:
            response = None
        if response is None or response.code == 599:
            raise web.HTTPError(503, RESTARTING)
        self.set_status(response.code)
        for header in ANSWER_HEADERS:
            if header in response.headers:
                self.set_header(header, response.headers[header])
        self.finish(response.body if response.code != 204 and response.body else None)


class ServiceRoot(web.RequestHandler):
    """``/services/models/``: where things are (JupyterHub asks it at start; no refusal)."""

    def get(self) -> None:
        prefix = self.settings["service_prefix"]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"service": "models", "api": f"{prefix}api/endpoints",
                                "endpoint": f"{prefix}<name>/v1/models/<name>:predict"}))


def make_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    table: list[tuple[str, type[web.RequestHandler]]] = [
        ("", ServiceRoot),
        ("oauth_callback", OAuthCallback),
        (r"api/endpoints/([a-z][a-z0-9-]{0,39})/metrics", MetricsHandler),
        (r"api/?(.*)", ManagerRelay),
        (r"([a-z][a-z0-9-]{0,39})/(v[12](?:/.*)?)", frontdoor.EndpointProxy),
        (r"([a-z][a-z0-9-]{0,39})/?", frontdoor.EndpointIndex),
        (".*", frontdoor.NotFoundProxy),
    ]
    return [(prefix + path, handler) for path, handler in table]


def create_app(view: View, hub_auth: HubOAuth, balancer_socket: str, manager: str,
               max_body_bytes: int = frontdoor.MAX_BODY_BYTES) -> web.Application:
    prefix = hub_auth.base_url
    return web.Application(make_routes(prefix), view=view, hub_auth=hub_auth,
                           service_prefix=prefix, cookie_secret=os.urandom(32),
                           log_function=request_logger("studiohub.models"), meter=Meter(),
                           balancer_client=UnixHTTP(balancer_socket),
                           manager_client=frontdoor.make_client(manager),
                           max_body_bytes=max_body_bytes)


def record_lane_line(line: bytes, view: View, meter: Meter) -> None:
    """One answer of the fast lane, as HAProxy logs it: ``<endpoint> <server> <status>
    <milliseconds>`` (its timer counts whole milliseconds). Its own answers (no server:
    ``<NOSRV>``) and anything else are left out."""
    words = line.decode("ascii", "replace").split()
    if len(words) != 4 or not ENDPOINT_NAME.match(words[0]) or not words[2].isdigit() \
            or not words[3].lstrip("-").isdigit():
        return
    where = parse_server_name(words[1])
    if where is not None:
        meter.record(view.meter_key(words[0]), where[0], where[1],
                     max(0, int(words[3])) / 1000, int(words[2]))


def listen_to_lane(path: Path, view: View, meter: Meter) -> socket.socket:
    """The datagram socket HAProxy's fast lane logs to (root's, 0600)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.setblocking(False)

    def readable(_fd: Any, _events: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                record_lane_line(sock.recv(4096), view, meter)

    IOLoop.current().add_handler(sock.fileno(), readable, IOLoop.READ)
    return sock


class GatewayApp(Application):
    """The gateway of StudioHub's model endpoints: a JupyterHub service."""

    name = "studiohub-models-gateway"
    description = __doc__

    state_dir = Unicode(help="StudioHub's state directory (default <prefix>/state).").tag(
        config=True)

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return str(paths().state)

    catalog_path = Unicode("", help="The operator's catalog file (the hub's).").tag(config=True)
    auth_cache_seconds = Integer(10, help="How long a caller's identity is reused."
                                 ).tag(config=True)
    max_body_bytes = Integer(frontdoor.MAX_BODY_BYTES, help="Largest prediction request."
                             ).tag(config=True)

    aliases = {  # noqa: RUF012  (traitlets reads the class attribute)
        "state-dir": "GatewayApp.state_dir",
        "catalog": "GatewayApp.catalog_path",
        "auth-cache-seconds": "GatewayApp.auth_cache_seconds",
        "max-body-bytes": "GatewayApp.max_body_bytes",
    }

    def start(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        catalog_path = self.catalog_path
        view = View(view_path(self.state_dir), lambda: cached_catalog(catalog_path))
        hub_auth = HubOAuth(cache_max_age=self.auth_cache_seconds)
        app = create_app(view, hub_auth, str(balancer_dir(self.state_dir) / FRONTEND),
                         str(manager_socket(self.state_dir)), self.max_body_bytes)
        listen = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10104"))
        # A caller who stops sending is cut off (a body within 2 minutes, an idle
        # keep-alive connection after 5).
        server = HTTPServer(app, xheaders=True,
                            max_body_size=max(self.max_body_bytes + MIB, MAX_DRAINED_BYTES),
                            body_timeout=120, idle_connection_timeout=300)
        server.listen(listen.port or 80, listen.hostname or "127.0.0.1")
        # HAProxy's fast lane hands what it does not answer itself to this socket, and
        # logs what it answered to the meter's (both root's, in a root-only folder).
        folder = endpoints_dir(self.state_dir)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        server.add_socket(bind_unix_socket(str(gateway_socket(self.state_dir)), mode=0o600))
        listen_to_lane(meter_socket(self.state_dir), view, app.settings["meter"])
        log.info("models gateway listening on %s and %s, prefix %s", listen.geturl(),
                 gateway_socket(self.state_dir), hub_auth.base_url)
        loop = IOLoop.current()
        signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
        with contextlib.suppress(KeyboardInterrupt):
            loop.start()


main = GatewayApp.launch_instance

if __name__ == "__main__":
    main()
