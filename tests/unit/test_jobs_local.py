"""The local executor's decisions without processes: the keeper's log copy (bound, resume
lines), what a recorded exit means (OOM, signal, code), the replicas' environment."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
from pathlib import Path

import pytest

from studiohub.jobs import keeper, logfiles
from studiohub.jobs.local import LocalExecutor, _exit_reason, job_dir, log_path
from studiohub.jobs.model import AttemptPlan, ReplicaPlan

ME = pwd.getpwuid(os.getuid())


def replica(tmp_path: Path, limit: int = 10) -> keeper.Replica:
    spec = {"name": "worker-0", "procs": []}
    return keeper.Replica(spec, tmp_path / "w.log", limit)


def test_the_log_keeps_its_newest_output_in_two_parts_with_a_marker(tmp_path: Path) -> None:
    r = replica(tmp_path)  # a bound of 10 bytes: parts of 5
    r.copy(b"12345")
    r.copy(b"6789abcdef")
    r.copy(b"more\n")
    r.close()
    path = tmp_path / "w.log"
    assert path.read_bytes() == b"[studiohub: part 3 of this replica's output, from byte 15]\n" \
        b"more\n"
    assert Path(f"{path}.1").read_bytes().endswith(b"]\nbcdef")
    assert (r.total, r.dropped()) == (20, 10)
    assert path.stat().st_mode & 0o777 == 0o600
    position, marker = logfiles.to_logical(logfiles.parts(path), 0)
    assert (position, len(marker)) == (10, logfiles.MARKER_BYTES)
    assert marker.startswith(b"[studiohub: the first 10 bytes of this replica's output were "
                             b"not kept")
    assert logfiles.read(path, position, 100) == (b"bcdefmore\n", 20)
    assert logfiles.read(path, 0, 100) == (b"bcdefmore\n", 20)  # dropped: the oldest kept
    assert logfiles.read(path, 12, 4) == (b"defm", 16)  # across the two parts


def test_a_log_that_never_rotated_is_read_as_written(tmp_path: Path) -> None:
    r = replica(tmp_path, limit=1000)
    r.copy(b"hello\n")
    path = tmp_path / "w.log"
    assert path.read_bytes() == b"hello\n" and not Path(f"{path}.1").exists()
    assert logfiles.to_logical(logfiles.parts(path), 3) == (3, b"")
    assert logfiles.read(path, 3, 100) == (b"lo\n", 6)
    assert logfiles.read(tmp_path / "none.log", 0, 100) == (b"", 0)


def test_resume_lines_are_found_across_reads(tmp_path: Path) -> None:
    r = replica(tmp_path, limit=1000)
    r.copy(b"x\nSTUDIOHUB_RESUMED_FROM /c/ckpt-4 st")
    r.copy(b"ep 4\nnot STUDIOHUB_RESUMED_FROM a\n")
    assert r.resumed == ["/c/ckpt-4 step 4"]


def test_a_replica_printing_resume_lines_in_a_loop_keeps_only_the_first_distinct_ones(
        tmp_path: Path) -> None:
    """The list is rewritten to the status file on each new line and becomes the job's
    events: 10,000 distinct lines (and repeats of one) keep at most MAX_RESUMES."""
    r = replica(tmp_path, limit=1000)
    r.copy(b"STUDIOHUB_RESUMED_FROM /c/ckpt-1 step 1\n" * 3)
    for chunk in range(100):
        r.copy(b"".join(b"STUDIOHUB_RESUMED_FROM /c/x-%d step %d\n" % (n, n)
                        for n in range(chunk * 100, chunk * 100 + 100)))
    assert len(r.resumed) == keeper.MAX_RESUMES
    assert r.resumed[:3] == ["/c/ckpt-1 step 1", "/c/x-0 step 0", "/c/x-1 step 1"]
    assert r.state()["resumed"] == r.resumed


def test_oom_counters_of_v1_and_v2_leaves(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir(), v1.mkdir()
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert keeper.oom_kills([str(v2 / "cgroup.procs"), str(v1 / "cgroup.procs")]) == 3
    assert keeper.oom_kills([str(tmp_path / "none" / "cgroup.procs")]) == 0


def test_start_ticks_tells_our_process_from_a_gone_one() -> None:
    assert keeper.start_ticks(os.getpid())
    assert keeper.start_ticks(2**22 + 1) is None


def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path, env_python=lambda image: Path(f"/envs/{image}/bin/python"),
                         jupyter_data="/k")


def test_a_recorded_exit_as_a_replica_state(tmp_path: Path) -> None:
    ex = executor(tmp_path)
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    (leaf / "memory.limit_in_bytes").write_text(str(4 * 2**30))
    procs = [str(leaf / "cgroup.procs")]
    killed = {"exit_code": -9, "oom_before": 0, "oom_after": 1}
    assert ex._replica_state("worker-1", killed, False, procs).reason == \
        "OOMKilled: worker-1 used more than 4 GiB"
    state = ex._replica_state("worker-1", {**killed, "oom_after": 0}, False, procs)
    assert (state.oom_killed, state.reason) == (False, "killed by SIGKILL (worker-1)")
    # A child was OOM-killed (a notebook's kernel) and the replica exited with its own
    # code: still the OOM, and retried; a replica that exited 0 anyway succeeded.
    child = ex._replica_state("worker-1", {**killed, "exit_code": 138}, False, procs)
    assert (child.exit_code, child.oom_killed, child.reason) == \
        (138, True, "OOMKilled: worker-1 used more than 4 GiB")
    assert ex._replica_state("worker-1", {**killed, "exit_code": 0}, False, procs).reason == ""
    assert ex._replica_state("w-0", {"exit_code": 2}, True, []).reason == "exit code 2 (w-0)"
    assert ex._replica_state("w-0", {"exit_code": 0}, True, []).reason == ""
    # No exit recorded: running while the keeper runs; killed once the keeper is gone.
    assert ex._replica_state("w-0", {"pid": 1, "start": -1}, True, []).running
    gone = ex._replica_state("w-0", {"pid": 1, "start": -1}, False, [])
    assert (gone.running, gone.exit_code) == (False, -signal.SIGKILL)
    assert _exit_reason("w", -99) == "killed by signal 99 (w)"


def test_ids_and_replica_names_are_checked_before_any_path(tmp_path: Path) -> None:
    assert job_dir(tmp_path, "0123456789ab") == tmp_path / "jobs" / "0123456789ab"
    assert log_path(tmp_path, "0123456789ab", 2, "worker-1").parts[-3:] == \
        ("logs", "attempt-2", "worker-1.log")
    with pytest.raises(ValueError):
        job_dir(tmp_path, "../../etc")
    with pytest.raises(ValueError):
        log_path(tmp_path, "0123456789ab", 1, "../x")


def plan(env: dict[str, str], replica_env: dict[str, str]) -> AttemptPlan:
    return AttemptPlan(job_id="0123456789ab", attempt=1, user="u", unix_user=ME.pw_name,
                       command=["python", "t.py"], workdir="/code", job_dir="",
                       replicas=[ReplicaPlan("worker-0", 0, replica_env,
                                             cgroup_procs=("/cg/cgroup.procs",))],
                       image="pytorch", size="tiny", env=env)


def test_the_orders_give_each_replica_its_environment(tmp_path: Path) -> None:
    orders = executor(tmp_path).make_orders(plan(
        {"PATH": "/mine", "LR": "1"}, {"RANK": "0", "DMLC_ROLE": "worker"}))
    r = orders["replicas"][0]
    assert (r["user"], r["argv"], r["cwd"], r["procs"]) == \
        (ME.pw_name, ["python", "t.py"], "/code", ["/cg/cgroup.procs"])
    env = r["env"]
    assert (env["PATH"], env["LR"], env["RANK"], env["HOME"], env["USER"]) == \
        ("/mine", "1", "0", ME.pw_dir, ME.pw_name)
    assert (env["JUPYTER_PATH"], env["PYTHONUNBUFFERED"], env["DMLC_NODE_HOST"]) == \
        ("/k", "1", "127.0.0.1")
    default = executor(tmp_path).make_orders(plan({}, {}))["replicas"][0]["env"]
    assert default["PATH"].startswith("/envs/pytorch/bin:") and "DMLC_NODE_HOST" not in default
    assert orders["status"].endswith("jobs/0123456789ab/attempt-1.pids")


def test_nothing_recorded_nothing_running(tmp_path: Path) -> None:
    ex = executor(tmp_path)
    assert asyncio.run(ex.running()) == []
    asyncio.run(ex.stop(plan({}, {})))  # nothing started: stop is a no-op, twice
    asyncio.run(ex.stop(plan({}, {})))
