"""The jobs service's state machine, with an in-memory executor and placement client.

The fake executor (tests/jobfakes.py) implements :class:`studiohub.jobs.model.Executor`;
each test says what its replicas report. The fake hub places every replica (or refuses
with the hub's status and message) and records releases.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from studiohub.jobs.keeper import MAX_RESUMES
from studiohub.jobs.model import Status
from studiohub.jobs.placing import PlacementRefused
from studiohub.jobs.service import GONE, JobsError, Viewer
from studiohub.jobs.store import Store
from tests.jobfakes import catalog_with, make_jobs

ALICE, BOB = Viewer("alice"), Viewer("bob")
SCRIPT = {"script": "train.py", "image": "base", "size": "small"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_job_runs_and_succeeds_then_its_placement_is_released(tmp_path: Path) -> None:
    jobs, executor, placing, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "args": ["--lr", "0.1"]})
        assert job.status == "queued" and len(job.id) == 12
        await jobs.tick()
        plan = executor.started[0]
        code = f"/home/jupyter-alice/studiohub-jobs/{job.id}/code"
        assert plan.command[1:] == [f"{code}/train.py", "--lr", "0.1"]
        assert plan.unix_user == "jupyter-alice"
        assert plan.workdir == f"/home/jupyter-alice/studiohub-jobs/{job.id}/code"
        env = plan.replicas[0].env
        assert env["STUDIOHUB_ATTEMPT"] == "1" and env["OMP_NUM_THREADS"] == "1"
        assert env["STUDIOHUB_CHECKPOINT_DIR"].endswith(f"{job.id}/checkpoints")
        assert plan.replicas[0].cgroup_procs == ("/sys/fs/cgroup/x/worker-0/cgroup.procs",)
        assert jobs.store.get(job.id).status == "running"
        executor.exit(job.id, 1, 0)
        await jobs.tick()
        done = jobs.store.get(job.id)
        assert done.status == "succeeded" and done.finished is not None
        assert placing.released == [job.id]
        kinds = [e.kind for e in jobs.store.events(job.id)]
        assert kinds == ["queued", "placed", "started", "exited", "succeeded"]
        assert jobs.replicas(done) == [{"name": "worker-0", "running": False,
                                        "exit_code": 0}]

    run(scenario())


def test_exit_code_two_fails_at_once_without_retry(tmp_path: Path) -> None:
    jobs, executor, placing, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "max_retries": 3})
        await jobs.tick()
        executor.exit(job.id, 1, 2)
        await jobs.tick()
        failed = jobs.store.get(job.id)
        assert (failed.status, failed.reason) == ("failed", "exit code 2 (worker-0)")
        assert len(executor.started) == 1 and placing.released == [job.id]

    run(scenario())


def test_an_oom_kill_is_retried_whatever_code_the_replica_exited_with(tmp_path: Path) -> None:
    """A notebook's kernel is OOM-killed and papermill exits 1: retried, and the reason
    says OOMKilled with the size's memory (issue 13)."""
    jobs, executor, placing, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "max_retries": 1})
        await jobs.tick()
        executor.exit(job.id, 1, 1, oom_killed=True)
        await jobs.tick()
        assert [p.attempt for p in executor.started] == [1, 2]
        executor.exit(job.id, 2, 1, oom_killed=True)
        await jobs.tick()
        failed = jobs.store.get(job.id)
        assert failed.status == "failed"
        assert failed.reason.startswith("OOMKilled: worker-0 used more than ")
        assert placing.released == [job.id]

    run(scenario())


def test_a_killed_replica_restarts_the_whole_group_as_the_next_attempt(tmp_path: Path) -> None:
    jobs, executor, placing, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "image": "pytorch", "workers": 2,
                                        "max_retries": 1})
        await jobs.tick()
        executor.exit(job.id, 1, -9, "worker-1")
        await jobs.tick()
        assert executor.stopped == [(job.id, 1)]  # worker-0 stopped with it
        second = executor.started[1]
        assert second.attempt == 2 and [r.name for r in second.replicas] == \
            ["worker-0", "worker-1"]
        assert second.replicas[1].env["STUDIOHUB_ATTEMPT"] == "2"
        assert second.replicas[1].env["RANK"] == "1"
        assert placing.released == []  # the same placement
        executor.resumes[(job.id, 2)] = [("worker-0", "/ck/step-40.pt step 40")]
        await jobs.tick()
        await jobs.tick()  # said once
        assert [e.message for e in jobs.store.events(job.id) if e.kind == "resumed"] == [
            "attempt 2: worker-0 resumed from checkpoint /ck/step-40.pt step 40"]
        executor.exit(job.id, 2, -9, "worker-0")
        await jobs.tick()
        failed = jobs.store.get(job.id)
        assert failed.status == "failed" and failed.reason == "worker-0 was killed (signal 9)"
        assert placing.released == [job.id]

    run(scenario())


@pytest.mark.parametrize(("spec", "words"), [
    ({**SCRIPT, "image": "nope"}, "unknown image 'nope'"),
    ({**SCRIPT, "size": "huge-gpu"}, "unknown size"),
    ({**SCRIPT, "workers": -1}, "workers: -1 is out of range"),
    ({**SCRIPT, "workers": 10**6}, "workers: 1000000 is out of range"),
    ({**SCRIPT, "script": "../bob/train.py"}, "outside your home"),
    ({**SCRIPT, "script": "/etc/passwd.py"}, "outside your home"),
    ([1, 2], "a job spec is a JSON object"),
    ({**SCRIPT, "parameter_servers": 1}, "parameter_servers"),
])
def test_bad_specs_are_refused_and_create_nothing(tmp_path: Path, spec: Any,
                                                  words: str) -> None:
    jobs, _, _, _ = make_jobs(tmp_path)
    with pytest.raises(JobsError) as e:
        run(jobs.submit(ALICE, spec))
    assert e.value.status == 400 and words in e.value.message
    assert jobs.store.jobs() == []


def test_the_hubs_catalog_refusal_is_a_400_and_no_room_still_queues(tmp_path: Path) -> None:
    jobs, _, placing, _ = make_jobs(tmp_path)
    placing.refuse = PlacementRefused(400, "this job needs 64 vCPU; this machine has 2")
    with pytest.raises(JobsError, match="this machine has 2"):
        run(jobs.submit(ALICE, SCRIPT))
    placing.refuse = PlacementRefused(409, "Small cannot run Base now: no memory free")
    with pytest.raises(JobsError, match="no memory free"):
        run(jobs.submit(ALICE, SCRIPT, check=True))
    assert jobs.store.jobs() == []

    async def scenario() -> None:
        job = await jobs.submit(ALICE, SCRIPT)
        await jobs.tick()
        waiting = jobs.store.get(job.id)
        assert waiting.status == "queued"
        assert waiting.queue_reason == "Small cannot run Base now: no memory free"
        placing.refuse = None
        await jobs.tick()
        assert jobs.store.get(job.id).status == "running"

    run(scenario())


def test_the_snapshot_runs_during_the_hubs_dry_run_and_a_refusal_removes_it(
        tmp_path: Path) -> None:
    """Both take a few hundred milliseconds: they overlap. Refused (400): the snapshot,
    made meanwhile, goes, and nothing is stored; no room now (409): the job queues."""
    jobs, _, placing, _ = make_jobs(tmp_path)
    events: list[str] = []

    async def prepare(job_id: str, spec: Any, account: Any) -> None:
        events.append(f"copy {job_id}")
        await asyncio.sleep(0.05)
        events.append("copied")

    async def discard(job: Any, account: Any, outputs: bool) -> None:
        events.append(f"removed {job.id} {outputs}")

    async def check(*args: Any) -> None:
        events.append("checking")
        await asyncio.sleep(0.02)
        events.append("checked")
        if placing.refuse:
            raise placing.refuse

    jobs.prepare, jobs.discard, placing.check = prepare, discard, check  # type: ignore
    placing.refuse = PlacementRefused(400, "this job needs 64 vCPU; this machine has 2")
    with pytest.raises(JobsError, match="this machine has 2"):
        run(jobs.submit(ALICE, SCRIPT))
    job_id = events[1].split()[1]
    assert events == ["checking", f"copy {job_id}", "checked", "copied",
                      f"removed {job_id} True"]
    assert jobs.store.jobs() == []
    events.clear()
    placing.refuse = PlacementRefused(409, "Small cannot run Base now: no memory free")
    job = run(jobs.submit(ALICE, SCRIPT))
    assert events == ["checking", f"copy {job.id}", "checked", "copied"]
    assert jobs.store.get(job.id).status == "queued"


def test_a_quota_of_two_queues_the_third_job_until_one_ends(tmp_path: Path) -> None:
    jobs, executor, _, _ = make_jobs(tmp_path, catalog_with({"max_running": 2}))

    async def scenario() -> None:
        ids = [(await jobs.submit(ALICE, SCRIPT)).id for _ in range(3)]
        await jobs.tick()
        with pytest.raises(JobsError, match="runs 2 jobs at once at most"):
            await jobs.submit(ALICE, SCRIPT, check=True)
        statuses = [jobs.store.get(i).status for i in ids]
        assert statuses == ["running", "running", "queued"]
        assert jobs.store.get(ids[2]).queue_reason == \
            "domain everyone runs 2 jobs at once at most (2 running): queued"
        executor.exit(ids[0], 1, 0)
        await jobs.tick()
        await jobs.tick()
        assert jobs.store.get(ids[2]).status == "running"
        assert jobs.store.get(ids[2]).queue_reason == ""

    run(scenario())


def test_timeout_stops_the_attempt_and_fails_the_job(tmp_path: Path) -> None:
    jobs, executor, placing, clock = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "timeout": "1h", "max_retries": 2})
        await jobs.tick()
        clock.now += timedelta(minutes=59)
        await jobs.tick()
        assert jobs.store.get(job.id).status == "running"
        clock.now += timedelta(minutes=2)
        await jobs.tick()
        failed = jobs.store.get(job.id)
        assert (failed.status, failed.reason) == ("failed", "timed out after 1h")
        assert executor.stopped == [(job.id, 1)] and placing.released == [job.id]

    run(scenario())


def test_cancel_running_and_queued_jobs_and_owner_checks(tmp_path: Path) -> None:
    jobs, executor, placing, _ = make_jobs(tmp_path, catalog_with({"max_running": 1}))

    async def scenario() -> None:
        first = await jobs.submit(ALICE, SCRIPT)
        second = await jobs.submit(ALICE, SCRIPT)
        await jobs.tick()
        for call in (lambda: jobs.get(BOB, first.id), lambda: jobs.cancel(BOB, first.id)):
            with pytest.raises(JobsError) as e:
                result = call()
                if asyncio.iscoroutine(result):
                    await result
            assert e.value.status == 404
        assert jobs.get(Viewer("root", admin=True), first.id).id == first.id
        assert jobs.jobs_of(BOB) == []
        with pytest.raises(JobsError) as e:
            jobs.jobs_of(BOB, user="alice")
        assert e.value.status == 403
        cancelled = await jobs.cancel(ALICE, first.id)
        assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled by alice")
        assert executor.stopped == [(first.id, 1)] and placing.released == [first.id]
        assert (await jobs.cancel(ALICE, second.id)).status == "cancelled"
        with pytest.raises(JobsError) as e:
            await jobs.cancel(ALICE, second.id)
        assert e.value.status == 409
        await jobs.tick()
        assert len(executor.started) == 1  # the cancelled queued job never started

    run(scenario())


def test_reconcile_adopts_running_attempts_and_retries_or_fails_gone_ones(
        tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    jobs, _, _, _ = make_jobs(tmp_path, store=store)

    async def before() -> list[str]:
        ids = [(await jobs.submit(ALICE, {**SCRIPT, "max_retries": r})).id
               for r in (0, 1, 0, 0)]
        await jobs.tick()
        return ids

    kept, retried, lost, ended = run(before())
    # The service restarts: a new Jobs over the same store; only `kept` still runs, and
    # `ended` exited 0 meanwhile (the executor recorded it).
    again, executor2, placing2, _ = make_jobs(tmp_path, store=store)
    executor2.live = {(kept, 1)}
    executor2.exit(ended, 1, 0)
    executor2.exits[(lost, 1)] = {}  # no record: poll says running, yet it does not run

    async def after() -> None:
        await again.reconcile()
        assert store.get(kept).status == "running"
        assert list(placing2.placed) == [kept]  # its placement confirmed with the hub
        assert store.get(ended).status == "succeeded"
        assert "reconciled" in [e.kind for e in store.events(ended)]
        assert store.get(lost).status == "failed" and store.get(lost).reason == GONE
        assert store.get(retried).status == "queued"
        await again.tick()
        assert [(p.job_id, p.attempt) for p in executor2.started] == [(retried, 2)]
        executor2.exit(kept, 1, 0)
        await again.tick()
        assert store.get(kept).status == "succeeded"

    run(after())
    assert Status(store.get(retried).status) is Status.RUNNING


def test_a_parameter_server_job_succeeds_when_its_chief_does(tmp_path: Path) -> None:
    """TF's workers and ps tasks serve until stopped: the chief's exit 0 ends the job."""
    jobs, executor, placing, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {"script": "train.py", "image": "tensorflow",
                                        "size": "small", "workers": 2,
                                        "parameter_servers": 1})
        await jobs.tick()
        names = [r.name for r in executor.started[0].replicas]
        assert names == ["chief-0", "worker-0", "worker-1", "ps-0"]
        executor.exit(job.id, 1, 0, replica="worker-0")  # a worker alone ends nothing
        await jobs.tick()
        assert jobs.store.get(job.id).status == "running"
        executor.exit(job.id, 1, 0, replica="chief-0")
        await jobs.tick()
        done = jobs.store.get(job.id)
        assert (done.status, done.reason) == ("succeeded", "")
        assert executor.stopped == [(job.id, 1)] and placing.released == [job.id]

    run(scenario())


def test_an_admin_cannot_run_a_users_job_again_as_themselves(tmp_path: Path) -> None:
    """An admin's "Run again" would run the owner's code as the admin: refused."""
    jobs = make_jobs(tmp_path)[0]
    admin = Viewer("boss", admin=True)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {"command": ["true"], "image": "base",
                                        "size": "small"})
        assert jobs.get(admin, job.id).id == job.id  # admins may look
        with pytest.raises(JobsError) as refused:
            await jobs.rerun(admin, job.id)
        assert (refused.value.status, str(refused.value)) == (
            403, f"only alice can run job {job.id} again: it would run their code as you")
        assert [j.id for j in jobs.store.jobs()] == [job.id]
        again = await jobs.rerun(ALICE, job.id)
        assert again.user == "alice" and again.id != job.id

    run(scenario())


def test_a_blocked_delete_holds_up_neither_the_queue_nor_a_cancel(tmp_path: Path) -> None:
    """The removal runs as the user (who can stop it): while it waits, another user's job
    starts and a cancel completes; the job stays listed, a second delete or a rerun of it
    is a 409; once the removal ends the job is gone."""
    jobs, executor, _, _ = make_jobs(tmp_path)
    entered, release = asyncio.Event(), asyncio.Event()

    async def discard(job: Any, account: Any, outputs: bool) -> None:
        entered.set()
        await release.wait()

    jobs.discard = discard

    async def scenario() -> None:
        mine = await jobs.submit(ALICE, SCRIPT)
        await jobs.cancel(ALICE, mine.id)
        deleting = asyncio.ensure_future(jobs.delete(ALICE, mine.id))
        await asyncio.wait_for(entered.wait(), 5)
        theirs = await jobs.submit(BOB, SCRIPT)
        other = await jobs.submit(BOB, SCRIPT)
        await asyncio.wait_for(jobs.tick(), 5)
        assert jobs.store.get(theirs.id).status == "running"
        cancelled = await asyncio.wait_for(jobs.cancel(BOB, other.id), 5)
        assert cancelled.status == "cancelled"
        for again in (jobs.delete(ALICE, mine.id), jobs.rerun(ALICE, mine.id)):
            with pytest.raises(JobsError) as e:
                await asyncio.wait_for(again, 5)
            assert (e.value.status, e.value.message) == \
                (409, f"job {mine.id} is being deleted")
        assert [j.id for j in jobs.jobs_of(ALICE)] == [mine.id]
        assert not deleting.done()
        release.set()
        await asyncio.wait_for(deleting, 5)
        assert jobs.store.get(mine.id) is None and jobs.jobs_of(ALICE) == []
        assert executor.stopped == [(other.id, 1)]
        assert [p.user for p in executor.started] == ["bob", "bob"]  # no rerun of alice's

    run(scenario())


def test_resume_lines_are_recorded_once_past_a_thousand_events_and_a_restart(
        tmp_path: Path) -> None:
    """Each resume line becomes one event, however many ticks see it and however many
    events the job has; new lines are added, and a restarted service adds none again."""
    jobs, executor, _, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, {**SCRIPT, "image": "pytorch", "workers": 2})
        await jobs.tick()
        for n in range(1100):
            jobs.store.add_event(job.id, "note", f"filler {n}")
        lines = [(f"worker-{n % 2}", f"/ck/{n} step {n}") for n in range(6)]
        executor.resumes[(job.id, 1)] = list(lines)
        for _ in range(5):
            await jobs.tick()
        lines += [("worker-1", "/ck/9 step 9")]
        executor.resumes[(job.id, 1)] = sorted(lines, key=lambda line: line[0])
        for _ in range(3):
            await jobs.tick()
        restarted = make_jobs(tmp_path, store=jobs.store)[0]
        restarted.executor.resumes = executor.resumes  # type: ignore[attr-defined]
        restarted.executor.live = executor.live  # type: ignore[attr-defined]
        await restarted.reconcile()
        for _ in range(3):
            await restarted.tick()
        resumed = [e.message for e in jobs.store.events(job.id, limit=5000)
                   if e.kind == "resumed"]
        assert sorted(resumed) == sorted(f"attempt 1: {r} resumed from checkpoint {w}"
                                         for r, w in lines)

    run(scenario())


def test_the_service_records_at_most_max_resumes_per_replica(tmp_path: Path) -> None:
    jobs, executor, _, _ = make_jobs(tmp_path)

    async def scenario() -> None:
        job = await jobs.submit(ALICE, SCRIPT)
        await jobs.tick()
        executor.resumes[(job.id, 1)] = [("worker-0", f"/ck/{n} step {n}")
                                         for n in range(500)]
        await jobs.tick()
        await jobs.tick()
        resumed = [e for e in jobs.store.events(job.id) if e.kind == "resumed"]
        assert len(resumed) == MAX_RESUMES
        assert resumed[0].message == "attempt 1: worker-0 resumed from checkpoint /ck/0 step 0"

    run(scenario())


def test_a_user_keeps_at_most_max_jobs_per_user_and_deleting_one_frees_a_place(
        tmp_path: Path) -> None:
    """Finished jobs' logs stay on the hub's disk until deleted: the number of jobs a user
    keeps is bounded, the refusal says what to do, and it creates nothing."""
    jobs, _, _, _ = make_jobs(tmp_path)
    jobs.max_jobs_per_user = 2

    async def scenario() -> None:
        first = await jobs.submit(ALICE, SCRIPT)
        await jobs.submit(ALICE, SCRIPT)
        with pytest.raises(JobsError) as e:
            await jobs.submit(ALICE, SCRIPT)
        assert e.value.status == 409 and "delete finished ones" in e.value.message
        assert len(jobs.jobs_of(ALICE)) == 2
        assert (await jobs.submit(BOB, SCRIPT)).user == "bob"  # a per-user bound
        await jobs.cancel(ALICE, first.id)
        await jobs.delete(ALICE, first.id)
        assert (await jobs.submit(ALICE, SCRIPT)).user == "alice"

    run(scenario())
