"""``update_models``: the managed service, its one-scope role, the users' access."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from studiohub import contract
from studiohub.configurer import update_services
from studiohub.hubapi import ENDPOINTS_PLACEMENT_SCOPE, JOBS_PLACEMENT_SCOPE
from studiohub.serving.config import models_settings, update_models
from studiohub.serving.hubroutes import ROUTES_SCOPE


def settings(**models: Any) -> dict[str, Any]:
    return {"port": 8000, "state_dir": "/var/lib/sh", "base_url": "/", "ip": "",
            "catalog_path": "/etc/sh/catalog.yaml", "models": models,
            "sharing": {"enabled": False}, "jobs": {"enabled": False}}


def test_the_service_its_narrow_role_and_users_access() -> None:
    c = Config()
    update_models(c, settings(db_url="postgresql://u:secret@db/models"))
    gateway, manager = c.JupyterHub.services
    # The gateway is what the proxy reaches; the manager has no URL of its own.
    assert gateway["name"] == "models" and gateway["url"] == "http://127.0.0.1:8084"
    assert gateway["command"][1:3] == ["-m", "studiohub.serving.gateway"]
    assert manager["name"] == "models-manager" and "url" not in manager
    assert manager["command"][1:3] == ["-m", "studiohub.serving"]
    assert "--public-prefix=/services/models/" in manager["command"]
    for service in (gateway, manager):
        assert "--catalog=/etc/sh/catalog.yaml" in service["command"]
        assert not any("secret" in part for part in service["command"])
    assert manager["environment"]["STUDIOHUB_MODELS_DB_URL"] == \
        "postgresql://u:secret@db/models"
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # The manager may place endpoint replicas and route their paths to the balancer, and
    # nothing else (not jobs); not the gateway.
    assert roles["models-service"]["scopes"] == [ENDPOINTS_PLACEMENT_SCOPE, ROUTES_SCOPE]
    assert ROUTES_SCOPE not in roles["user"]["scopes"]
    assert f"--max-body-bytes={32 * 1024 * 1024}" in manager["command"]
    assert roles["models-service"]["services"] == ["models-manager"]
    assert JOBS_PLACEMENT_SCOPE not in roles["models-service"]["scopes"]
    assert ENDPOINTS_PLACEMENT_SCOPE not in roles["user"]["scopes"]
    assert "access:services!service=models" in roles["user"]["scopes"]
    assert "access:services!service=models" in c.Spawner.server_token_scopes
    assert c.Spawner.environment[contract.MODELS_URL] == \
        "http://127.0.0.1:8000/services/models/"


def test_on_by_default_off_when_asked_and_bad_settings_refused_by_name() -> None:
    c = Config()
    update_services(c, settings())
    assert "models" in [s["name"] for s in c.JupyterHub.services]
    off = Config()
    update_models(off, settings(enabled=False))
    assert "services" not in off.JupyterHub
    with pytest.raises(ValueError, match="unknown models setting"):
        models_settings(settings(replics=2))
    with pytest.raises(ValueError, match=r"models\.max_body_bytes"):
        models_settings(settings(max_body_bytes="big"))
