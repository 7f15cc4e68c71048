"""The sharing service as a program: ``create_app`` (for tests) and ``SharingApp`` (CLI).

JupyterHub starts it as a managed service (see :func:`.config.update_sharing`) and
passes, in the environment, where it listens (``JUPYTERHUB_SERVICE_URL``), its URL
prefix (``JUPYTERHUB_SERVICE_PREFIX``), the hub's API (``JUPYTERHUB_API_URL``) and its
token and OAuth client (``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``); HubOAuth
reads those itself. ``SharingApp`` only maps its traits (settable as ``--flags``) to
:func:`create_app`'s arguments, as jupyterhub-idle-culler does.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from traitlets import Integer, Unicode, default
from traitlets.config import Application

from ..catalog import CatalogError, load_catalog
from ..paths import paths
from . import api, pages
from .base import APIHandler, PageHandler, error_message, hub_or_503
from .inputs import clipped
from .service import Limits, Sharing
from .snapshots import DIR_MODE, SnapshotFiles
from .store import Store

TEMPLATES = Path(__file__).with_name("templates")
MIB = 1024 * 1024


class OAuthCallback(HubOAuthCallbackHandler):
    """Finishes the hub's OAuth login for this service (``<prefix>oauth_callback``)."""

    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]

    async def get(self) -> None:
        """The login's last step asks the hub for a token: a 503 while the hub is down.

        A callback without its ``state`` is the request's fault (JupyterHub answers it
        with a 500), so it is a 400 here, before anything asks the hub."""
        if self.get_argument("code", "") and not self.get_argument("state", ""):
            raise web.HTTPError(400, "the login's state is missing: log in again")
        await hub_or_503(super().get())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The refusal's message as plain text (tornado's page would only say "Bad Request")."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(error_message(status_code, kwargs.get("exc_info")))


class NotFoundAPI(APIHandler):
    def not_found(self, *_: str) -> None:
        raise web.HTTPError(404, f"no API at {clipped(self.request.path, 200)}: see "
                                 "docs/sharing.md")

    get = post = put = patch = delete = not_found


class NotFoundPage(PageHandler):
    async def prepare(self) -> None:
        raise web.HTTPError(404, "nothing here: check that you copied the whole link")


def make_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Every route of the service under ``prefix`` (which ends with ``/``)."""
    share, rest = r"s/([^/]+)", r"api/v1/shares/([^/]+)"
    table: list[tuple[str, type[web.RequestHandler]]] = [
        ("oauth_callback", OAuthCallback),
        ("", pages.IndexPage),
        (share, pages.PreviewPage),
        (share + "/copy", pages.CopyPage),
        ("audit", pages.AuditPage),
        ("static/preview.css", pages.CssHandler),
        ("api/v1/domains", api.DomainsHandler),
        ("api/v1/shares", api.SharesHandler),
        (rest, api.ShareHandler),
        (rest + "/versions", api.VersionsHandler),
        (rest + r"/versions/([^/]+)", api.VersionHandler),
        (rest + "/copy", api.CopyHandler),
        ("api/v1/recent", api.RecentHandler),
        ("api/v1/audit", api.AuditHandler),
        ("api/.*", NotFoundAPI),
        (".*", NotFoundPage),
    ]
    return [(prefix + path, handler) for path, handler in table]


def create_app(sharing: Sharing, hub_auth: HubOAuth, *, servers_url: str,
               base_url: str = "/") -> web.Application:
    """The tornado application, from its parts (tests build these directly)."""
    prefix = hub_auth.base_url
    return web.Application(
        make_routes(prefix), sharing=sharing, hub_auth=hub_auth, service_prefix=prefix,
        servers_url=servers_url, base_url=base_url, template_path=str(TEMPLATES),
        css_url=f"{prefix}static/preview.css?v={pages.css_version()}",
        cookie_secret=os.urandom(32), log_function=log_request)


def log_request(handler: web.RequestHandler) -> None:
    """Refusals at warning level (they are what an operator looks for), the rest at debug;
    a refusal its handler logged with its message is not repeated."""
    if getattr(handler, "refusal_logged", False):
        return
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 \
        else logging.ERROR
    user = getattr(handler, "current_user", None) if status != 500 else None
    name = user.get("name", "") if isinstance(user, dict) else ""
    logging.getLogger("studiohub.sharing").log(
        level, "%d %s %s %s %.1fms", status, handler.request.method,
        clipped(handler.request.path, 200), name, 1000 * handler.request.request_time())


class SharingApp(Application):
    """Notebook sharing for StudioHub: a JupyterHub service."""

    name = "studiohub-sharing"
    description = __doc__

    data_dir = Unicode(
        help="""Directory of snapshot files and the default SQLite database (mode 0700).
        Default: <StudioHub state directory>/sharing.""").tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(paths().state / "sharing")

    db_url = Unicode(
        help="""SQLAlchemy URL of the sharing tables, e.g. postgresql://user@host/db.
        Default: $STUDIOHUB_SHARING_DB_URL (kept out of the command line, where other
        local users could read a password), else sqlite:///<data_dir>/sharing.sqlite."""
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("STUDIOHUB_SHARING_DB_URL") or \
            f"sqlite:///{Path(self.data_dir) / 'sharing.sqlite'}"

    catalog_path = Unicode(
        "", help="""The operator's catalog file (merged into the built-in one), the same the
        hub uses; domains and their display names come from it. Empty: built-in only."""
    ).tag(config=True)

    servers_url = Unicode(
        help="""Where users' servers are reached (the proxy), to write copies through their
        contents API: http://host:port without the base URL. Default: the origin of
        $JUPYTERHUB_PUBLIC_URL, else http://127.0.0.1:8000.""").tag(config=True)

    @default("servers_url")
    def _default_servers_url(self) -> str:
        public = urlparse(os.environ.get("JUPYTERHUB_PUBLIC_URL", ""))
        return f"{public.scheme}://{public.netloc}" if public.netloc else "http://127.0.0.1:8000"

    max_notebook_bytes = Integer(
        16 * MIB, help="""Largest snapshot in bytes (after outputs are removed when asked);
        larger ones are refused with 413. Enforced by this service.""").tag(config=True)

    max_shares_per_user = Integer(
        200, help="Live (not revoked) shares one user may have; more are refused with 403."
    ).tag(config=True)

    max_versions_per_share = Integer(
        50, help="Versions one link may have; more are refused with 403.").tag(config=True)

    auth_cache_seconds = Integer(
        10, help="""How long (seconds) a user's identity and groups are reused before asking
        the hub again: removing someone from a domain takes effect within this time."""
    ).tag(config=True)

    aliases = {  # noqa: RUF012  (traitlets reads the class attribute)
        "data-dir": "SharingApp.data_dir",
        "db-url": "SharingApp.db_url",
        "catalog": "SharingApp.catalog_path",
        "servers-url": "SharingApp.servers_url",
        "max-notebook-bytes": "SharingApp.max_notebook_bytes",
        "max-shares-per-user": "SharingApp.max_shares_per_user",
        "max-versions-per-share": "SharingApp.max_versions_per_share",
        "auth-cache-seconds": "SharingApp.auth_cache_seconds",
    }

    def make_sharing(self) -> Sharing:
        data = Path(self.data_dir)
        data.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(data, DIR_MODE)
        limits = Limits(self.max_notebook_bytes, self.max_shares_per_user,
                        self.max_versions_per_share)
        return Sharing(Store(self.db_url), SnapshotFiles(data / "snapshots"), limits,
                       load_catalog(self.catalog_path or None))

    def start(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        try:
            sharing = self.make_sharing()
        except CatalogError as e:
            self.log.error("%s", e)
            self.exit(1)
        hub_auth = HubOAuth(cache_max_age=self.auth_cache_seconds)
        app = create_app(sharing, hub_auth, servers_url=self.servers_url,
                         base_url=os.environ.get("JUPYTERHUB_BASE_URL", "/"))
        listen = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
        # API handlers stream and size-check their bodies; pages only take small forms.
        server = HTTPServer(app, xheaders=True, max_body_size=MIB)
        server.listen(listen.port or 80, listen.hostname or "127.0.0.1")
        self.log.info("sharing service listening on %s, prefix %s, data in %s",
                      listen.geturl(), hub_auth.base_url, self.data_dir)
        IOLoop.current().start()


main = SharingApp.launch_instance
