"""``studiohub reload`` on a running hub (issue 14.3): a new domain with a member, and a
new admin, applied without a restart; a bad file refused with every problem, nothing
changed."""

from __future__ import annotations

import copy
import os
import subprocess
from typing import Any

import pytest
import yaml

from studiohub import pidrecords
from tests.hubtools import HUB_BIN, Hub
from tests.integration.conftest import TEST_CATALOG, remove_test_accounts, shut_down


def reload(hub: Hub) -> subprocess.CompletedProcess[str]:
    """``studiohub reload`` as the operator runs it, for this hub's config.yaml."""
    env = {**os.environ, "STUDIOHUB_CONFIG": str(hub.workdir / "config.yaml")}
    return subprocess.run([str(HUB_BIN / "studiohub"), "reload"], env=env, text=True,
                          capture_output=True, timeout=120)


def sharing_pid(hub: Hub) -> int:
    return next(r.pid for r in pidrecords.read(hub.state_dir / "run") if r.name == "sharing")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("reloadhub")
    workdir.chmod(0o755)
    hub = Hub(workdir, catalog=copy.deepcopy(TEST_CATALOG))
    hub.start()
    yield hub
    shut_down(hub)
    remove_test_accounts(hub)


def test_a_new_domain_with_a_member_and_a_new_admin_apply_live(hub: Hub) -> None:
    user = hub.new_user("rl")
    options = {"image": "base", "size": "reload-s"}
    assert hub.api("GET", "/groups/team-r").status_code == 404
    assert hub.catalog is not None
    hub.catalog["sizes"]["reload-s"] = {"display_name": "1 vCPU + 768 MiB", "cpus": 1,
                                        "memory": "768M"}
    hub.catalog["domains"]["team-r"] = {"display_name": "Team R", "images": ["base"],
                                        "sizes": ["reload-s"], "members": [user.name]}
    new_admin = f"ad{user.name[2:]}"
    hub.created_users.append(new_admin)
    hub.settings["auth"] = {"type": "shared-password", "admin_users": [hub.admin, new_admin]}
    hub.write_config()
    # The catalog file is read again by spawners at once, but the user is in no group yet.
    refused = user.api("POST", f"/users/{user.name}/server", json=options)
    assert refused.status_code == 400, refused.text
    before = sharing_pid(hub)

    done = reload(hub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created group team-r" in done.stdout and f"added {user.name}" in done.stdout
    assert "restarted the sharing service" in done.stdout, done.stdout

    group = hub.api("GET", "/groups/team-r").json()
    assert group["users"] == [user.name]
    assert hub.api("GET", f"/users/{new_admin}").json()["admin"] is True
    # The authenticator's own set: the new admin's password makes them admin at login.
    admin_password = (hub.state_dir / "admin-password").read_text().strip()
    session = hub.login(new_admin, admin_password)
    token = hub.token_for(session, new_admin)
    assert hub.api("GET", f"/users/{new_admin}", token=token).json()["admin"] is True
    # The sharing service, which reads the domains at its start, runs again.
    after = sharing_pid(hub)
    assert after != before and pidrecords.start_ticks(after) is not None

    user.spawn(**options)
    options_now = user.api("GET", f"/studiohub/users/{user.name}/kernel-options")
    assert options_now.status_code == 200, options_now.text
    assert "reload-s" in [s["id"] for s in options_now.json()["sizes"]]
    assert "base" in [i["id"] for i in options_now.json()["images"]]
    user.stop()
    again = reload(hub)  # nothing new: nothing changed
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout


def test_reload_finds_a_hub_started_on_another_port_without_being_told(hub: Hub) -> None:
    """The tour's case: ``STUDIOHUB_PORT=18600 studiohub up``, then ``studiohub reload`` in
    a shell without that variable. The hub's config here names its port, so reload runs
    with a copy that does not (it would derive 8081): the URL ``up`` recorded finds it."""
    config = yaml.safe_load((hub.workdir / "config.yaml").read_text())
    assert config.pop("port") == hub.port != 8000
    portless = hub.workdir / "config-without-port.yaml"
    portless.write_text(yaml.safe_dump(config))
    record = hub.state_dir / "run" / "hub-api-url"
    assert record.read_text().strip() == f"http://127.0.0.1:{hub.port + 81}/hub/api"
    assert record.stat().st_mode & 0o777 == 0o600
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIOHUB_")}
    done = subprocess.run([str(HUB_BIN / "studiohub"), "reload"], text=True, timeout=120,
                          env={**env, "STUDIOHUB_CONFIG": str(portless)},
                          capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "StudioHub reloaded" in done.stdout, done.stdout


def test_a_bad_catalog_or_config_is_refused_and_nothing_changes(hub: Hub) -> None:
    assert hub.catalog is not None
    good = copy.deepcopy(hub.catalog)
    hub.catalog["domains"]["team-bad"] = {"images": ["base"], "sizes": ["tiny"],
                                          "members": ["nobody"]}  # no display_name
    hub.catalog["sizes"]["typo"] = {"display_name": "Typo", "cpus": "many", "memory": "1G"}
    hub.write_config()
    try:
        refused = reload(hub)
        assert refused.returncode == 1
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert any("domains.team-bad: 'display_name'" in line for line in errors), errors
        assert any("sizes.typo.cpus: 'many'" in line for line in errors), errors
        assert "error: nothing was changed" in refused.stderr
        assert "Traceback" not in refused.stderr
        # The hub checks what it reads too: 400 with every problem, nothing changed.
        direct = hub.api("POST", "/studiohub/reload")
        assert direct.status_code == 400, direct.text
        assert direct.json()["status"] == 400 and len(direct.json()["problems"]) >= 2
        assert hub.api("GET", "/groups/team-bad").status_code == 404
        assert hub.api("GET", "/users/nobody").status_code == 404
        # Spawners read the file by its mtime: the bad version does not reach them.
        page = hub.login(hub.admin).get(f"{hub.url}/hub/spawn", timeout=30)
        assert page.status_code == 200 and "1 vCPU + 512 MiB" in page.text, page.status_code

        hub.catalog = good
        hub.settings["culling"] = {"idle_servr_timeout": 60, "enabled": "no"}
        hub.write_config()
        refused = reload(hub)
        assert refused.returncode == 1
        assert "unknown setting(s) culling.idle_servr_timeout" in refused.stderr
        assert "culling.enabled: 'no' is not true or false" in refused.stderr
    finally:
        hub.catalog = good
        hub.settings.pop("culling", None)
        hub.write_config()


def test_a_root_login_shell_finds_the_command(hub: Hub) -> None:
    """Issue 14.4: after `studiohub up`, `studiohub …` works in a new root shell."""
    found = subprocess.run(["env", "-i", "bash", "-lc", "command -v studiohub"],
                           capture_output=True, text=True, timeout=30)
    assert found.stdout.strip() == "/usr/local/bin/studiohub", found.stdout + found.stderr
    assert os.readlink("/usr/local/bin/studiohub") == str(HUB_BIN / "studiohub")
    assert "/usr/local/bin/studiohub → " in hub.log_path.read_text()
