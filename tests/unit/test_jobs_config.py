"""``update_jobs``: the managed service, its one-scope role, the users' access."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from studiohub import contract
from studiohub.configurer import update_services
from studiohub.hubapi import JOBS_PLACEMENT_SCOPE
from studiohub.jobs.config import DEFAULTS, jobs_settings, update_jobs
from studiohub.paths import paths


def settings(**jobs: Any) -> dict[str, Any]:
    return {"port": 8000, "state_dir": "/var/lib/sh", "base_url": "/", "ip": "",
            "catalog_path": "/etc/sh/catalog.yaml", "jobs": jobs, "sharing": {"enabled": False}}


def test_the_service_its_narrow_role_and_users_access() -> None:
    c = Config()
    update_jobs(c, settings(enabled=True, db_url="postgresql://u:secret@db/jobs"))
    (service,) = c.JupyterHub.services
    assert service["name"] == "jobs" and service["url"] == "http://127.0.0.1:8083"
    assert service["command"][1:3] == ["-m", "studiohub.jobs"]
    assert "--state-dir=/var/lib/sh" in service["command"]
    assert "--catalog=/etc/sh/catalog.yaml" in service["command"]
    assert not any("secret" in part for part in service["command"])
    assert service["environment"] == {"STUDIOHUB_JOBS_DB_URL": "postgresql://u:secret@db/jobs",
                                      contract.PREFIX: str(paths().prefix)}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["jobs-service"]["scopes"] == [JOBS_PLACEMENT_SCOPE]
    assert roles["jobs-service"]["services"] == ["jobs"]
    assert "access:services!service=jobs" in roles["user"]["scopes"]
    assert JOBS_PLACEMENT_SCOPE not in roles["user"]["scopes"]
    assert "access:services!service=jobs" in c.Spawner.server_token_scopes
    assert c.Spawner.environment[contract.JOBS_URL] == \
        "http://127.0.0.1:8000/services/jobs/"
    again = Config(c)
    update_jobs(again, settings(enabled=True))
    assert [s["name"] for s in again.JupyterHub.services] == ["jobs"]


def test_disabled_registers_nothing_and_unknown_keys_are_refused() -> None:
    c = Config()
    update_jobs(c, settings(enabled=False))
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub
    with pytest.raises(ValueError, match="unknown jobs setting"):
        jobs_settings(settings(enabeld=True))


def test_the_configurer_registers_it_by_default() -> None:
    assert DEFAULTS["enabled"] is True
    c = Config()
    update_services(c, settings())
    assert "jobs" in [s["name"] for s in c.JupyterHub.services]


def test_the_log_bound_reaches_the_service_and_a_bad_one_is_refused_by_name() -> None:
    c = Config()
    update_jobs(c, settings())
    assert f"--max-log-bytes={100 * 1024 * 1024}" in c.JupyterHub.services[0]["command"]
    update_jobs(c := Config(), settings(max_log_bytes=4096))
    assert "--max-log-bytes=4096" in c.JupyterHub.services[0]["command"]
    for bad in (100, "1G", True, 1.5):
        with pytest.raises(ValueError, match=r"jobs\.max_log_bytes must be a number of bytes"):
            update_jobs(Config(), settings(max_log_bytes=bad))
