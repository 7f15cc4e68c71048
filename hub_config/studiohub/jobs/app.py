"""The jobs service as a program: ``create_app`` (for tests) and ``JobsApp`` (CLI).

JupyterHub starts it as a managed service (:func:`.config.update_jobs`), as root (the
executor starts replicas as the users' accounts and makes their cgroups' processes), and
passes where it listens (``JUPYTERHUB_SERVICE_URL``), its prefix, the hub's API and its
token in the environment; HubOAuth reads those itself. On start the service reconciles
its store with what the executor still runs (:meth:`.service.Jobs.reconcile`), then
runs its scheduler loop.

``--executor=kubernetes`` (set by :func:`studiohub.kube.configure` in the hub pod) runs
attempts as Indexed Jobs with :class:`.kube_executor.KubeExecutor` and places them with
:class:`.placing.KubePlacing` (:mod:`.kube_setup`); the default ``local`` runs them on
this host, placed by the hub (:class:`.placing.HubPlacing`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pwd
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from traitlets import Enum, Float, Integer, Unicode, default
from traitlets.config import Application

from .. import envs, users
from ..catalog_choice import cached_catalog
from ..paths import paths, system_mode
from ..sharing.base import APIHandler, hub_or_503, request_logger
from ..slugs import DEFAULT_UNIX_PREFIX
from . import api
from .placing import HubPlacing
from .service import Account, Jobs
from .store import Store

MIB = 1024 * 1024


class OAuthCallback(HubOAuthCallbackHandler):
    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]

    async def get(self) -> None:
        await hub_or_503(super().get())


class NotFoundAPI(APIHandler):
    service_name = "jobs"  # its refusal is logged as the jobs service's

    def not_found(self, *_: str) -> None:
        raise web.HTTPError(404, f"no API at {self.request.path[:200]}: see docs/training.md")

    get = post = put = patch = delete = not_found


def make_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    job = r"api/jobs/([0-9a-zA-Z_-]{1,64})"
    table: list[tuple[str, type[web.RequestHandler]]] = [
        ("oauth_callback", OAuthCallback),
        ("", api.RootHandler),
        ("api/jobs", api.JobsHandler),
        (job, api.JobHandler),
        (job + "/logs", api.LogsHandler),
        (job + "/events", api.EventsHandler),
        (job + "/metrics", api.MetricsHandler),
        (job + "/cancel", api.CancelHandler),
        (job + "/rerun", api.RerunHandler),
        (".*", NotFoundAPI),
    ]
    return [(prefix + path, handler) for path, handler in table]


def create_app(jobs: Jobs, hub_auth: HubOAuth,
               max_follows_per_user: int = api.MAX_FOLLOWS_PER_USER,
               check_code: Any = None) -> web.Application:
    """The tornado application, from its parts (tests build these directly);
    ``check_code(spec, account)``: the dry run's probe of the code (:mod:`.snapshot`)."""
    prefix = hub_auth.base_url
    return web.Application(make_routes(prefix), jobs=jobs, hub_auth=hub_auth,
                           service_prefix=prefix, cookie_secret=os.urandom(32),
                           log_function=request_logger("studiohub.jobs"),
                           follows=collections.Counter(),
                           max_follows_per_user=max_follows_per_user,
                           check_code=check_code)


def account_of(user: str, prefix: str = DEFAULT_UNIX_PREFIX) -> Account:
    """The account a user's replicas run as (created if missing, as a spawn would), and
    the python of each image's environment."""
    entry = users.ensure_user(user, prefix) if system_mode() else pwd.getpwuid(os.geteuid())
    return Account(entry.pw_name, entry.pw_dir,
                   python_of=lambda image: str(envs.env_python(image)))


class JobsApp(Application):
    """Training jobs for StudioHub: a JupyterHub service."""

    name = "studiohub-jobs"
    description = __doc__

    state_dir = Unicode(help="""StudioHub's state directory: the jobs' logs and orders go to
        <state_dir>/jobs/<id>/ (root only), the SQLite store to <state_dir>/jobs.sqlite.
        Default: <prefix>/state.""").tag(config=True)

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return str(paths().state)

    db_url = Unicode(help="""SQLAlchemy URL of the job store, e.g. postgresql://user@host/db.
        Default: $STUDIOHUB_JOBS_DB_URL (kept off the command line), else
        sqlite:///<state_dir>/jobs.sqlite.""").tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("STUDIOHUB_JOBS_DB_URL") or \
            f"sqlite:///{Path(self.state_dir) / 'jobs.sqlite'}"

    catalog_path = Unicode("", help="The operator's catalog file (the hub's).").tag(config=True)
    unix_user_prefix = Unicode(DEFAULT_UNIX_PREFIX, help="Prefix of users' unix accounts."
                               ).tag(config=True)
    poll_interval = Float(1.0, help="Seconds between polls of running jobs and the queue."
                          ).tag(config=True)
    auth_cache_seconds = Integer(10, help="How long a user's identity and groups are reused."
                                 ).tag(config=True)
    max_log_bytes = Integer(100 * 1024 * 1024, help="""Most bytes of one replica's output
        kept per attempt (local executor): the newest, in two rotating parts.""").tag(config=True)

    max_jobs_per_user = Integer(1000, help="""Most jobs one user keeps, whatever their status
        (their logs stay until deleted); a submit past it is refused (409).""").tag(config=True)

    max_follows_per_user = Integer(api.MAX_FOLLOWS_PER_USER, help="""Most job logs one user
        follows at a time (each holds one of root's host-wide inotify instances, or past
        the service's own cap a timer); the next follow is a 429.""").tag(config=True)

    executor = Enum(["local", "kubernetes"], "local", help="""Where replicas run: this host
        (placed by the hub's placement API) or Indexed Jobs in the hub pod's namespace
        (placed by the kube-scheduler).""").tag(config=True)
    checkpoint_claim = Unicode("studiohub-jobs", help="Kubernetes: the shared checkpoint "
                               "PersistentVolumeClaim (the chart's).").tag(config=True)
    home_claim_template = Unicode("claim-{username}", help="""Kubernetes: users' home claims,
        KubeSpawner's pvc_name_template ({username}: KubeSpawner's slug).""").tag(config=True)

    aliases = {  # noqa: RUF012  (traitlets reads the class attribute)
        "state-dir": "JobsApp.state_dir",
        "db-url": "JobsApp.db_url",
        "catalog": "JobsApp.catalog_path",
        "unix-user-prefix": "JobsApp.unix_user_prefix",
        "poll-interval": "JobsApp.poll_interval",
        "auth-cache-seconds": "JobsApp.auth_cache_seconds",
        "max-log-bytes": "JobsApp.max_log_bytes",
        "max-follows-per-user": "JobsApp.max_follows_per_user",
        "max-jobs-per-user": "JobsApp.max_jobs_per_user",
        "executor": "JobsApp.executor",
        "checkpoint-claim": "JobsApp.checkpoint_claim",
        "home-claim-template": "JobsApp.home_claim_template",
    }

    async def make_kube_executor(self) -> Any:
        """The Kubernetes executor, with the hub pod's service account and namespace."""
        from .kube_executor import KubeExecutor
        from .kube_setup import home_claim_name

        catalog_path, template = self.catalog_path, self.home_claim_template
        return await KubeExecutor.in_cluster(
            lambda: cached_catalog(catalog_path), checkpoint_claim=self.checkpoint_claim,
            home_claim=lambda user: home_claim_name(user, template))

    def make_jobs(self, executor: Any = None) -> Jobs:
        """The service; with ``executor="kubernetes"``, ``executor`` is the
        :meth:`make_kube_executor` one."""
        state = Path(self.state_dir)
        (state / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state / "jobs", 0o700)
        if self.executor == "kubernetes":
            from .kube_setup import make_kube_jobs

            if executor is None:
                raise ValueError("--executor=kubernetes: pass make_kube_executor()'s executor")

            kube_catalog = self.catalog_path
            return make_kube_jobs(Store(self.db_url), executor,
                                  lambda: cached_catalog(kube_catalog), state_dir=state,
                                  poll_interval=self.poll_interval,
                                  max_jobs_per_user=self.max_jobs_per_user)
        from .local import LocalExecutor
        from .removal import discard
        from .snapshot import prepare
        from .snapshot_copy import SERVER

        SERVER.start()  # the code snapshot's copy server, ready before the first submit

        placing = HubPlacing(os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
                             os.environ.get("JUPYTERHUB_API_TOKEN", ""))
        prefix = self.unix_user_prefix
        catalog_path = self.catalog_path
        return Jobs(Store(self.db_url), LocalExecutor(state, max_log_bytes=self.max_log_bytes),
                    placing,
                    lambda: cached_catalog(catalog_path), state_dir=state,
                    accounts=lambda user: account_of(user, prefix), prepare=prepare,
                    poll_interval=self.poll_interval, discard=discard,
                    max_jobs_per_user=self.max_jobs_per_user)

    def start(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        executor = None
        if self.executor == "kubernetes":
            executor = IOLoop.current().run_sync(self.make_kube_executor)
        jobs = self.make_jobs(executor)
        hub_auth = HubOAuth(cache_max_age=self.auth_cache_seconds)
        from .snapshot import check_code

        app = create_app(jobs, hub_auth, self.max_follows_per_user,
                         None if self.executor == "kubernetes" else check_code)
        listen = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10102"))
        server = HTTPServer(app, xheaders=True, max_body_size=MIB)
        server.listen(listen.port or 80, listen.hostname or "127.0.0.1")
        self.log.info("jobs service listening on %s, prefix %s, state in %s",
                      listen.geturl(), hub_auth.base_url, self.state_dir)
        loop = IOLoop.current()
        loop.add_callback(jobs.start)
        # The hub stops its services with SIGTERM or SIGINT: jobs keep running (their
        # keepers are not this process's), and the next start adopts them.
        signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
        with contextlib.suppress(KeyboardInterrupt):
            loop.start()
        self.log.info("jobs service stopped; running jobs go on")


main = JobsApp.launch_instance

