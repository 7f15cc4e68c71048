"""Domains from an authenticator that manages groups (OIDC groups), on a real hub.

JupyterHub refuses to start when the authenticator manages groups and ``load_groups`` is
set; StudioHub then leaves the groups, and so the domains, to the identity provider.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.hubtools import Hub
from tests.integration.conftest import TEST_CATALOG, remove_test_accounts

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "team-password-for-tests"


def test_groups_from_the_identity_provider_decide_the_domain(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("groupshub")
    workdir.chmod(0o755)
    auth = {"type": "tests.integration.team_auth.TeamAuthenticator", "admin_users": [],
            "config": {"TeamAuthenticator": {"user_password": PASSWORD,
                                             "manage_groups": True, "allow_all": True}}}
    hub = Hub(workdir, catalog=TEST_CATALOG, settings={"auth": auth},
              env={"PYTHONPATH": str(ROOT)})
    hub.start()
    try:
        name = f"ta{uuid.uuid4().hex[:6]}"
        hub.created_users.append(name)
        session, response = hub.login_response(name, PASSWORD)
        assert response.status_code == 302, response.text
        token = hub.token_for(session, name)
        model = hub.api("GET", f"/users/{name}", token=token).json()
        assert model["groups"] == ["team-a"]
        refused = hub.api("POST", f"/users/{name}/server", token=token,
                          json={"image": "pytorch", "size": "tiny"})
        assert refused.status_code == 400, refused.text
        assert "allowed images are base" in refused.json()["message"]
    finally:  # no server was started, and this hub has no admin account to ask with
        try:
            hub.stop()
        finally:
            remove_test_accounts(hub)
