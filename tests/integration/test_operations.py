"""What an operator runs and relies on, on real processes: ``studiohub doctor``, a bad
catalog refused at start, idle kernels and idle servers culled."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from studiohub import cgroups
from tests.hubtools import HUB_BIN, Hub
from tests.integration.conftest import TEST_CATALOG, shut_down


def test_doctor_reports_what_this_host_enforces() -> None:
    result = subprocess.run([str(HUB_BIN / "studiohub"), "doctor"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {" ".join(line.split()[1:3]): line.split()[0]
             for line in result.stdout.splitlines()[1:]}
    caps = cgroups.detect()
    limits = [level for key, level in lines.items() if key.startswith("limits ")]
    assert limits == ["OK" if caps.enforced else "WARN"], result.stdout
    assert lines["proxy configurable-http-proxy"] == "OK"
    assert lines["env base"] == "OK"  # make test builds it


def test_a_bad_catalog_stops_the_hub_at_start_naming_file_and_key(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("badcatalog")
    hub = Hub(workdir, catalog={"defaults": {"size": "galactic"}})
    with pytest.raises(RuntimeError, match="studiohub up exited"):
        hub.start(timeout=60)
    assert f"catalog {workdir / 'catalog.yaml'}: defaults.size: unknown size 'galactic'" \
        in hub.log_tail()


def test_idle_kernels_then_idle_servers_are_culled(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("culling")
    workdir.chmod(0o755)
    culling = {"idle_kernel_timeout": 3, "kernel_cull_interval": 1,
               "idle_server_timeout": 40, "cull_every": 5}
    hub = Hub(workdir, catalog=TEST_CATALOG, settings={"culling": culling})
    hub.start()
    try:
        user = hub.new_user("cull")
        user.spawn(image="base", size="tiny")
        kernel = user.start_kernel()
        assert user.run("print(1)", kernel).stdout.strip() == "1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kernels = user.server_api("GET", "/kernels")
            if kernels.status_code != 200 or kernels.json() == []:
                break
            time.sleep(0.5)
        # Still the server's own answer: the kernel went first, not with its server.
        assert kernels.status_code == 200, f"the server went before its kernel: {kernels.text}"
        assert kernels.json() == [], "idle kernel not culled"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not hub.api("GET", f"/users/{user.name}").json()["servers"]:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"idle server not culled:\n{hub.log_tail()}")
        assert "idle-culler" in Path(hub.log_path).read_text()
    finally:
        shut_down(hub)


def test_config_yaml_check_reaches_the_operator(tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    workdir = tmp_path_factory.mktemp("badconfig")
    hub = Hub(workdir, settings={"culling": {"idle_servr_timeout": 60}})
    with pytest.raises(RuntimeError, match="studiohub up exited"):
        hub.start(timeout=60)
    assert "unknown setting(s) culling.idle_servr_timeout" in hub.log_tail()
    assert yaml.safe_load((workdir / "config.yaml").read_text())["culling"]
