"""The tests' own hub helper leaves nothing running (tests/hubtools.py, issue 12.9).

A hub that dies without a clean stop leaves its proxy and managed services running with
its configuration: CI once ended with those of about ten test hubs still running 40
minutes later. ``Hub.stop`` must stop them also then; the session's own check
(``nothing_left_running`` in tests/conftest.py) would otherwise fail the run at its end.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests import processes
from tests.hubtools import TEST_CATALOG, Hub

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts a system hub: run as root")


def hub_processes(hub: Hub) -> dict[int, str]:
    """The hub's proxy and services (and the hub itself while it runs), by pid."""
    found = processes.started_by(hub.created, hub.own_ports(),
                                 commands=processes.HUB_OWN_COMMANDS)
    return {p.pid: " ".join(p.cmdline()) for p in found}


def test_a_killed_hub_leaves_nothing_after_its_stop(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    hub = Hub(tmp_path / "hub", catalog=TEST_CATALOG)
    hub.start()
    assert hub.process is not None
    running = hub_processes(hub)
    for part in ("configurable-http-proxy", "studiohub.sharing", "jupyterhub_idle_culler"):
        assert any(part in c for c in running.values()), (part, running)
    os.kill(hub.process.pid, signal.SIGKILL)  # a crash: no clean shutdown
    hub.process.wait()
    time.sleep(1)
    left = hub_processes(hub)
    # What outlives a killed hub (its proxy, in its process group; services where the hub
    # does not take them down with it) is what the stop must take care of.
    assert left, "nothing outlived the killed hub: this test no longer tests the stop"
    hub.stop()
    assert hub_processes(hub) == {}


def test_a_hub_that_does_not_come_up_is_stopped(tmp_path: Path) -> None:
    """``start`` stops what it started when the hub is not up in time (a fixture that
    fails in ``start`` never reaches its teardown)."""
    tmp_path.chmod(0o755)
    hub = Hub(tmp_path / "hub", catalog=TEST_CATALOG)
    with pytest.raises(TimeoutError):
        hub.start(timeout=3)
    assert hub.process is not None and hub.process.poll() is not None
    assert hub_processes(hub) == {}
