"""``configurer.update_sharing`` on a bare traitlets Config: the service, its roles and scopes
(built by ``studiohub.sharing.config``)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from traitlets.config import Config

from studiohub.configurer import update_sharing
from studiohub.sharing.config import (
    ACCESS_SCOPE,
    AUDIT_SCOPE,
    make_service,
    servers_url,
    sharing_settings,
)

SETTINGS: dict[str, Any] = {"ip": "0.0.0.0", "port": 9000, "state_dir": "/srv/state",
                            "catalog_path": "/etc/catalog.yaml",
                            "auth": {"admin_users": ["ada"]}}


def roles(c: Config) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in c.JupyterHub.load_roles}


def test_registers_the_service_with_its_narrow_oauth_scopes() -> None:
    c = Config()
    update_sharing(c, SETTINGS)
    (service,) = c.JupyterHub.services
    assert service["name"] == "sharing" and service["url"] == "http://127.0.0.1:9082"
    assert service["command"][:3] == [sys.executable, "-m", "studiohub.sharing"]
    assert "--data-dir=/srv/state/sharing" in service["command"]
    assert "--servers-url=http://127.0.0.1:9000" in service["command"]
    assert "--max-notebook-bytes=16777216" in service["command"]
    assert "--catalog=/etc/catalog.yaml" in service["command"]
    assert service["oauth_no_confirm"] is True
    assert service["oauth_client_allowed_scopes"] == ["access:servers!user", AUDIT_SCOPE]
    assert "environment" not in service


def test_every_user_may_reach_it_and_admins_audit() -> None:
    c = Config()
    update_sharing(c, {**SETTINGS, "sharing": {"auditors": ["cy"]}})
    assert roles(c)["user"] == {"name": "user", "scopes": ["self", ACCESS_SCOPE]}
    assert roles(c)["sharing-auditors"]["scopes"] == [AUDIT_SCOPE]
    assert roles(c)["sharing-auditors"]["users"] == ["ada", "cy"]
    assert "sharing" not in {r["name"] for r in c.JupyterHub.load_roles}  # no service role
    assert AUDIT_SCOPE in c.JupyterHub.custom_scopes
    assert c.Spawner.server_token_scopes == ["users:activity!user", "access:servers!server",
                                             ACCESS_SCOPE]


def test_servers_learn_where_the_service_is() -> None:
    """The Lab extension's server side forwards there (studiohub_lab.sharing)."""
    c = Config()
    c.Spawner.environment = {"KEEP": "1"}
    update_sharing(c, {**SETTINGS, "base_url": "/hub-a/"})
    assert c.Spawner.environment == {
        "KEEP": "1", "STUDIOHUB_SHARING_URL": "http://127.0.0.1:9000/hub-a/services/sharing/"}
    c = Config()
    update_sharing(c, SETTINGS)
    assert c.Spawner.environment["STUDIOHUB_SHARING_URL"] == \
        "http://127.0.0.1:9000/services/sharing/"


def test_keeps_what_others_configured_and_is_idempotent() -> None:
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=jobs"]},
                               {"name": "idle-culler", "scopes": ["list:users"]}]
    c.JupyterHub.services = [{"name": "idle-culler", "command": ["x"]}]
    c.JupyterHub.custom_scopes = {"custom:jobs:run": {"description": "run jobs"}}
    c.Spawner.server_token_scopes = ["users:activity!user", "custom:jobs:run"]
    for _ in range(2):
        update_sharing(c, SETTINGS)
    assert roles(c)["user"]["scopes"] == ["self", "access:services!service=jobs", ACCESS_SCOPE]
    assert "idle-culler" in roles(c)
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "sharing"]
    assert set(c.JupyterHub.custom_scopes) == {"custom:jobs:run", AUDIT_SCOPE}
    assert c.Spawner.server_token_scopes == ["users:activity!user", "custom:jobs:run",
                                             ACCESS_SCOPE]


def test_database_url_goes_in_the_environment_not_the_command_line() -> None:
    url = "postgresql://sharing:s3cret@db/studiohub"
    service = make_service(SETTINGS, sharing_settings({"sharing": {"db_url": url,
                                                                   "port": 7000}}))
    assert service["environment"] == {"STUDIOHUB_SHARING_DB_URL": url}
    assert not any("s3cret" in part for part in service["command"])
    assert service["url"] == "http://127.0.0.1:7000"


def test_disabled_registers_nothing() -> None:
    c = Config()
    update_sharing(c, {**SETTINGS, "sharing": {"enabled": False}})
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub


def test_unknown_sharing_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown sharing setting.*max_size"):
        update_sharing(Config(), {**SETTINGS, "sharing": {"max_size": "1G"}})


@pytest.mark.parametrize(("ip", "url"), [("0.0.0.0", "http://127.0.0.1:9000"),
                                         ("", "http://127.0.0.1:9000"),
                                         ("10.0.0.5", "http://10.0.0.5:9000")])
def test_the_service_reaches_servers_through_the_proxy(ip: str, url: str) -> None:
    assert servers_url({**SETTINGS, "ip": ip}) == url
