"""The production path of the sharing store: a real PostgreSQL 15 cluster.

Every store test of ``tests/unit/test_sharing_store.py`` runs again here on PostgreSQL
(imported below, with this module's ``store`` fixture), then a hub whose sharing service
keeps its tables there serves a share, a preview and a copy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from studiohub.sharing import store as sharing_store
from studiohub.sharing.store import Store
from tests.pgcluster import PostgresCluster, fresh_store
from tests.sharinghub import (
    call,
    code_cell,
    make_notebook,
    running_sharing_hub,
    share,
    stream,
)
from tests.unit.test_sharing_store import (  # noqa: F401  (collected again, on PostgreSQL)
    test_store_audit_events_filter_and_page,
    test_store_recently_opened_is_newest_first_per_share,
    test_store_refuses_a_duplicate_version_number,
    test_store_revoke_counts_and_views,
    test_store_share_and_versions_round_trip,
    test_store_shared_with_filters_domain_author_revoked_and_searches,
)


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[Store]:
    """Fresh sharing tables for each test."""
    with fresh_store(postgres.url, sharing_store) as store:
        yield store


def test_the_service_keeps_its_tables_in_postgresql(
        postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    with fresh_store(postgres.url, sharing_store):
        pass  # the service creates its tables anew
    with running_sharing_hub(tmp_path_factory.mktemp("pgsharing"), db_url=postgres.url) as hub:
        author = hub.new_user("pga", groups=("team-a",))
        reader = hub.new_user("pgb", groups=("team-a",))
        reader.spawn(image="base", size="tiny")
        s = share(hub, author, make_notebook(code_cell("1", stream("on postgres\n"))))
        preview = reader.session.get(hub.url + s["url"], timeout=30)
        assert preview.status_code == 200 and "on postgres" in preview.text
        assert call(hub, reader, "POST", f"shares/{s['id']}/copy").status_code == 201
        assert postgres.psql(f"select author from sharing_shares where id = '{s['id']}'"
                             ).strip() == author.name
        actions = postgres.psql("select action from sharing_events order by id").split()
        assert actions == ["share", "open", "copy"]
        assert not (hub.data_dir / "sharing.sqlite").exists()
        service = hub.api("GET", "/services/sharing").json()
        assert "s3cret" not in str(service) and requests.get(
            hub.service_url + "static/preview.css", timeout=10).ok
