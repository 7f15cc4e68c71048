"""The production path of the jobs store: every store test again on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from studiohub.jobs import store as jobs_store
from studiohub.jobs.store import Store
from tests.pgcluster import PostgresCluster, fresh_store
from tests.unit.test_jobs_store import (  # noqa: F401  (collected again, on PostgreSQL)
    test_store_attempts_and_events,
    test_store_delete_forgets_a_job_its_attempts_and_events_only,
    test_store_job_round_trip_and_update,
    test_store_queue_is_submit_order_and_lists_filter,
)


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[Store]:
    with fresh_store(postgres.url, jobs_store) as store:
        yield store
