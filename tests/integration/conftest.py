"""A real StudioHub for the whole session: ``studiohub up``, the proxy, real unix users."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hubtools import Hub

# Small sizes so limits can be hit quickly on a 2-core CI machine.
TEST_CATALOG = {
    "sizes": {
        "tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
        "half": {"display_name": "0.5 vCPU + 1 GiB", "cpus": 0.5, "memory": "1G"},
        # More memory than any test machine has: refused for capacity, with the reason.
        "giant": {"display_name": "1 vCPU + 4 TiB", "cpus": 1, "memory": "4T"},
    },
    "domains": {
        "everyone": {"sizes": ["tiny", "half", "small", "medium", "giant"]},
        "team-a": {"display_name": "Team A", "images": ["base"], "sizes": ["tiny", "half"]},
    },
}


#: Low, so that the cap is reached before the machine's memory is.
MAX_PLACED_KERNELS = 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if os.geteuid() != 0:
        pytest.skip("integration tests create unix users and cgroups: run them as root")
    workdir = tmp_path_factory.mktemp("hub")
    workdir.chmod(0o755)
    hub = Hub(workdir, catalog=TEST_CATALOG,
              # stop_timeout: past the hub's slow_stop_timeout (10 s), so a frozen
              # server's stop outlasts it (test_switching).
              settings={"spawner": {"max_placed_kernels": MAX_PLACED_KERNELS,
                                    "stop_timeout": 15}})
    hub.start()
    yield hub
    shut_down(hub)


@pytest.fixture(autouse=True)
def stop_the_tests_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on a hub, stop the servers of the users it created, also when it
    failed half-way: a failure must not leave servers loading every later test."""
    if "hub" not in request.fixturenames:
        yield
        return
    hub: Hub = request.getfixturevalue("hub")
    before = len(hub.created_users)
    yield
    if hub.process is None or hub.process.poll() is not None:
        return
    for name in hub.created_users[before:]:
        with contextlib.suppress(requests.RequestException, ValueError, OSError):
            model = hub.api("GET", f"/users/{name}").json()
            if model.get("servers") or model.get("pending"):
                hub.stop_server(name, timeout=60)


def shut_down(hub: Hub) -> None:
    """Stop the servers, then the hub, then remove the accounts: each step even when one
    before it failed, so one broken teardown does not leave a hub loading later modules."""
    try:
        stop_all_servers(hub)
    finally:
        try:
            hub.stop()
        finally:
            remove_test_accounts(hub)


def stop_all_servers(hub: Hub, timeout: float = 90) -> None:
    """Stop every server and wait until they are gone (the hub does not stop them on its
    own exit), so no test's servers load the next module's machine or keep its accounts."""
    if hub.process is None or hub.process.poll() is not None:
        return
    for user in hub.api("GET", "/users").json():
        if user.get("servers"):
            hub.api("DELETE", f"/users/{user['name']}/server")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        users = hub.api("GET", "/users").json()
        if not any(u.get("servers") or u.get("pending") for u in users):
            return
        time.sleep(0.3)


def remove_test_accounts(hub: Hub) -> None:
    """Remove the unix accounts the spawner created for this session's users."""
    from studiohub.slugs import unix_name

    for name in hub.created_users:
        account = unix_name(name)
        # Whatever a server that did not stop in time left running goes first.
        subprocess.run(["pkill", "-KILL", "-u", account], capture_output=True, check=False)
        subprocess.run(["userdel", "-r", account], capture_output=True, check=False)
