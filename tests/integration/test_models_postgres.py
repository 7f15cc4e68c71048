"""The production path of the models store: its store tests again on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from studiohub.serving import store as models_store
from studiohub.serving.store import Store
from tests.pgcluster import PostgresCluster, fresh_store
from tests.unit.test_serving_store import (  # noqa: F401  (collected again, on PostgreSQL)
    test_store_endpoints_round_trip_update_and_remove,
    test_store_tokens_keep_only_a_digest_and_go_with_their_endpoint,
    test_store_tokens_keep_their_note_and_an_older_database_gains_the_column,
)


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[Store]:
    with fresh_store(postgres.url, models_store) as store:
        yield store
