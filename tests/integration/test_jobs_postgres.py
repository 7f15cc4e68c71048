"""The production path of the jobs store: every store test again on a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub.jobs.store import Base, Store, make_engine
from tests.pgcluster import PostgresCluster, start_cluster
from tests.unit.test_jobs_store import (  # noqa: F401  (collected again, on PostgreSQL)
    test_store_attempts_and_events,
    test_store_job_round_trip_and_update,
    test_store_queue_is_submit_order_and_lists_filter,
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    if os.geteuid() != 0:
        pytest.skip("starts PostgreSQL as the postgres account: run as root")
    workdir = Path(tempfile.mkdtemp(prefix="jobs-pg-"))
    workdir.chmod(0o755)
    cluster = start_cluster(workdir / "cluster")
    yield cluster
    cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[Store]:
    engine = make_engine(postgres.url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    store = Store(postgres.url)
    yield store
    store.engine.dispose()
