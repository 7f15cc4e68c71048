"""``studiohub reload`` before it calls the hub (issue 14.3): both files checked, every
problem printed, nothing sent; a hub that is not there or too old is said plainly. The
hub's side is tested on a real hub in tests/integration/test_reload.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from studiohub import hub_url, reload
from studiohub.cli import main


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\nport: 8999\n"
                    "auth:\n  type: shared-password\n")
    monkeypatch.setenv("STUDIOHUB_CONFIG", str(path))
    for var in ("STUDIOHUB_PORT", "STUDIOHUB_CATALOG", "STUDIOHUB_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
def posts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call the command makes to the hub (none answers)."""
    sent: list[str] = []

    def post(url: str, **kwargs: Any) -> None:
        sent.append(url)
        raise requests.ConnectionError("refused")

    monkeypatch.setattr(reload.requests, "post", post)
    return sent


def test_every_problem_of_both_files_and_nothing_sent(
        config: Path, posts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    catalog = config.parent / "catalog.yaml"
    catalog.write_text("domains:\n  team-x:\n    images: [base]\n    sizes: [small]\n"
                       "sizes:\n  odd:\n    display_name: Odd\n    cpus: many\n"
                       "    memory: 1G\n")
    config.write_text(config.read_text() + f"catalog_path: {catalog}\nprot: 1\n"
                      "culling:\n  enabled: 'no'\n")
    assert main(["reload"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"error: {config}: unknown setting(s) prot; known settings: auth, base_url, " \
        "catalog_path, culling, db_url, ip, jobs, lab, models, port, sharing, spawner, " \
        "state_dir" in err
    assert f"error: {config}: culling.enabled: 'no' is not true or false" in err
    # The catalog is checked too, even though config.yaml already failed.
    assert any("team-x: 'display_name' is a required property" in line for line in err), err
    assert any("sizes.odd.cpus: 'many'" in line for line in err), err
    assert err[-1] == "error: nothing was changed"
    assert posts == []


def test_a_hub_never_started_has_no_token(config: Path, posts: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reload"]) == 1
    assert "cli-token: start the hub with studiohub up" in capsys.readouterr().err
    assert posts == []


def test_no_hub_answering_is_said(config: Path, posts: list[str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    state = config.parent / "state"
    state.mkdir()
    (state / "cli-token").write_text("t0ken\n")
    assert main(["reload"]) == 1
    assert posts == ["http://127.0.0.1:9080/hub/api/studiohub/reload"]
    assert "no hub answers at http://127.0.0.1:9080/hub/api/studiohub/reload: the files " \
        "are valid" in capsys.readouterr().err


def test_the_hub_api_url_follows_port_and_base_url(tmp_path: Path) -> None:
    settings = {"port": 8000, "base_url": "/studio/", "state_dir": str(tmp_path)}
    assert reload.hub_api_url(settings) == "http://127.0.0.1:8081/studio/hub/api"


def test_the_url_the_running_hub_recorded_wins_over_the_config(tmp_path: Path) -> None:
    """``up`` ran with STUDIOHUB_PORT=18600; reload's shell has no such variable."""
    hub_url.record({"port": 18600, "base_url": "/", "state_dir": str(tmp_path)})
    record = tmp_path / "run" / hub_url.RECORD
    assert record.stat().st_mode & 0o777 == 0o600
    settings = {"port": 8000, "base_url": "/", "state_dir": str(tmp_path)}
    assert reload.hub_api_url(settings) == "http://127.0.0.1:18681/hub/api"
    record.write_text("http://elsewhere.example/hub/api\n")  # only ever this machine
    assert reload.hub_api_url(settings) == "http://127.0.0.1:8081/hub/api"


def test_reload_says_how_a_new_admin_logs_in(tmp_path: Path) -> None:
    import dbm

    import bcrypt

    (tmp_path / "admin-password").write_text("the-admin-password\n")
    with dbm.open(str(tmp_path / "passwords.dbm"), "c") as db:
        db["fresh"] = bcrypt.hashpw(b"the-admin-password", bcrypt.gensalt())
        db["tourann"] = bcrypt.hashpw(b"chosen-at-first-login", bcrypt.gensalt())
    settings = {"state_dir": str(tmp_path), "auth": {"type": "firstuse"}}
    assert reload.admin_login_hint(settings, "fresh") == \
        f"admin at login: fresh (logs in with the password in {tmp_path}/admin-password)"
    assert reload.admin_login_hint(settings, "tourann") == \
        "admin at login: tourann (logs in with the password they already chose)"


def test_a_name_the_authenticator_refuses_changes_nothing(tmp_path: Path) -> None:
    """The hub's side checks every member and admin name before changing anything."""
    import asyncio
    from types import SimpleNamespace

    from jupyterhub.auth import Authenticator

    from studiohub.catalog import load_catalog

    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text("domains:\n  team-x:\n    display_name: Team X\n"
                            "    images: [base]\n    sizes: [small]\n"
                            "    members: [ada, 'a/b']\n")
    authenticator = Authenticator(admin_users={"root"})
    app = SimpleNamespace(authenticator=authenticator, db=None)  # any use of db would fail
    settings = {"auth": {"admin_users": ["root", "bob"]}}
    with pytest.raises(ValueError, match=r"not valid user names for this hub: a/b "):
        asyncio.run(reload.apply_live(app, settings, load_catalog(str(catalog_file))))
    assert authenticator.admin_users == {"root"}
