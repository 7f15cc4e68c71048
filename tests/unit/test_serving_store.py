"""The models service's store: endpoints kept whole, tokens by their digest only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub.serving.store import Store, digest


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = Store(f"sqlite:///{tmp_path / 'models.sqlite'}")
    try:
        yield made
    finally:
        made.engine.dispose()


def endpoint(name: str, user: str = "alice") -> dict[str, object]:
    return {"name": name, "user": user, "domain": "everyone", "live": 1, "canary": None,
            "versions": [{"version": 1, "status": "serving", "replica_state": {
                "replica-0": {"attempt": 1, "restarts": 0}}}]}


def test_store_endpoints_round_trip_update_and_remove(store: Store) -> None:
    store.save(endpoint("iris"))
    store.save(endpoint("mnist", "bob"))
    changed = endpoint("iris")
    changed["live"] = 2
    store.save(changed)
    assert sorted((e["name"], e["live"]) for e in store.endpoints()) == \
        [("iris", 2), ("mnist", 1)]
    store.remove("iris")
    assert [e["name"] for e in store.endpoints()] == ["mnist"]


def test_store_tokens_keep_only_a_digest_and_go_with_their_endpoint(store: Store) -> None:
    store.save(endpoint("iris"))
    store.add_token("t1", "iris", "shm_secret-one")
    store.add_token("t2", "iris", "shm_secret-two")
    assert store.token_digests() == {digest("shm_secret-one"): "iris",
                                     digest("shm_secret-two"): "iris"}
    assert [t.id for t in store.tokens("iris")] == ["t1", "t2"]
    assert store.revoke("iris", "t1") and not store.revoke("iris", "t1")
    assert not store.revoke("other", "t2")  # another endpoint's id revokes nothing
    store.remove("iris")
    assert store.token_digests() == {}
    with store.engine.connect() as connection:  # no token in clear anywhere
        rows = connection.exec_driver_sql("select * from models_tokens").fetchall()
    assert not any("secret" in str(row) for row in rows)


def test_store_tokens_keep_their_note_and_an_older_database_gains_the_column(
        store: Store) -> None:
    store.save(endpoint("iris"))
    store.add_token("t1", "iris", "shm_secret-one", "ci pipeline")
    assert [(t.id, t.note) for t in store.tokens("iris")] == [("t1", "ci pipeline")]
    # A database made before tokens had notes: its tokens keep working, with none.
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE models_tokens")
        connection.exec_driver_sql(
            "CREATE TABLE models_tokens (id VARCHAR(16) PRIMARY KEY, endpoint VARCHAR(64), "
            "digest VARCHAR(64) UNIQUE, created TIMESTAMP WITH TIME ZONE)")
        connection.exec_driver_sql(
            "INSERT INTO models_tokens VALUES ('t0', 'iris', 'abc', CURRENT_TIMESTAMP)")
    reopened = Store(store.engine.url.render_as_string(hide_password=False))
    try:
        assert [(t.id, t.note) for t in reopened.tokens("iris")] == [("t0", "")]
        reopened.add_token("t2", "iris", "shm_secret-two", "demo app")
        assert [t.note for t in reopened.tokens("iris")] == ["", "demo app"]
        assert reopened.token_digests()["abc"] == "iris"
    finally:
        reopened.engine.dispose()
