"""The jobs store: jobs, attempts and events round-trip; the SQLite file is private.

Every ``test_store_*`` here runs again on a real PostgreSQL in
tests/integration/test_jobs_postgres.py (same tests, its ``store`` fixture).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub.jobs.model import Status
from studiohub.jobs.store import Job, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'state' / 'jobs.sqlite'}")
    yield store
    store.engine.dispose()


def make_job(job_id: str, user: str = "alice", status: Status = Status.QUEUED,
             domain: str = "ml") -> Job:
    return Job(id=job_id, user=user, status=status.value, domain=domain,
               spec={"script": "train.py", "workers": 2, "env": {"A": "b"}},
               image="base", size="tiny", replicas=2, cpus=1.0, memory=2 << 30)


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "jobs.sqlite"
    Store(f"sqlite:///{path}").engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_store_job_round_trip_and_update(store: Store) -> None:
    added = store.add(make_job("0123456789ab"))
    assert added.seq == 1 and added.spec["env"] == {"A": "b"}
    assert added.created.tzinfo is not None
    job = store.update("0123456789ab", status=Status.RUNNING.value, attempt=1,
                       queue_reason="")
    assert job.status == "running" and job.attempt == 1
    assert store.get("0123456789ab") == job
    assert store.get("ffffffffffff") is None
    with pytest.raises(KeyError):
        store.update("0123456789ab", nonsense=1)


def test_store_queue_is_submit_order_and_lists_filter(store: Store) -> None:
    for i, user in enumerate(["alice", "bob", "alice"]):
        store.add(make_job(f"00000000000{i}", user=user))
    store.update("000000000001", status=Status.RUNNING.value)
    assert [j.id for j in store.queued()] == ["000000000000", "000000000002"]
    assert [j.id for j in store.active()] == ["000000000001"]
    assert [j.id for j in store.jobs(user="alice")] == ["000000000002", "000000000000"]
    assert [j.id for j in store.jobs(statuses=["running"])] == ["000000000001"]


def test_store_attempts_and_events(store: Store) -> None:
    store.add(make_job("0123456789ab"))
    store.add_attempt("0123456789ab", 1, {"command": ["python", "x.py"]})
    store.update_attempt("0123456789ab", 1, replicas=[{"name": "worker-0", "running": True}])
    attempt = store.attempt("0123456789ab", 1)
    assert attempt is not None and attempt.plan["command"] == ["python", "x.py"]
    assert attempt.replicas == [{"name": "worker-0", "running": True}]
    assert attempt.ended is None and store.attempt("0123456789ab", 2) is None
    store.add_event("0123456789ab", "queued", "queued")
    store.add_event("0123456789ab", "placed", "placed on tiny")
    assert [(e.kind, e.message) for e in store.events("0123456789ab")] == [
        ("queued", "queued"), ("placed", "placed on tiny")]


def test_store_delete_forgets_a_job_its_attempts_and_events_only(store: Store) -> None:
    for job_id in ("a1", "b2"):
        store.add(make_job(job_id, status=Status.SUCCEEDED))
        store.add_attempt(job_id, 1, {"replicas": []})
        store.add_event(job_id, "queued", "queued")
    assert store.delete("a1") is True
    assert store.get("a1") is None and store.attempt("a1", 1) is None
    assert store.events("a1") == [] and [j.id for j in store.jobs()] == ["b2"]
    assert store.attempt("b2", 1) is not None and len(store.events("b2")) == 1
    assert store.delete("a1") is False  # twice: nothing left, no error
