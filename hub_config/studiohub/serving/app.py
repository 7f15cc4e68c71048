"""The models service's manager as a program: ``create_app`` (tests), ``ModelsApp`` (CLI).

JupyterHub starts it as a managed service without a URL (:func:`.config.update_models`:
``models-manager``), as root (it copies models as their owners, runs the balancer and
reaches the replicas' sockets), with the hub's API and its token in the environment (it
places replicas through the hub). Its management API listens on a root-only unix socket
that only the gateway (:mod:`.gateway`, the ``models`` service users reach) relays to.
On start it adopts what still runs (:meth:`.service.Models.reconcile`: the balancer and
every replica outlive it and the hub), then supervises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import pwd
import signal
import sys
from pathlib import Path
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_unix_socket
from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from .. import envs
from ..catalog_choice import cached_catalog
from ..jobs.app import account_of
from ..jobs.snapshot import SnapshotError, as_user
from ..paths import paths, system_mode
from ..sharing.base import MAX_DRAINED_BYTES, request_logger
from ..slugs import DEFAULT_UNIX_PREFIX, unix_name
from . import api
from .layout import (
    balancer_dir,
    direct_socket,
    gateway_socket,
    manager_socket,
    meter_socket,
    view_path,
)
from .model import EndpointError
from .service import Models
from .store import Store

MIB = 1024 * 1024


class NotFoundAPI(api.ModelsBase):
    def not_found(self, *_: str) -> None:
        raise web.HTTPError(404, f"no API at {self.request.path[:200]}: see docs/endpoints.md")

    get = post = put = patch = delete = not_found


def make_routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """The management API, under ``/api/`` of the manager's socket (the gateway relays
    ``/services/models/api/…`` there)."""
    endpoint = r"/api/endpoints/([a-z][a-z0-9-]{0,39})"
    return [
        ("/api/?", api.RootHandler),
        ("/api/endpoints", api.EndpointsHandler),
        (endpoint, api.EndpointHandler),
        (endpoint + "/traffic", api.TrafficHandler),
        (endpoint + "/rollback", api.RollbackHandler),
        (endpoint + "/logs", api.LogsHandler),
        (endpoint + "/tokens", api.TokensHandler),
        (endpoint + r"/tokens/([0-9a-f]{1,16})", api.TokenHandler),
        (".*", NotFoundAPI),
    ]


def create_app(models: Models, public_prefix: str = "/services/models/") -> web.Application:
    """``public_prefix``: where users reach the service (the gateway's prefix)."""
    return web.Application(make_routes(), models=models, service_prefix=public_prefix,
                           log_function=request_logger("studiohub.models"))


def serve(app: web.Application, socket_path: Path) -> HTTPServer:
    """The manager's API on a root-only unix socket (only the gateway connects)."""
    server = HTTPServer(app, max_body_size=MAX_DRAINED_BYTES)
    socket_path.unlink(missing_ok=True)
    server.add_socket(bind_unix_socket(str(socket_path), mode=0o600))
    return server


def unix_account(user: str, prefix: str) -> str:
    """The account an endpoint's replicas run as, by name (never created here: the deploy
    made it; supervision must not re-create a removed user's account)."""
    return unix_name(user, prefix) if system_mode() else pwd.getpwuid(os.geteuid()).pw_name


async def copy_model(user: str, unix_user: str, source: str, target: str, check: bool,
                     max_bytes: int) -> dict[str, Any]:
    """The model copied (or, ``check``, only looked at) as the user (:mod:`.modelcopy`)."""
    argv = [sys.executable, "-I", "-m", "studiohub.serving.modelcopy", source, target,
            f"--max-bytes={max_bytes}"] + (["--check"] if check else [])
    try:
        out = await as_user(unix_user, argv, timeout=900)
    except SnapshotError as e:
        raise EndpointError(400, f"model: {e}") from None
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return answer


class ModelsApp(Application):
    """Model endpoints for StudioHub: a JupyterHub service."""

    name = "studiohub-models"
    description = __doc__

    state_dir = Unicode(help="StudioHub's state directory (default <prefix>/state): the "
                        "store, the replicas' logs, the balancer's files.").tag(config=True)

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return str(paths().state)

    db_url = Unicode(help="""SQLAlchemy URL of the store. Default: $STUDIOHUB_MODELS_DB_URL,
        else sqlite:///<state_dir>/models.sqlite.""").tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("STUDIOHUB_MODELS_DB_URL") or \
            f"sqlite:///{Path(self.state_dir) / 'models.sqlite'}"

    catalog_path = Unicode("", help="The operator's catalog file (the hub's).").tag(config=True)
    unix_user_prefix = Unicode(DEFAULT_UNIX_PREFIX, help="Prefix of users' unix accounts."
                               ).tag(config=True)
    poll_interval = Float(1.0, help="Seconds between looks at the replicas.").tag(config=True)
    max_model_bytes = Integer(20 * 1024**3, help="Largest model an endpoint copies."
                              ).tag(config=True)
    public_prefix = Unicode("/services/models/", help="Where users reach the service (the "
                            "gateway's prefix), for the links the API answers."
                            ).tag(config=True)
    max_body_bytes = Integer(32 * 1024 * 1024, help="Largest prediction request (the "
                             "gateway's setting; the fast lane hands larger ones to it)."
                             ).tag(config=True)
    socket_root = Unicode("/run/studiohub/endpoints", help="""Root-only folder of the
        replicas' sockets as the balancer reaches them (same filesystem as the accounts'
        socket folders, /run/studiohub/<uid>).""").tag(config=True)

    aliases = {  # noqa: RUF012  (traitlets reads the class attribute)
        "state-dir": "ModelsApp.state_dir",
        "db-url": "ModelsApp.db_url",
        "catalog": "ModelsApp.catalog_path",
        "unix-user-prefix": "ModelsApp.unix_user_prefix",
        "poll-interval": "ModelsApp.poll_interval",
        "max-model-bytes": "ModelsApp.max_model_bytes",
        "socket-root": "ModelsApp.socket_root",
        "public-prefix": "ModelsApp.public_prefix",
        "max-body-bytes": "ModelsApp.max_body_bytes",
    }

    def make_models(self) -> tuple[Models, Any]:
        """The service and its balancer."""
        from ..jobs.local import LocalExecutor
        from ..jobs.placing import HubPlacing
        from .balancer import Balancer
        from .replicas import ReplicaRunner

        state = Path(self.state_dir)
        (state / "endpoints").mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state / "endpoints", 0o700)
        prefix, catalog_path = self.unix_user_prefix, self.catalog_path
        placing = HubPlacing(os.environ.get("JUPYTERHUB_API_URL",
                                            "http://127.0.0.1:8081/hub/api"),
                             os.environ.get("JUPYTERHUB_API_TOKEN", ""), group="endpoints")
        executor = LocalExecutor(state, outbound=False, private_network=True,
                                 group="endpoints", stop_grace=5.0)
        socket_root = self.socket_root if os.geteuid() == 0 else \
            str(state / "endpoints" / "sockets")
        runner = ReplicaRunner(executor, placing, socket_root,
                               env_python=lambda image: envs.env_python(image),
                               unix_user=lambda user: unix_account(user, prefix))
        balancer = Balancer(balancer_dir(state), lane=self.fast_lane())
        max_bytes = self.max_model_bytes

        async def copy(user: str, source: str, target: str, check: bool) -> dict[str, Any]:
            return await copy_model(user, account_of(user, prefix).unix_user, source,
                                    target, check, max_bytes)

        async def remove(user: str, target: str) -> None:
            """A refused deploy's copy, and its endpoint's folder when nothing else is in
            it (a new endpoint that was refused leaves no empty folder behind)."""
            unix_user = account_of(user, prefix).unix_user
            await as_user(unix_user, ["/bin/rm", "-rf", "--", target], 120)
            await as_user(unix_user, ["/bin/rmdir", "--ignore-fail-on-non-empty", "--",
                                      posixpath.dirname(target)], 30)

        models = Models(Store(self.db_url), runner, balancer,
                        lambda: cached_catalog(catalog_path),
                        home_of=lambda user: account_of(user, prefix).home,
                        copy_model=copy, remove_copy=remove,
                        image_built=lambda image: envs.env_python(image).exists(),
                        poll_interval=self.poll_interval, published=view_path(state),
                        proxy_routes=self.proxy_routes if balancer.lane else None)
        return models, balancer

    def fast_lane(self) -> Any:
        """HAProxy's fast lane (:mod:`.balancer`), unless the prefix cannot be one."""
        from .balancer import LANE_MAX_BODY, PREFIX_PATH, TOKENS_MAP, FastLane

        if not PREFIX_PATH.match(self.public_prefix):
            self.log.warning("no fast lane: the prefix %r has characters beyond letters, "
                             "digits, - and _; the gateway answers every request",
                             self.public_prefix)
            return None
        state = Path(self.state_dir)
        return FastLane(direct=str(direct_socket(state)), gateway=str(gateway_socket(state)),
                        meter=str(meter_socket(state)),
                        tokens_map=str(balancer_dir(state) / TOKENS_MAP),
                        prefix=self.public_prefix,
                        max_body_bytes=min(self.max_body_bytes, LANE_MAX_BODY))

    async def proxy_routes(self, names: list[str]) -> None:
        """The hub's proxy routes exactly ``names`` to the fast lane (:mod:`.hubroutes`)."""
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        api_url = os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
        request = HTTPRequest(
            f"{api_url.rstrip('/')}/studiohub/endpoint-routes", method="PUT",
            headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                     "Content-Type": "application/json"},
            body=json.dumps({"endpoints": names}), request_timeout=30.0)
        await AsyncHTTPClient().fetch(request)

    def start(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        models, _ = self.make_models()
        socket_path = manager_socket(self.state_dir)
        serve(create_app(models, self.public_prefix), socket_path)
        self.log.info("models manager listening on %s", socket_path)
        loop = IOLoop.current()

        async def begin() -> None:
            await models.reconcile()
            await models.run()

        loop.add_callback(begin)
        # Replicas, the balancer and the gateway are not this process's children: they
        # keep serving while it restarts, and the next start adopts them.
        signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
        with contextlib.suppress(KeyboardInterrupt):
            loop.start()
        self.log.info("models manager stopped; endpoints go on")


main = ModelsApp.launch_instance
