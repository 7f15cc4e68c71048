"""A system hub's default login, and its state directory, on a real hub (issues 12.10, 12.11).

The hub is started as `make up` starts it: no ``auth.type``, so as root each user chooses
a password at their first login (FirstUseAuthenticator) and only that password opens the
account afterwards; the admin logs in with ``state/admin-password``, set before anyone
could claim the admin's name.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hubtools import HUB_BIN, Hub, User
from tests.integration.conftest import TEST_CATALOG, shut_down

PASSWORD = "chosen-at-first-login"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if os.geteuid() != 0:
        pytest.skip("the system hub's default login needs root (a system install)")
    workdir = tmp_path_factory.mktemp("loginhub")
    workdir.chmod(0o755)
    hub = Hub(workdir, catalog=TEST_CATALOG)
    hub.settings = {"auth": {"admin_users": [hub.admin]}}  # no type: the system default
    hub.start()
    yield hub
    shut_down(hub)


def first_login(hub: Hub, password: str = PASSWORD) -> User:
    name = f"fu{uuid.uuid4().hex[:6]}"
    hub.created_users.append(name)
    session = hub.login(name, password)
    return User(hub, name, session, hub.token_for(session, name))


def test_the_default_is_first_use_passwords(hub: Hub) -> None:
    assert "First login: type a user name and choose a password" in hub.log_tail(200000)
    assert not (hub.state_dir / "password").exists()  # no shared password at all


def test_nobody_logs_in_as_a_user_with_another_password(hub: Hub) -> None:
    user = first_login(hub)
    _, response = hub.login_response(user.name, "someone-elses-password")
    assert response.status_code == 403
    assert "Invalid username or password" in response.text
    _, response = hub.login_response(user.name, PASSWORD)
    assert response.status_code == 302  # the owner still can


def test_a_short_first_password_is_refused_with_the_reason(hub: Hub) -> None:
    _, response = hub.login_response(f"fu{uuid.uuid4().hex[:6]}", "short")
    assert response.status_code == 403
    assert "Password too short! Please choose a password at least 8 characters" \
        in response.text


def test_the_admin_logs_in_with_the_admin_password_only(hub: Hub) -> None:
    _, response = hub.login_response(hub.admin, PASSWORD)  # claiming the admin's name
    assert response.status_code == 403
    assert hub.api("GET", "/users").status_code == 200  # admin-password login, admin token


def test_an_admin_added_by_reload_cannot_be_claimed_at_first_login(hub: Hub) -> None:
    """``studiohub reload`` gives a new admin's name the admins' password before the hub
    knows the name: else whoever logged in first as it would choose its password."""
    new_admin = f"na{uuid.uuid4().hex[:6]}"
    hub.created_users.append(new_admin)
    hub.settings["auth"] = {"admin_users": [hub.admin, new_admin]}
    env = {**os.environ, "STUDIOHUB_CONFIG": str(hub.write_config())}
    done = subprocess.run([str(HUB_BIN / "studiohub"), "reload"], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"created admin user {new_admin}" in done.stdout
    _, response = hub.login_response(new_admin, "attacker-chosen-1")
    assert response.status_code == 403
    admin_password = (hub.state_dir / "admin-password").read_text().strip()
    _, response = hub.login_response(new_admin, admin_password)
    assert response.status_code == 302
    assert hub.api("GET", f"/users/{new_admin}").json()["admin"] is True


def test_every_file_of_a_started_hubs_state_is_private(hub: Hub) -> None:
    """Issue 12.10: 0600 files (0700 directories), not only a 0700 state directory."""
    user = first_login(hub)
    user.spawn(image="base", size="tiny")  # the server's log is written under state too
    user.stop()
    seen = [hub.state_dir, *hub.state_dir.rglob("*")]
    names = {p.relative_to(hub.state_dir).as_posix() for p in seen}
    assert {"jupyterhub.sqlite", "jupyterhub_cookie_secret", "admin-password",
            "run/hub.pid", "run/sharing.pid"} <= names, names
    assert any(n.startswith("passwords.dbm") for n in names), names
    assert any(n.startswith("servers/") for n in names), names
    readable = [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in seen
                if not Path(p).is_symlink() and p.lstat().st_mode & 0o077]
    assert not readable, readable
