"""The models service as a program: ``create_app`` (tests) and ``ModelsApp`` (CLI).

JupyterHub starts it as a managed service (:func:`.config.update_models`), as root (it
copies models as their owners, runs the balancer and reaches the replicas' sockets),
with where it listens (``JUPYTERHUB_SERVICE_URL``), its prefix and the hub's API and
token in the environment. On start it adopts what still runs (:meth:`.service.Models.
reconcile`: the balancer and every replica outlive it and the hub), then supervises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from .. import envs
from ..catalog_choice import cached_catalog
from ..jobs.app import OAuthCallback, account_of
from ..jobs.snapshot import SnapshotError, as_user
from ..paths import paths
from ..sharing.base import MAX_DRAINED_BYTES, APIHandler
from ..slugs import DEFAULT_UNIX_PREFIX
from . import api, frontdoor
from .meter import Meter
from .model import EndpointError
from .service import Models
from .store import Store

MIB = 1024 * 1024


class NotFoundAPI(APIHandler):
    service_name = "models"

    def not_found(self, *_: str) -> None:
        raise web.HTTPError(404, f"no API at {self.request.path[:200]}: see docs/endpoints.md")

    get = post = put = patch = delete = not_found


def make_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    endpoint = r"api/endpoints/([a-z][a-z0-9-]{0,39})"
    table: list[tuple[str, type[web.RequestHandler]]] = [
        ("oauth_callback", OAuthCallback),
        ("api/?", api.RootHandler),
        ("api/endpoints", api.EndpointsHandler),
        (endpoint, api.EndpointHandler),
        (endpoint + "/traffic", api.TrafficHandler),
        (endpoint + "/rollback", api.RollbackHandler),
        (endpoint + "/metrics", api.MetricsHandler),
        (endpoint + "/logs", api.LogsHandler),
        (endpoint + "/tokens", api.TokensHandler),
        (endpoint + r"/tokens/([0-9a-f]{1,16})", api.TokenHandler),
        ("api/.*", NotFoundAPI),
        (r"([a-z][a-z0-9-]{0,39})/(v[12](?:/.*)?)", frontdoor.EndpointProxy),
        (".*", frontdoor.NotFoundProxy),
    ]
    return [(prefix + path, handler) for path, handler in table]


def create_app(models: Models, hub_auth: HubOAuth, balancer_socket: str,
               max_body_bytes: int = frontdoor.MAX_BODY_BYTES) -> web.Application:
    prefix = hub_auth.base_url
    return web.Application(make_routes(prefix), models=models, hub_auth=hub_auth,
                           service_prefix=prefix, cookie_secret=os.urandom(32),
                           log_function=log_request, meter=Meter(),
                           balancer_client=frontdoor.make_client(balancer_socket),
                           max_body_bytes=max_body_bytes)


def log_request(handler: web.RequestHandler) -> None:
    """One line a refused or failed request (predictions themselves are counted, not
    logged: :mod:`.meter`)."""
    if getattr(handler, "refusal_logged", False):
        return
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 \
        else logging.ERROR
    logging.getLogger("studiohub.models").log(
        level, "%d %s %s %.1fms", status, handler.request.method,
        handler.request.path[:200], 1000 * handler.request.request_time())


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
    auth_cache_seconds = Integer(10, help="How long a caller's identity is reused."
                                 ).tag(config=True)
    max_body_bytes = Integer(frontdoor.MAX_BODY_BYTES, help="Largest prediction request body."
                             ).tag(config=True)
    max_model_bytes = Integer(20 * 1024**3, help="Largest model an endpoint copies."
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
        "auth-cache-seconds": "ModelsApp.auth_cache_seconds",
        "max-body-bytes": "ModelsApp.max_body_bytes",
        "max-model-bytes": "ModelsApp.max_model_bytes",
        "socket-root": "ModelsApp.socket_root",
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
                               unix_user=lambda user: account_of(user, prefix).unix_user)
        balancer = Balancer(state / "endpoints" / "balancer")
        max_bytes = self.max_model_bytes

        async def copy(user: str, source: str, target: str, check: bool) -> dict[str, Any]:
            return await copy_model(user, account_of(user, prefix).unix_user, source,
                                    target, check, max_bytes)

        async def remove(user: str, target: str) -> None:
            await as_user(account_of(user, prefix).unix_user, ["/bin/rm", "-rf", "--",
                                                               target], 120)

        models = Models(Store(self.db_url), runner, balancer,
                        lambda: cached_catalog(catalog_path),
                        home_of=lambda user: account_of(user, prefix).home,
                        copy_model=copy, remove_copy=remove,
                        image_built=lambda image: envs.env_python(image).exists(),
                        poll_interval=self.poll_interval)
        return models, balancer

    def start(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        models, balancer = self.make_models()
        hub_auth = HubOAuth(cache_max_age=self.auth_cache_seconds)
        app = create_app(models, hub_auth, balancer.frontend_socket, self.max_body_bytes)
        listen = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10104"))
        server = HTTPServer(app, xheaders=True,
                            max_body_size=max(self.max_body_bytes + MIB, MAX_DRAINED_BYTES))
        server.listen(listen.port or 80, listen.hostname or "127.0.0.1")
        self.log.info("models service listening on %s, prefix %s", listen.geturl(),
                      hub_auth.base_url)
        loop = IOLoop.current()

        async def begin() -> None:
            await models.reconcile()
            await models.run()

        loop.add_callback(begin)
        # Replicas and the balancer are not this process's children: they keep serving
        # while it restarts, and the next start adopts them.
        signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
        with contextlib.suppress(KeyboardInterrupt):
            loop.start()
        self.log.info("models service stopped; endpoints go on")


main = ModelsApp.launch_instance
