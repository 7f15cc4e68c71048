"""What the sharing service adds to JupyterHub's configuration, as pure builders.

:func:`studiohub.configurer.update_sharing` (the one ``update_sharing``, called by
``configurer.apply`` and, on Kubernetes, by ``studiohub.kube``) sets these on a
traitlets ``Config``. From the ``sharing:`` block of StudioHub's settings (defaults in
:data:`DEFAULTS`):

- ``JupyterHub.services``: the managed ``sharing`` service (:func:`make_service`), at
  ``/services/sharing/``; its browser tokens may act on the user's *own* server only
  (``access:servers!user``, to write "Copy to my workspace") and carry the audit scope
  if the user holds it.
- ``JupyterHub.load_roles``: every user may reach the service
  (:data:`ACCESS_SCOPE` added to the ``user`` role; the service itself decides by
  domain); the ``sharing-auditors`` role (:func:`make_auditors_role`: the hub's admin
  users plus ``sharing.auditors``) holds the custom audit scope. The service's own token
  needs no scope at all: it only identifies users, with their own tokens.
- ``JupyterHub.custom_scopes``: the audit scope (:data:`CUSTOM_SCOPES`).
- ``Spawner.server_token_scopes``: the default server scopes plus access to the
  service, so the Lab extension can call it with the server's own token.
- ``Spawner.environment``: ``STUDIOHUB_SHARING_URL``, where servers reach the service
  (:func:`service_url_for_servers`), for the Lab extension's server side.

Each scope's reason is in docs/sharing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..units import parse_memory

SERVICE = "sharing"
ACCESS_SCOPE = f"access:services!service={SERVICE}"
AUDIT_SCOPE = "custom:studiohub:read:sharing-audit"
AUDITORS_ROLE = "sharing-auditors"
PORT_OFFSET = 82  # the hub's API is at port + 81, the proxy's at port + 1
#: The service's URL in every user server's environment (read by ``studiohub_lab.sharing``).
URL_ENV = "STUDIOHUB_SHARING_URL"

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "port": None,  # None: the hub's port + 82
    "data_dir": None,  # None: <state_dir>/sharing
    "db_url": None,  # None: SQLite in data_dir; postgresql://... in production
    "max_notebook_size": "16M",  # per snapshot, after removing outputs when asked
    "max_shares_per_user": 200,
    "max_versions_per_share": 50,
    "auth_cache_seconds": 10,  # how soon a group change reaches the service
    "auditors": [],  # users who read the audit trail, besides the admin users
}
#: ``JupyterHub.custom_scopes`` the service adds.
CUSTOM_SCOPES = {AUDIT_SCOPE: {
    "description": "Read the audit trail of notebook sharing: who shared, opened, copied "
                   "and revoked which notebook, and when."}}


def sharing_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``sharing:`` block over :data:`DEFAULTS`; unknown keys are refused by name."""
    block = settings.get("sharing") or {}
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sharing setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(DEFAULTS)}")
    return {**DEFAULTS, **block}


def make_service(settings: dict[str, Any], sharing: dict[str, Any]) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry (a pure function of the settings)."""
    port = int(sharing["port"] or int(settings["port"]) + PORT_OFFSET)
    data_dir = sharing["data_dir"] or str(Path(settings["state_dir"]) / "sharing")
    command = [sys.executable, "-m", "studiohub.sharing", f"--data-dir={data_dir}",
               f"--servers-url={servers_url(settings)}",
               f"--max-notebook-bytes={parse_memory(sharing['max_notebook_size'])}",
               f"--max-shares-per-user={int(sharing['max_shares_per_user'])}",
               f"--max-versions-per-share={int(sharing['max_versions_per_share'])}",
               f"--auth-cache-seconds={int(sharing['auth_cache_seconds'])}"]
    if settings.get("catalog_path"):
        command.append(f"--catalog={settings['catalog_path']}")
    service: dict[str, Any] = {
        "name": SERVICE,
        "url": f"http://127.0.0.1:{port}",
        "command": command,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": ["access:servers!user", AUDIT_SCOPE],
        "display": True,
        "info": {"description": "Notebooks shared with your domains"},
    }
    if sharing["db_url"]:
        # In the environment, not the command line: a password in a URL stays out of `ps`.
        service["environment"] = {"STUDIOHUB_SHARING_DB_URL": sharing["db_url"]}
    return service


def make_auditors_role(settings: dict[str, Any], sharing: dict[str, Any]) -> dict[str, Any]:
    users = set((settings.get("auth") or {}).get("admin_users") or []) | set(sharing["auditors"])
    return {"name": AUDITORS_ROLE, "description": "Read the notebook sharing audit trail",
            "scopes": [AUDIT_SCOPE], "users": sorted(users)}


def servers_url(settings: dict[str, Any]) -> str:
    """The proxy as the service reaches it (on this host): users' servers are behind it."""
    ip = settings.get("ip") or "127.0.0.1"
    host = "127.0.0.1" if ip in ("0.0.0.0", "::", "") else ip
    return f"http://{host}:{int(settings['port'])}"


def service_url_for_servers(settings: dict[str, Any]) -> str:
    """The service as users' servers reach it: through the proxy, on this host."""
    base = "/" + str(settings.get("base_url") or "/").strip("/")
    return f"{servers_url(settings)}{base.rstrip('/')}/services/{SERVICE}/"
