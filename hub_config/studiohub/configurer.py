"""Turn StudioHub settings and the catalog into JupyterHub traits: every ``update_*``.

Each ``update_<section>(c, settings, ...)`` only *sets* traits on a traitlets
``Config``, so it can run any number of times and is tested on a bare ``Config``
with no hub running (the pattern of The Littlest JupyterHub's configurer). This module
is the one place they are defined or called from: a concern's own module may *build*
what its section needs (``sharing.config``, ``hubapi``) but the traits are set here.
"""

from __future__ import annotations

import getpass
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from traitlets.config import Config

from .auth import AUTHENTICATORS, MIN_PASSWORD_LENGTH, PASSWORDS_DBM, authenticator_class
from .catalog import Catalog
from .paths import paths, system_mode


def apply(c: Config, settings: dict[str, Any], catalog: Catalog) -> None:
    """Every section, in order. ``jupyterhub_config.py`` calls only this."""
    update_hub(c, settings)
    update_proxy(c, settings)
    update_auth(c, settings)
    update_spawner(c, settings)
    update_groups(c, catalog)
    update_culler(c, settings)
    update_services(c, settings)
    update_hubapi(c, settings)
    update_reload(c, settings)
    update_service_records(c, settings)
    update_pages(c)


def update_pages(c: Config) -> None:
    """The hub's pages as StudioHub's (``studiohub.hubpages``): its templates before
    JupyterHub's, its logo, and the data its home page shows (with the jobs link when
    the jobs service is set up, by ``update_services`` before this). An operator's
    ``jupyterhub_config.d`` file, loaded after, may set ``logo_file`` or add to these."""
    from . import hubpages
    from .jobs.config import SERVICE as JOBS

    templates = str(hubpages.TEMPLATES)
    c.JupyterHub.template_paths = [templates, *(p for p in c.JupyterHub.get(
        "template_paths", []) if p != templates)]
    c.JupyterHub.logo_file = str(hubpages.LOGO)
    jobs = any(s["name"] == JOBS for s in c.JupyterHub.get("services", []))
    first_use = c.JupyterHub.get("authenticator_class") == AUTHENTICATORS["firstuse"]
    c.JupyterHub.template_vars = {**hubpages.template_vars(jobs, first_use),
                                  **c.JupyterHub.get("template_vars", {})}


def update_hubapi(c: Config, settings: dict[str, Any]) -> None:
    """Kernel placements and server switches in the hub's API (see ``hubapi``)."""
    from .hubapi import update_hubapi as update

    update(c, settings)


def update_reload(c: Config, settings: dict[str, Any]) -> None:
    """``studiohub reload`` (``studiohub.reload``): its handler and the CLI's service,
    whose token is kept in ``state/cli-token``."""
    from .reload import CLI_TOKEN_FILE
    from .reload import update_reload as update

    update(c, settings, read_secret(settings, CLI_TOKEN_FILE, 32))


def update_hub(c: Config, settings: dict[str, Any]) -> None:
    state = Path(settings["state_dir"])
    c.JupyterHub.ip = settings["ip"]
    c.JupyterHub.port = int(settings["port"])
    c.JupyterHub.base_url = settings["base_url"]
    # The hub's own API listens beside the proxy; derived from the public port so
    # several hubs (tests, benchmarks) can run on one machine without more settings.
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = int(settings["port"]) + 81
    c.JupyterHub.db_url = settings["db_url"]
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    # User servers outlive a hub restart; the spawner's state finds them again.
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.default_url = "/hub/home"


#: JupyterHub's record of the proxy it started (read by ``installer.ensure_no_leftovers``).
PROXY_PID_FILE = "jupyterhub-proxy.pid"


def update_proxy(c: Config, settings: dict[str, Any]) -> None:
    state = Path(settings["state_dir"])
    c.JupyterHub.proxy_class = "studiohub.hubapp.StudioProxy"
    c.ConfigurableHTTPProxy.command = make_proxy_command(proxy_command(), shutil.which("node"))
    c.ConfigurableHTTPProxy.pid_file = str(state / PROXY_PID_FILE)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(settings['port']) + 1}"


#: Loaded into the proxy: a URL path that is not valid UTF-8 is a 400, not the proxy's 500.
PROXY_FIX = Path(__file__).with_name("proxyfix.js")


def make_proxy_command(proxy: str, node: str | None) -> list[str]:
    """The proxy with :data:`PROXY_FIX` preloaded (node runs its script with ``--require``).

    configurable-http-proxy 5.x answers its own 500 to a path such as ``/%ED%A0%80``
    (``decodeURIComponent`` throws) before the hub or a service sees the request.
    Without node on PATH the proxy's own command is used as it is.
    """
    if not node:
        return [proxy]
    return [node, "--require", str(PROXY_FIX), proxy]


def proxy_command() -> str:
    """configurable-http-proxy installed by ``studiohub up`` (npm), else from PATH."""
    local = paths().prefix / "npm" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy") or "configurable-http-proxy"


def update_auth(c: Config, settings: dict[str, Any]) -> None:
    """The authenticator of ``auth.type`` (docs/security.md: why each default)."""
    auth = settings["auth"]
    admins = set(auth.get("admin_users") or [])
    c.Authenticator.admin_users = admins
    if system_mode():
        from .users import create_on_login

        c.Authenticator.post_auth_hook = create_on_login
    if not system_mode():
        # A personal hub: only the account running it can log in and spawn.
        c.Authenticator.allowed_users = {getpass.getuser()}
    c.JupyterHub.authenticator_class = authenticator_class(auth["type"])
    if auth["type"] == "shared-password":
        c.SharedPasswordAuthenticator.user_password = auth["password"] or read_secret(
            settings, "password", 16)
        c.Authenticator.allow_all = system_mode()
        if admins:
            c.SharedPasswordAuthenticator.admin_password = read_secret(
                settings, "admin-password", 32)
    elif auth["type"] == "firstuse":
        # Anyone may create an account by choosing its password; the admins' passwords
        # are set beforehand by `studiohub up` (auth.seed_firstuse_password).
        c.FirstUseAuthenticator.dbm_path = str(Path(settings["state_dir"]) / PASSWORDS_DBM)
        c.FirstUseAuthenticator.min_password_length = MIN_PASSWORD_LENGTH
        c.FirstUseAuthenticator.create_users = True
        c.Authenticator.allow_all = system_mode()
    for cls, traits in (auth.get("config") or {}).items():
        for name, value in traits.items():
            setattr(c[cls], name, value)


def read_secret(settings: dict[str, Any], name: str, nbytes: int) -> str:
    """A secret kept in the state directory (0600), generated on first use."""
    path = Path(settings["state_dir"]) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(nbytes) + "\n")
    return path.read_text().strip()


def update_spawner(c: Config, settings: dict[str, Any]) -> None:
    culling, spawner = settings["culling"], settings["spawner"]
    c.JupyterHub.spawner_class = "studiohub.spawners.local.StudioSpawner"
    c.StudioSpawner.catalog_path = settings["catalog_path"] or ""
    c.Spawner.default_url = spawner["default_url"]
    c.Spawner.start_timeout = int(spawner["start_timeout"])
    c.Spawner.http_timeout = int(spawner["start_timeout"])
    c.Spawner.term_timeout = int(spawner["stop_timeout"])
    c.StudioSpawner.server_log_dir = str(Path(settings["state_dir"]) / "servers")
    c.StudioSpawner.max_placed_kernels = int(spawner["max_placed_kernels"])
    c.StudioSpawner.jupyter_news = bool(settings["lab"]["jupyter_news"])
    # Idle kernels are culled by each user's server (MappingKernelManager.cull_*).
    enabled = bool(culling["enabled"])
    c.StudioSpawner.kernel_cull_idle_timeout = int(culling["idle_kernel_timeout"]) \
        if enabled else 0
    c.StudioSpawner.kernel_cull_interval = int(culling["kernel_cull_interval"])
    c.StudioSpawner.kernel_cull_busy = bool(culling["cull_busy_kernels"])
    c.StudioSpawner.kernel_cull_connected = bool(culling["cull_connected_kernels"])


def update_groups(c: Config, catalog: Catalog) -> None:
    """Every catalog domain exists as a JupyterHub group; listed members are added."""
    c.JupyterHub.load_groups = {
        d.id: {"users": list(d.members)} for d in catalog.domains.values()
    }
    defer_groups_to_authenticator(c)


def authenticator_manages_groups(c: Config) -> bool:
    """Whether an authenticator section of ``c`` sets ``manage_groups`` (OIDC groups)."""
    return any(name.endswith("Authenticator") and isinstance(section, Config)
               and bool(section.get("manage_groups")) for name, section in c.items())


def defer_groups_to_authenticator(c: Config) -> None:
    """Let an authenticator that manages groups own them (the catalog's members go).

    JupyterHub refuses to start with ``load_groups`` when the authenticator manages
    groups; then the identity provider's groups are the domains. Called again after the
    operator's own config files, which may turn ``manage_groups`` on.
    """
    if authenticator_manages_groups(c):
        c.JupyterHub.pop("load_groups", None)


def update_culler(c: Config, settings: dict[str, Any]) -> None:
    """Idle servers are stopped by jupyterhub-idle-culler, a hub service with a narrow role."""
    culling = settings["culling"]
    if not culling["enabled"] or not culling["idle_server_timeout"]:
        return
    command = [sys.executable, "-m", "jupyterhub_idle_culler",
               f"--timeout={int(culling['idle_server_timeout'])}",
               f"--cull-every={int(culling['cull_every'])}"]
    if culling["max_server_age"]:
        command.append(f"--max-age={int(culling['max_server_age'])}")
    _add_service(c, {"name": "idle-culler", "command": command})
    _add_role(c, {
        "name": "idle-culler",
        "description": "Stop servers idle longer than the configured timeout",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    })


def update_services(c: Config, settings: dict[str, Any]) -> None:
    """StudioHub's own hub services, each registering itself with its narrowest role."""
    update_sharing(c, settings)
    from .jobs.config import update_jobs
    from .serving.config import update_models

    update_jobs(c, settings)
    update_models(c, settings)


def update_sharing(c: Config, settings: dict[str, Any]) -> None:
    """The notebook-sharing service, its roles and scopes (``studiohub.sharing.config``
    builds them; nothing when ``sharing.enabled`` is false)."""
    from .sharing import config as sharing

    block = sharing.sharing_settings(settings)
    if not block["enabled"]:
        return
    _add_service(c, sharing.make_service(settings, block))
    grant_user_role(c, sharing.ACCESS_SCOPE)
    _add_role(c, sharing.make_auditors_role(settings, block))
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}),
                                  **sharing.CUSTOM_SCOPES}
    add_server_token_scope(c, sharing.ACCESS_SCOPE)
    c.Spawner.environment = {**c.Spawner.get("environment", {}),
                             sharing.URL_ENV: sharing.service_url_for_servers(settings)}


#: JupyterHub's default ``server`` role, which ``server_token_scopes`` replaces when set.
DEFAULT_SERVER_SCOPES = ["users:activity!user", "access:servers!server"]


def grant_user_role(c: Config, scope: str) -> None:
    """Add ``scope`` to the ``user`` role, keeping what others added to it."""
    roles = list(c.JupyterHub.get("load_roles", []))
    user = next((r for r in roles if r["name"] == "user"), {"name": "user", "scopes": ["self"]})
    if scope not in user["scopes"]:
        user = {**user, "scopes": [*user["scopes"], scope]}
    _add_role(c, user)


def add_server_token_scope(c: Config, scope: str) -> None:
    """Give users' server tokens ``scope`` too (the Lab extension calls with that token)."""
    current = c.Spawner.get("server_token_scopes", DEFAULT_SERVER_SCOPES)
    if isinstance(current, list) and scope not in current:
        c.Spawner.server_token_scopes = [*current, scope]


def run_dir(settings: dict[str, Any]) -> Path:
    """Pid records of what the hub started (``studiohub.pidrecords``)."""
    return Path(settings["state_dir"]) / "run"


def update_service_records(c: Config, settings: dict[str, Any]) -> None:
    """Every managed service starts through ``studiohub.servicewrap``: it dies with the
    hub (parent-death signal) and leaves a pid record for the next ``studiohub up``."""
    wrap = [sys.executable, "-m", "studiohub.servicewrap", str(run_dir(settings))]
    services = []
    for service in c.JupyterHub.get("services", []):
        command = list(service.get("command") or [])
        if command and command[:len(wrap)] != wrap:
            service = {**service, "command": [*wrap, service["name"], "--", *command]}
        services.append(service)
    if services:
        c.JupyterHub.services = services


#: Seconds the hub waits for a managed service to answer at start before it gives up
#: (JupyterHub's 30 s: the sharing service's first import took ~30 s on a loaded 2-core
#: machine, and the hub then exited with "Cannot connect to sharing service").
SERVICE_START_TIMEOUT = 180


def _add_service(c: Config, service: dict[str, Any]) -> None:
    service = {"timeout": SERVICE_START_TIMEOUT, **service}
    c.JupyterHub.services = [*_without(c, "services", service["name"]), service]


def _add_role(c: Config, role: dict[str, Any]) -> None:
    c.JupyterHub.load_roles = [*_without(c, "load_roles", role["name"]), role]


def _without(c: Config, trait: str, name: str) -> list[dict[str, Any]]:
    """Entries of a list trait already set on ``c``, minus the one called ``name``."""
    current = c.JupyterHub.get(trait, [])
    return [entry for entry in current if entry["name"] != name]
