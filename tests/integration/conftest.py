"""A real StudioHub for the whole session: ``studiohub up``, the proxy, real unix users."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hubtools import (  # noqa: F401 (TEST_CATALOG, shut_down: imported from here)
    TEST_CATALOG,
    Hub,
    remove_test_accounts,
    shut_down,
    stop_all_servers,
)
from tests.pgcluster import PostgresCluster, private_cluster

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


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL 15 cluster, the production path's database, for one module."""
    if os.geteuid() != 0:
        pytest.skip("starts PostgreSQL as the postgres account: run as root")
    with private_cluster() as cluster:
        yield cluster


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
