"""Register the training jobs service with JupyterHub: ``update_jobs(c, settings)``.

Like the other ``update_<section>`` functions it only *sets* traits and can run any
number of times. It reads the ``jobs:`` block of StudioHub's settings (defaults in
:data:`DEFAULTS`; on by default, ``jobs: {enabled: false}`` turns it off) and sets:

- ``JupyterHub.services``: the managed ``jobs`` service at ``/services/jobs/``, on the
  hub's port + 83 (sharing has + 82), started as root by the hub (it starts replicas as
  the users' accounts and owns their logs);
- ``JupyterHub.load_roles``: the ``jobs-service`` role, with one scope only,
  ``custom:studiohub:jobs-placement`` (place and release job replicas through the hub);
  every user may reach the service (``access:services!service=jobs`` on the ``user``
  role; the service itself checks that a job is the caller's own);
- ``Spawner.server_token_scopes``: plus that access, so the Lab's server side can call
  the service with the server's own token; ``Spawner.environment``:
  ``STUDIOHUB_JOBS_URL`` (:data:`studiohub.contract.JOBS_URL`).
"""

from __future__ import annotations

import sys
from typing import Any

from traitlets.config import Config

from .. import contract
from ..hubapi import JOBS_PLACEMENT_SCOPE
from ..paths import paths
from ..sharing.config import servers_url

SERVICE = "jobs"
ROLE = "jobs-service"
ACCESS_SCOPE = f"access:services!service={SERVICE}"
PORT_OFFSET = 83  # sharing: + 82, the hub's API: + 81, the proxy's: + 1

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "port": None,  # None: the hub's port + 83
    "db_url": None,  # None: SQLite <state_dir>/jobs.sqlite; postgresql://... in production
    "poll_interval": 1.0,  # seconds between polls of running jobs and the queue
    "auth_cache_seconds": 10,
    # Most bytes of one replica's output kept on disk per attempt (local executor): the
    # newest, in two rotating parts; a log that dropped older output says so first.
    "max_log_bytes": 100 * 1024 * 1024,
    # Most jobs a user keeps (any status): their logs stay on the hub's disk until deleted,
    # so this (× replicas × max_log_bytes) bounds one user's share of it.
    "max_jobs_per_user": 1000,
}


def jobs_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``jobs:`` block over :data:`DEFAULTS`; unknown keys are refused by name."""
    block = settings.get("jobs") or {}
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown jobs setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(DEFAULTS)}")
    return {**DEFAULTS, **block}


def update_jobs(c: Config, settings: dict[str, Any]) -> None:
    """Register the jobs service, its role and the users' access (nothing when disabled)."""
    from ..configurer import _add_role, _add_service, add_server_token_scope, grant_user_role

    jobs = jobs_settings(settings)
    if not jobs["enabled"]:
        return
    _add_service(c, make_service(settings, jobs))
    _add_role(c, {"name": ROLE, "description": "Place and release the replicas of users' "
                  "training jobs", "scopes": [JOBS_PLACEMENT_SCOPE], "services": [SERVICE]})
    grant_user_role(c, ACCESS_SCOPE)
    add_server_token_scope(c, ACCESS_SCOPE)
    c.Spawner.environment = {**c.Spawner.get("environment", {}),
                             contract.JOBS_URL: service_url_for_servers(settings)}


def make_service(settings: dict[str, Any], jobs: dict[str, Any]) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry (a pure function of the settings)."""
    port = int(jobs["port"] or int(settings["port"]) + PORT_OFFSET)
    command = [sys.executable, "-m", "studiohub.jobs", f"--state-dir={settings['state_dir']}",
               f"--poll-interval={float(jobs['poll_interval'])}",
               f"--auth-cache-seconds={int(jobs['auth_cache_seconds'])}",
               f"--max-log-bytes={max_log_bytes(jobs['max_log_bytes'])}",
               f"--max-jobs-per-user={max_jobs_per_user(jobs['max_jobs_per_user'])}"]
    if settings.get("catalog_path"):
        command.append(f"--catalog={settings['catalog_path']}")
    service: dict[str, Any] = {
        "name": SERVICE, "url": f"http://127.0.0.1:{port}", "command": command,
        "oauth_no_confirm": True, "oauth_client_allowed_scopes": [], "display": False,
        "info": {"description": "Training jobs"},
    }
    # The hub's prefix: jobs run the image environments the hub's kernels use (JupyterHub
    # passes a managed service only a few variables of its own environment).
    service["environment"] = {contract.PREFIX: str(paths().prefix)}
    if jobs["db_url"]:
        # In the environment, not the command line: a password stays out of `ps`.
        service["environment"]["STUDIOHUB_JOBS_DB_URL"] = jobs["db_url"]
    return service


def max_jobs_per_user(value: Any) -> int:
    """``jobs.max_jobs_per_user``: a whole number, at least 1 (refused by name)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"jobs.max_jobs_per_user must be a whole number, at least 1: "
                         f"{value!r}")
    return value


def max_log_bytes(value: Any) -> int:
    """``jobs.max_log_bytes``: a whole number of bytes, at least 1 KiB (refused by name)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ValueError(f"jobs.max_log_bytes must be a number of bytes, at least 1024: "
                         f"{value!r}")
    return value


def service_url_for_servers(settings: dict[str, Any]) -> str:
    """The service as users' servers reach it: through the proxy, on this host."""
    base = "/" + str(settings.get("base_url") or "/").strip("/")
    return f"{servers_url(settings)}{base.rstrip('/')}/services/{SERVICE}/"
