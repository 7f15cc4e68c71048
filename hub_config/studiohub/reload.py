"""``studiohub reload``: catalog domains, their members and admin users applied to the
running hub, without a restart (issue 14.3).

What is live without this: images, sizes and which domain may use them. Every spawner,
the hub's kernel API and the jobs service read the catalog through
:func:`studiohub.catalog_choice.cached_catalog`, which reloads the file when its mtime
changes, so new spawns and kernel switches see the new catalog at once.

What JupyterHub reads only at its start, and this applies: each domain as a group with
its listed ``members`` (``JupyterHub.load_groups``, run again through JupyterHub's own
``init_groups``), ``auth.admin_users`` (the authenticator's set, which decides admin at
every login, and each listed user's admin flag), and the sharing service's copy of the
domains (the service is restarted when the domains changed). Nothing is removed, as at
a start: a user taken out of ``members`` or ``admin_users`` keeps the group or the admin
flag until an admin changes it in the admin panel.

The CLI validates ``config.yaml`` and the catalog first and sends nothing when either
has a problem; the hub validates again what *it* reads (its own ``STUDIOHUB_*``
environment) and answers 400 with every problem, changing nothing. The CLI calls with
the token of the ``studiohub-cli`` service (``state/cli-token``, root's only).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import requests
import yaml
from jupyterhub import orm, roles
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from .catalog import Catalog, CatalogError, load_catalog
from .paths import paths
from .settings import SettingsError, config_file, load_settings

#: The handler's path under the hub's API (``/hub/api/studiohub/reload``).
PATH = "/api/studiohub/reload"
#: The hub service whose token the CLI uses, and the file that token is kept in.
CLI_SERVICE, CLI_TOKEN_FILE = "studiohub-cli", "cli-token"
SCOPES = ["admin:users", "admin:groups"]
SHARING_SERVICE = "sharing"


class ReloadIncomplete(RuntimeError):
    """Applied, but a part failed on the hub's side (a 503 naming it, not a 500)."""


def load_checked() -> tuple[dict[str, Any], Catalog]:
    """Settings and catalog, or a ``ValueError`` listing every problem of both files."""
    problems: list[str] = []
    settings: dict[str, Any] | None = None
    try:
        settings = load_settings()
    except SettingsError as e:
        problems.extend(str(e).splitlines())
    try:
        catalog = load_catalog(settings["catalog_path"] if settings else catalog_path_in_use())
    except CatalogError as e:
        problems.extend(str(e).splitlines())
    if problems:
        raise ValueError("\n".join(problems))
    assert settings is not None
    return settings, catalog


def catalog_path_in_use() -> str | None:
    """The catalog a config.yaml with problems names, so both files are checked at once."""
    if os.environ.get("STUDIOHUB_CATALOG"):
        return os.environ["STUDIOHUB_CATALOG"]
    try:
        raw = yaml.safe_load(config_file().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raw = None
    if isinstance(raw, dict) and isinstance(raw.get("catalog_path"), str):
        return str(raw["catalog_path"])
    default = paths().etc / "catalog.yaml"
    return str(default) if default.exists() else None


# --- in the hub ---------------------------------------------------------------------------

async def apply_live(app: Any, settings: dict[str, Any], catalog: Catalog) -> list[str]:
    """Apply domains, members and admins to the running hub; what changed, one line each.

    Every name is checked first: a ``ValueError`` here has changed nothing.
    """
    authenticator = app.authenticator
    names = {*settings["auth"]["admin_users"],
             *(m for d in catalog.domains.values() for m in d.members)}
    bad = sorted(n for n in names
                 if not authenticator.validate_username(authenticator.normalize_username(n)))
    if bad:
        raise ValueError(f"not valid user names for this hub: {', '.join(bad)} "
                         "(auth.admin_users, domains.*.members); nothing changed")
    changes = _apply_admins(app, settings)
    changes += await _apply_groups(app, catalog)
    if await _restart_sharing(app, catalog):
        changes.append(f"restarted the {SHARING_SERVICE} service (it reads the domains "
                       "at its start)")
    return changes


def _apply_admins(app: Any, settings: dict[str, Any]) -> list[str]:
    authenticator, db = app.authenticator, app.db
    admins = {authenticator.normalize_username(n) for n in settings["auth"]["admin_users"]}
    _seed_admin_passwords(settings, admins)
    changes = [admin_login_hint(settings, n) for n in sorted(admins - authenticator.admin_users)]
    authenticator.admin_users = set(admins)
    if authenticator.allowed_users:
        authenticator.allowed_users |= admins
    for name in sorted(admins):
        user = orm.User.find(db, name)
        if user is None:
            user = orm.User(name=name, admin=True)
            db.add(user)
            changes.append(f"created admin user {name}")
        elif user.admin:
            continue
        else:
            user.admin = True
            changes.append(f"admin flag set: {name}")
        roles.assign_default_roles(db, entity=user)
    db.commit()
    return changes


def _seed_admin_passwords(settings: dict[str, Any], admins: set[str]) -> None:
    """Under first-use passwords a new admin's name gets the admins' password before it
    exists in the hub, as ``studiohub up`` does: else whoever logged in first as that
    name would choose its password, and be an admin."""
    if settings["auth"]["type"] != "firstuse" or not admins:
        return
    from . import auth, configurer

    password = configurer.read_secret(settings, "admin-password", 32)
    dbm_path = Path(settings["state_dir"]) / auth.PASSWORDS_DBM
    for name in sorted(admins):
        auth.seed_firstuse_password(dbm_path, name, password)


def admin_login_hint(settings: dict[str, Any], name: str) -> str:
    """How a new admin logs in, for reload's output: ``state/admin-password`` only where
    it opens the account (an admin who already had a password keeps their own)."""
    kind = settings["auth"]["type"]
    if kind not in ("firstuse", "shared-password"):
        return f"admin at login: {name} (logs in through {kind})"
    secret = Path(settings["state_dir"]) / "admin-password"
    if kind == "firstuse":
        from . import auth

        password = secret.read_text().strip() if secret.exists() else ""
        dbm_path = Path(settings["state_dir"]) / auth.PASSWORDS_DBM
        if not (password and auth.password_opens(dbm_path, name, password)):
            return f"admin at login: {name} (logs in with the password they already chose)"
    return f"admin at login: {name} (logs in with the password in {secret})"


async def _apply_groups(app: Any, catalog: Catalog) -> list[str]:
    """Domains as groups with their members, by JupyterHub's own start-up code."""
    if app.authenticator.manage_groups:
        return ["groups left to the authenticator (manage_groups): members not applied"]
    normalize, changes = app.authenticator.normalize_username, []
    for domain in catalog.domains.values():
        group = orm.Group.find(app.db, domain.id)
        if group is None:
            changes.append(f"created group {domain.id}")
        have = {u.name for u in group.users} if group is not None else set()
        added = sorted({normalize(m) for m in domain.members} - have)
        if added:
            changes.append(f"group {domain.id}: added {', '.join(added)}")
    app.load_groups = {d.id: {"users": list(d.members)} for d in catalog.domains.values()}
    await app.init_groups()
    return changes


async def _restart_sharing(app: Any, catalog: Catalog) -> bool:
    """Restart the sharing service when the domains differ from those it started with."""
    from .hubapp import stop_process

    domains = {d.id: d.display_name for d in catalog.domains.values()}
    service = app._service_map.get(SHARING_SERVICE)
    started_with = getattr(app, "studiohub_sharing_domains", None)
    app.studiohub_sharing_domains = domains
    if started_with is None:  # the first reload: the domains the hub started with
        started_with = dict.fromkeys(app.config.JupyterHub.get("load_groups", {}))
        if set(started_with) == set(domains):
            return False
    elif started_with == domains:
        return False
    if service is None or not service.managed or service.proc is None:
        return False
    service.spawner.stop_polling()  # the old process is not restarted by its poller
    await stop_process(service.proc.pid, service.proc)
    try:
        await service.start()
    except Exception:  # the groups are applied: say it, do not turn it into a 500
        app.log.exception("studiohub reload: restarting the %s service failed", service.name)
        raise ReloadIncomplete(f"groups and admins applied, but the {service.name} service "
                               "did not start again: see the hub log, then restart the hub"
                               ) from None
    return True


class ReloadHandler(APIHandler):
    """``POST /hub/api/studiohub/reload``: validate, then apply (or 400, nothing changed)."""

    async def post(self) -> None:
        if not set(SCOPES) <= set(self.parsed_scopes):
            raise web.HTTPError(403, f"reload needs the scopes {', '.join(SCOPES)}")
        try:
            settings, catalog = load_checked()
        except ValueError as e:
            self.set_status(400)
            self.write({"status": 400, "message": f"nothing changed: {e}",
                        "problems": str(e).splitlines()})
            return
        started = self.app.config.StudioSpawner.get("catalog_path", "")
        if (settings["catalog_path"] or "") != started:
            self.set_status(409)
            message = (f"the catalog is now {settings['catalog_path'] or 'the built-in one'}"
                       f", the hub started with {started or 'the built-in one'}: nothing "
                       "changed; restart the hub once (Ctrl-C, make up) to change files")
            self.write({"status": 409, "message": message, "problems": [message]})
            return
        try:
            changes = await apply_live(self.app, settings, catalog)
        except (ValueError, ReloadIncomplete) as e:
            status = 503 if isinstance(e, ReloadIncomplete) else 400
            self.set_status(status)
            self.write({"status": status, "message": str(e), "problems": [str(e)]})
            return
        self.log.info("studiohub reload by %s: %s", self.current_user.name,
                      "; ".join(changes) or "nothing to change")
        self.write({"status": 200, "changes": changes})


def update_reload(c: Any, settings: dict[str, Any], token: str) -> None:
    """The handler, and the CLI's service with just the scopes it needs."""
    c.JupyterHub.extra_handlers = [
        *[h for h in c.JupyterHub.get("extra_handlers", []) if h[0] != PATH],
        (PATH, ReloadHandler)]
    c.JupyterHub.services = [
        *[s for s in c.JupyterHub.get("services", []) if s["name"] != CLI_SERVICE],
        {"name": CLI_SERVICE, "api_token": token, "display": False}]
    c.JupyterHub.load_roles = [
        *[r for r in c.JupyterHub.get("load_roles", []) if r["name"] != CLI_SERVICE],
        {"name": CLI_SERVICE, "description": "studiohub reload: groups and admins",
         "scopes": [*SCOPES, "list:users", "list:groups"], "services": [CLI_SERVICE]}]


# --- the command --------------------------------------------------------------------------

def hub_api_url(settings: dict[str, Any]) -> str:
    """The hub's own API: where ``studiohub up`` recorded it, else derived from the port
    (``studiohub.hub_url``), so a hub started with ``STUDIOHUB_PORT`` is found without it."""
    from . import hub_url

    return hub_url.api_url(settings)


def reload_command() -> int:
    """Check both files (every problem, nothing sent), then have the hub apply them."""
    try:
        settings, _ = load_checked()
    except ValueError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        print("error: nothing was changed", file=sys.stderr)
        return 1
    token_file = Path(settings["state_dir"]) / CLI_TOKEN_FILE
    try:
        token = token_file.read_text().strip()
    except OSError:
        print(f"error: no {token_file}: start the hub with studiohub up (a hub started "
              "before studiohub reload existed needs one restart)", file=sys.stderr)
        return 1
    url = hub_api_url(settings) + PATH.removeprefix("/api")
    try:
        r = requests.post(url, headers={"Authorization": f"token {token}"}, timeout=120)
    except requests.ConnectionError:
        print(f"error: no hub answers at {url}: the files are valid and take effect when "
              "it starts (studiohub up)", file=sys.stderr)
        return 1
    try:
        body = r.json()
    except json.JSONDecodeError:
        body = {"message": r.text[:500]}
    if r.status_code == 404:
        print("error: the running hub has no reload (it was started by an older "
              "StudioHub): restart it once", file=sys.stderr)
        return 1
    if r.status_code != 200:
        for line in str(body.get("message") or r.reason).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    print("StudioHub reloaded: " + ("; ".join(body["changes"]) or "nothing to change"))
    print("Live now: images, sizes and domains for new servers and kernel switches, "
          "group members, admins.")
    return 0
