"""Register the models service with JupyterHub: ``update_models(c, settings)``.

Like the other ``update_<section>`` functions it only *sets* traits. It reads the
``models:`` block of StudioHub's settings (defaults in :data:`DEFAULTS`; on by default,
``models: {enabled: false}`` turns it off) and sets:

- ``JupyterHub.services``: two managed services, started as root: ``models``, the
  gateway (:mod:`.gateway`) at ``/services/models/`` on the hub's port + 84 (the
  management API under ``api/``, each endpoint under ``<name>/``), and
  ``models-manager`` (:mod:`.app`, no URL: the gateway relays to its unix socket), so
  that predictions go on while the manager restarts;
- ``JupyterHub.load_roles``: the ``models-service`` role of the manager, with two
  scopes, ``custom:studiohub:endpoints-placement`` (place and release endpoint replicas
  through the hub, the one placement owner) and ``custom:studiohub:endpoints-routes``
  (the proxy's routes to HAProxy's fast lane, :mod:`.hubroutes`); every user may reach the gateway
  (``access:services!service=models``; it checks owner, domain or token itself);
- ``Spawner.server_token_scopes`` plus that access (the Lab and ``endpoints.predict``
  call with the server's token); ``Spawner.environment``: ``STUDIOHUB_MODELS_URL``.
"""

from __future__ import annotations

import sys
from typing import Any

from traitlets.config import Config

from .. import contract
from ..hubapi import ENDPOINTS_PLACEMENT_SCOPE
from ..paths import paths
from ..sharing.config import servers_url
from .hubroutes import ROUTES_SCOPE

SERVICE = "models"
MANAGER = "models-manager"
ROLE = "models-service"
ACCESS_SCOPE = f"access:services!service={SERVICE}"
PORT_OFFSET = 84  # jobs: + 83, sharing: + 82, the hub's API: + 81

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "port": None,  # None: the hub's port + 84
    "db_url": None,  # None: SQLite <state_dir>/models.sqlite
    "poll_interval": 1.0,
    "auth_cache_seconds": 10,
    "max_body_bytes": 32 * 1024 * 1024,  # the largest prediction request
    "max_model_bytes": 20 * 1024**3,  # the largest model a deploy copies
}


def models_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``models:`` block over :data:`DEFAULTS`; unknown keys and bad values refused."""
    block = settings.get("models") or {}
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown models setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **block}
    for key in ("max_body_bytes", "max_model_bytes"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
            raise ValueError(f"models.{key} must be a number of bytes, at least 1024: "
                             f"{value!r}")
    return merged


def update_models(c: Config, settings: dict[str, Any]) -> None:
    """Register the service, its role and the users' access (nothing when disabled)."""
    from ..configurer import _add_role, _add_service, add_server_token_scope, grant_user_role

    models = models_settings(settings)
    if not models["enabled"]:
        return
    _add_service(c, make_service(settings, models))
    _add_service(c, make_manager(settings, models))
    _add_role(c, {"name": ROLE, "description": "Place and release the replicas of users' "
                  "model endpoints; route their paths to the balancer",
                  "scopes": [ENDPOINTS_PLACEMENT_SCOPE, ROUTES_SCOPE], "services": [MANAGER]})
    grant_user_role(c, ACCESS_SCOPE)
    add_server_token_scope(c, ACCESS_SCOPE)
    c.Spawner.environment = {**c.Spawner.get("environment", {}),
                             contract.MODELS_URL: service_url_for_servers(settings)}


def make_service(settings: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The gateway's ``c.JupyterHub.services`` entry (a pure function of the settings)."""
    port = int(models["port"] or int(settings["port"]) + PORT_OFFSET)
    command = [sys.executable, "-m", "studiohub.serving.gateway",
               f"--state-dir={settings['state_dir']}",
               f"--auth-cache-seconds={int(models['auth_cache_seconds'])}",
               f"--max-body-bytes={models['max_body_bytes']}"]
    if settings.get("catalog_path"):
        command.append(f"--catalog={settings['catalog_path']}")
    return {
        "name": SERVICE, "url": f"http://127.0.0.1:{port}", "command": command,
        "oauth_no_confirm": True, "oauth_client_allowed_scopes": [], "display": False,
        "info": {"description": "Model endpoints"},
        "environment": {contract.PREFIX: str(paths().prefix)},
    }


def make_manager(settings: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The manager's entry: no URL (nothing but the gateway talks to it)."""
    base = "/" + str(settings.get("base_url") or "/").strip("/")
    command = [sys.executable, "-m", "studiohub.serving",
               f"--state-dir={settings['state_dir']}",
               f"--poll-interval={float(models['poll_interval'])}",
               f"--max-model-bytes={models['max_model_bytes']}",
               f"--max-body-bytes={models['max_body_bytes']}",
               f"--public-prefix={base.rstrip('/')}/services/{SERVICE}/"]
    if settings.get("catalog_path"):
        command.append(f"--catalog={settings['catalog_path']}")
    service: dict[str, Any] = {"name": MANAGER, "command": command, "display": False,
                               "environment": {contract.PREFIX: str(paths().prefix)}}
    if models["db_url"]:
        # In the environment, not the command line: a password stays out of `ps`.
        service["environment"]["STUDIOHUB_MODELS_DB_URL"] = models["db_url"]
    return service


def service_url_for_servers(settings: dict[str, Any]) -> str:
    """The service as users' servers reach it: through the proxy, on this host."""
    base = "/" + str(settings.get("base_url") or "/").strip("/")
    return f"{servers_url(settings)}{base.rstrip('/')}/services/{SERVICE}/"
