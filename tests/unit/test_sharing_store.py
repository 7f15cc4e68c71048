"""The sharing tables through :class:`Store` (SQLite here; PostgreSQL re-runs these tests).

``tests/integration/test_sharing_postgres.py`` imports every ``test_store_*`` function
and runs it against a real PostgreSQL cluster through its own ``store`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from studiohub.sharing.store import Share, Store, Version


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'sharing.sqlite'}")


T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_share(share_id: str, author: str = "ada", domain: str = "team-a",
               name: str = "analysis.ipynb", when: datetime = T0) -> Share:
    return Share(share_id, author, domain, name, when, when, 1, 0, None)


def make_version(number: int = 1, when: datetime = T0, note: str = "") -> Version:
    return Version(number, when, note, True, "pytorch", "medium", "PyTorch", 1234)


def test_store_share_and_versions_round_trip(store: Store) -> None:
    store.create_share(make_share("s" * 22), make_version(note="first"))
    store.add_version("s" * 22, make_version(2, T0 + timedelta(hours=1), "second"))
    share = store.share("s" * 22)
    assert share is not None
    assert (share.latest_version, share.updated, share.revoked) == (
        2, T0 + timedelta(hours=1), None)
    assert [v.note for v in store.versions("s" * 22)] == ["second", "first"]
    assert store.version("s" * 22, 1) == make_version(note="first")
    assert store.version("s" * 22, 3) is None and store.share("nope") is None


def test_store_refuses_a_duplicate_version_number(store: Store) -> None:
    store.create_share(make_share("d" * 22), make_version())
    with pytest.raises(IntegrityError):
        store.add_version("d" * 22, make_version(1))
    assert [v.number for v in store.versions("d" * 22)] == [1]


def test_store_revoke_counts_and_views(store: Store) -> None:
    for i in range(3):
        store.create_share(make_share(f"{i}" * 22), make_version())
    store.create_share(make_share("x" * 22, author="bo"), make_version())
    assert store.count_active("ada") == 3
    store.revoke("0" * 22)
    store.revoke("0" * 22)  # twice is harmless
    assert store.count_active("ada") == 2
    revoked = store.share("0" * 22)
    assert revoked is not None and revoked.revoked is not None
    store.count_views("1" * 22)
    store.count_views("1" * 22)
    assert [s.views for s in store.shared_by("ada") if s.id == "1" * 22] == [2]


def test_store_shared_with_filters_domain_author_revoked_and_searches(store: Store) -> None:
    store.create_share(make_share("a" * 22, "ada", "team-a", "Forecast_Q3.ipynb"),
                       make_version())
    store.create_share(make_share("b" * 22, "bo", "team-a", "churn.ipynb"), make_version())
    store.create_share(make_share("c" * 22, "cy", "team-b", "forecast.ipynb"), make_version())
    store.create_share(make_share("r" * 22, "bo", "team-a", "old.ipynb"), make_version())
    store.revoke("r" * 22)

    def ids(query: str = "", domains: tuple[str, ...] = ("team-a",)) -> set[str]:
        return {s.id[0] for s in store.shared_with(domains, "me", query)}

    assert ids() == {"a", "b"}
    assert ids("forecast") == {"a"} and ids("FORECAST", ("team-a", "team-b")) == {"a", "c"}
    assert ids("bo") == {"b"}
    assert ids("_q") == {"a"} and ids("%") == set()  # LIKE wildcards are literal
    assert ids(domains=()) == set()
    assert {s.id[0] for s in store.shared_with(["team-a"], "ada")} == {"b"}


def test_store_recently_opened_is_newest_first_per_share(store: Store) -> None:
    store.create_share(make_share("a" * 22), make_version())
    store.create_share(make_share("b" * 22), make_version())
    store.record("bo", "open", "a" * 22, 1)
    store.record("bo", "open", "b" * 22, 1)
    store.record("bo", "open", "a" * 22, 1)
    store.record("cy", "open", "b" * 22, 1)
    recent = store.recently_opened("bo")
    assert [s.id[0] for s, _ in recent] == ["a", "b"]
    assert all(when.tzinfo is not None for _, when in recent)


def test_store_audit_events_filter_and_page(store: Store) -> None:
    for i in range(5):
        store.record("ada", "share", f"{i}" * 22, 1, f"event {i}")
    store.record("bo", "copy", "1" * 22, 1, "saved as x.ipynb")
    events = store.events()
    assert [e.detail for e in events][:2] == ["saved as x.ipynb", "event 4"]
    assert [e.action for e in store.events(actor="bo")] == ["copy"]
    assert len(store.events(share_id="1" * 22)) == 2
    page = store.events(action="share", limit=2)
    older = store.events(action="share", before=page[-1].id, limit=10)
    assert [e.detail for e in page + older] == [f"event {i}" for i in range(4, -1, -1)]
    with pytest.raises(ValueError, match="unknown audit action"):
        store.record("ada", "delete-everything")
