"""The production database path: a hub on a private PostgreSQL cluster."""

from __future__ import annotations

import pytest

from tests.hubtools import Hub
from tests.integration.conftest import TEST_CATALOG, shut_down
from tests.pgcluster import PostgresCluster


def test_hub_runs_on_postgresql(postgres: PostgresCluster,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("pghub")
    workdir.chmod(0o755)
    hub = Hub(workdir, catalog=TEST_CATALOG, settings={"db_url": postgres.url})
    hub.start()
    try:
        user = hub.new_user("pg")
        user.spawn(image="base", size="tiny")
        assert user.run("print(6 * 7)").stdout.strip() == "42"
        assert user.name in postgres.psql("select name from users").split()
        assert "jupyterhub.sqlite" not in {p.name for p in hub.state_dir.iterdir()}
        user.stop()
    finally:
        shut_down(hub)
