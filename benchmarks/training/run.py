"""Training jobs through StudioHub against the same commands started by hand in a shell.

    sudo /opt/studiohub/hub/bin/python -m benchmarks.training.run [--rounds 5]
        [--only first-line] [--json FILE]

One hub (StudioHub's own config, the jobs service on with its production poll interval
of 1 s, the local executor; tests/jobtools.py's :class:`FrameworkHub`) runs the image
environments that tests/integration/test_frameworks.py builds (``$STUDIOHUB_TEST_ENVS``).
Each measurement runs the baseline and StudioHub in the same run, alternating:

* **first log line**: ``POST api/jobs`` of a one-line script → the line read from
  ``logs?follow=true`` (what ``studiohub jobs logs -f`` reads), against
  ``runuser -u USER -- python -u script.py`` started by hand → its first line. Goal:
  ≤ by hand + 0.5 s. Each StudioHub round also prints when the POST was answered and
  the job's ``queued``, ``placed`` and ``started`` events came, after the POST.
* **DDP first all-reduce**: a 2-worker PyTorch job (gloo) → worker-0's all-reduce line,
  against ``torchrun --standalone --nproc-per-node=2`` by hand. Goal: ≤ torchrun + 1 s.
* **log latency**: a job prints its own clock every 0.1 s; the follow stream's reader
  subtracts it from its clock at each line (same host). Goal: p95 ≤ 1 s.
* **kill → running again**: a 2-worker DDP job that checkpoints every step (rank 0,
  ``studiohub.checkpoints``); worker-1's pid gets SIGKILL; the clock stops when both
  workers of attempt 2 print that they run from the checkpoint. The framework's import
  (``import torch``) in attempt 2 is reported apart. Goal: ≤ 10 s + import.
* **idle RSS** of the jobs service (the process the hub started), before and after.
  Goal: ≤ 150 MiB.
* **queue**: 50 jobs submitted at once by a user whose domain runs 2 jobs at most; the
  API is sampled every 0.1 s (never more than 2 starting/running), all 50 must succeed.

Needs root (creates unix users, cgroups, network namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from studiohub.users import ensure_user
from tests.hubtools import User, shut_down
from tests.jobtools import (
    CATALOG,
    FrameworkHub,
    call,
    env_python,
    finished,
    submit,
    wait_for,
    write_script,
)

HELLO = "print('first line', flush=True)\n"
DDP = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
print(f"rank {dist.get_rank()} all_reduce {value.item():g}", flush=True)
dist.destroy_process_group()
"""
TICKS = """
import time
for i in range(60):
    print(f"tick {time.time():.6f}", flush=True)
    time.sleep(0.1)
"""
RESUMING = """
import time
print(f"started {time.time():.6f}", flush=True)
import torch, torch.distributed as dist
from studiohub import checkpoints
print(f"imported {time.time():.6f}", flush=True)
dist.init_process_group("gloo")
torch.manual_seed(0)
X = torch.randn(64, 4); y = X @ torch.randn(4, 1)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
start = checkpoints.resume_pytorch(model, opt)
print(f"running from step {start} at {time.time():.6f}", flush=True)
for step in range(start, 80):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(X), y).backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
    opt.step()
    if dist.get_rank() == 0:
        checkpoints.save_pytorch(model, opt, step + 1)
    print(f"step {step + 1}", flush=True)
    time.sleep(0.1)
"""
QUEUED = "import time\ntime.sleep(0.3)\nprint('done', flush=True)\n"


def by_hand(user: str, argv: list[str], marker: str) -> float:
    """``runuser -u USER -- argv`` in the user's home, as typed in a root shell: seconds
    until a line of its output holds ``marker``."""
    account = ensure_user(user)
    env = {"HOME": account.pw_dir, "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    process = subprocess.Popen([runuser, "-u", account.pw_name, "--", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=account.pw_dir, env=env)
    assert process.stdout is not None
    seconds, seen = -1.0, []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            seconds = time.monotonic() - started
            break
    process.wait(timeout=120)
    if seconds < 0:
        raise RuntimeError(f"{argv}: no line with {marker!r}: {''.join(seen)[-2000:]}")
    return seconds


def follow(hub: FrameworkHub, user: User, job_id: str, replica: str = "worker-0",
           attempt: int | None = None, timeout: float = 180) -> Any:
    """The follow stream's lines as (line, time.time() at reception)."""
    params: dict[str, Any] = {"follow": "true", "replica": replica}
    if attempt:
        params["attempt"] = attempt
    r = requests.get(f"{hub.service_url}api/jobs/{job_id}/logs", params=params, stream=True,
                     headers={"Authorization": f"token {user.token}"}, timeout=timeout)
    r.raise_for_status()
    for line in r.iter_lines(decode_unicode=True):
        yield line, time.time()


def submit_to_line(hub: FrameworkHub, user: User, marker: str, **spec: Any) -> float:
    """``POST api/jobs`` → the first line holding ``marker`` on the follow stream."""
    started, wall = time.monotonic(), time.time()
    job = submit(hub, user, **spec)
    answered = time.time() - wall
    for line, received in follow(hub, user, job["id"]):
        if marker in line:
            seconds, line_at = time.monotonic() - started, received
            break
    else:
        raise RuntimeError(f"job {job['id']}: no line with {marker!r}")
    done = wait_for(hub, user, job["id"], finished, timeout=120)
    if done["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']}: {done['status']} {done['reason']}")
    STARTS.append(event_seconds(hub, user, job["id"], "queued", "started"))
    PHASES.append({"POST answered": answered,
                   **{kind: t - wall for kind, t in event_times(hub, user, job["id"]).items()
                      if kind in ("queued", "placed", "started")},
                   "line received": line_at - wall})
    return seconds


#: Per StudioHub round: seconds from the job's "queued" event to its "started" event.
STARTS: list[float] = []
#: Per StudioHub round: seconds from the POST to each step (the service's event times).
PHASES: list[dict[str, float]] = []


def note_starts(result: dict[str, Any]) -> None:
    """Add the StudioHub rounds' queued → started seconds, and when each step came after
    the POST, to ``result`` (and print them)."""
    result["queued_to_started_s"] = [round(x, 2) for x in STARTS]
    result["phases_s"] = [{k: round(v, 3) for k, v in p.items()} for p in PHASES]
    print(f"  of which queued → started (the service's events): {result['queued_to_started_s']}")
    for phases in result["phases_s"]:
        print("  after the POST: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    STARTS.clear()
    PHASES.clear()


def event_times(hub: FrameworkHub, user: User, job_id: str) -> dict[str, float]:
    """The first time of each kind of the job's events (the service's clock, this host's)."""
    events = call(hub, user, "GET", f"jobs/{job_id}/events").json()["events"]
    return {e["kind"]: datetime.fromisoformat(e["time"]).timestamp() for e in reversed(events)}


def event_seconds(hub: FrameworkHub, user: User, job_id: str, first: str, last: str) -> float:
    """Seconds between two of the job's events, by the service's own clock."""
    when = event_times(hub, user, job_id)
    return when[last] - when[first]


def compare(name: str, rounds: int, hand: Callable[[], float], ours: Callable[[], float],
            goal: float) -> dict[str, Any]:
    """Alternate the two, ``rounds`` each; medians, difference and the goal."""
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        for first in ((hand, a), (ours, b)) if i % 2 == 0 else ((ours, b), (hand, a)):
            first[1].append(first[0]())
    result: dict[str, Any] = {
        "name": name, "by_hand_s": statistics.median(a), "studiohub_s": statistics.median(b),
        "by_hand_all": [round(x, 2) for x in a], "studiohub_all": [round(x, 2) for x in b]}
    result["difference_s"] = result["studiohub_s"] - result["by_hand_s"]
    result["ratio"] = result["studiohub_s"] / result["by_hand_s"]
    result["goal"] = f"difference <= {goal} s"
    result["met"] = result["difference_s"] <= goal
    print(f"{name}: by hand {result['by_hand_s']:.2f} s, StudioHub {result['studiohub_s']:.2f} s"
          f" (+{result['difference_s']:.2f} s, ×{result['ratio']:.2f}; goal +{goal} s: "
          f"{'met' if result['met'] else 'NOT met'})", flush=True)
    return result


def log_latency(hub: FrameworkHub, user: User) -> dict[str, Any]:
    write_script(user, "ticks.py", TICKS)
    job = submit(hub, user, image="base", size="tiny", script="ticks.py")
    delays = [received - float(line.split()[1]) for line, received in follow(hub, user, job["id"])
              if line.startswith("tick ")]
    delays.sort()
    p95 = delays[int(0.95 * (len(delays) - 1))]
    result = {"name": "log line written → shown by logs -f", "lines": len(delays),
              "p50_s": statistics.median(delays), "p95_s": p95, "max_s": delays[-1],
              "goal": "p95 <= 1 s", "met": p95 <= 1.0}
    print(f"log latency: {len(delays)} lines, p50 {result['p50_s']:.3f} s, p95 {p95:.3f} s, "
          f"max {delays[-1]:.3f} s (goal p95 ≤ 1 s: {'met' if result['met'] else 'NOT met'})",
          flush=True)
    return result


def times(text: str, word: str) -> list[float]:
    return [float(line.split()[-1]) for line in text.splitlines() if line.startswith(word)]


def kill_and_resume(hub: FrameworkHub, user: User) -> dict[str, Any]:
    write_script(user, "resuming.py", RESUMING)
    job = submit(hub, user, image="pytorch", size="small", script="resuming.py", workers=2,
                 max_retries=2)
    for line, _ in follow(hub, user, job["id"], replica="worker-1"):
        if line == "step 10":
            break
    pids = json.loads((hub.state_dir / "jobs" / job["id"] / "attempt-1.pids").read_text())
    killed = time.time()
    os.kill(pids["replicas"]["worker-1"]["pid"], signal.SIGKILL)
    back: dict[str, float] = {}
    texts: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while len(back) < 2 and time.monotonic() < deadline:
        current = call(hub, user, "GET", f"jobs/{job['id']}").json()
        if finished(current) and current["attempt"] < 2:
            raise RuntimeError(f"job {job['id']} ended without a retry: {current['status']} "
                               f"{current['reason']}")
        for replica in ("worker-0", "worker-1"):
            text = call(hub, user, "GET", f"jobs/{job['id']}/logs",
                        params={"replica": replica, "attempt": 2}).text
            texts[replica] = text
            running = [line for line in text.splitlines() if line.startswith("running from")]
            if running:
                back[replica] = float(running[0].split()[-1])
        time.sleep(0.1)
    if len(back) < 2:
        raise RuntimeError(f"job {job['id']}: attempt 2 not running from a checkpoint: {texts}")
    done = wait_for(hub, user, job["id"], finished, timeout=120)
    for event in call(hub, user, "GET", f"jobs/{job['id']}/events").json()["events"]:
        print(f"  {event['time']} {event['kind']}: {event['message']}")
    step = int(texts["worker-0"].split("running from step ")[1].split()[0])
    imports = [b - a for r in texts.values()
               for a, b in zip(times(r, "started"), times(r, "imported"), strict=False)]
    result = {"name": "worker killed → all workers running again from the checkpoint",
              "seconds": max(back.values()) - killed, "import_s": max(imports),
              "kill_to_attempt_2_started_s": min(t for r in texts.values()
                                                 for t in times(r, "started")) - killed,
              "resumed_at_step": step, "status": done["status"], "attempt": done["attempt"]}
    result["goal"] = "<= 10 s + import"
    result["met"] = result["seconds"] <= 10 + result["import_s"] and step > 0
    restarted = result["kill_to_attempt_2_started_s"]
    print(f"kill → running again: {result['seconds']:.2f} s (of which import torch "
          f"{result['import_s']:.2f} s; attempt 2 started {restarted:.2f} s after the "
          f"kill), resumed at step {step}, job {done['status']} on attempt "
          f"{done['attempt']} (goal ≤ 10 s + import: "
          f"{'met' if result['met'] else 'NOT met'})", flush=True)
    return result


def service_rss_mib(hub: FrameworkHub) -> float:
    return float(hub.service_process().memory_info().rss) / 2**20


def queue_of_fifty(hub: FrameworkHub) -> dict[str, Any]:
    carol = hub.new_user("bq", groups=("team-q",))
    write_script(carol, "queued.py", QUEUED)
    most, samples, stop = 0, 0, threading.Event()

    def sample() -> None:
        nonlocal most, samples
        while not stop.is_set():
            jobs = call(hub, carol, "GET", "jobs").json()["jobs"]
            most = max(most, sum(j["status"] in ("starting", "running") for j in jobs))
            samples += 1
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    ids = [submit(hub, carol, image="base", size="tiny", script="queued.py")["id"]
           for _ in range(50)]
    sampler.start()
    done = [wait_for(hub, carol, i, finished, timeout=600) for i in ids]
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    listed = {j["id"] for j in call(hub, carol, "GET", "jobs").json()["jobs"]}
    succeeded = sum(j["status"] == "succeeded" for j in done)
    result = {"name": "50 queued jobs under a quota of 2", "submitted": len(ids),
              "succeeded": succeeded, "listed": len(listed & set(ids)),
              "most_running_seen": most, "samples": samples, "seconds": seconds,
              "goal": "never more than 2 running, all 50 finish, none lost"}
    result["met"] = most <= 2 and succeeded == 50 and len(listed & set(ids)) == 50
    print(f"queue: 50 jobs, {succeeded} succeeded, {result['listed']} listed, at most {most} "
          f"running in {samples} samples, {seconds:.1f} s in all "
          f"({'met' if result['met'] else 'NOT met'})", flush=True)
    return result


def others(hub: FrameworkHub, user: User, home: Path, rounds: int, idle_before: float,
           results: list[dict[str, Any]]) -> None:
    """Every measurement after the first log line (appended to ``results``)."""
    torchrun = env_python("pytorch").parent / "torchrun"
    results.append(compare(
        "2-worker DDP submit → first all-reduce", max(3, rounds - 2),
        lambda: by_hand(user.name, [str(torchrun), "--standalone", "--nproc-per-node=2",
                               str(home / "ddp.py")], "all_reduce 3"),
        lambda: submit_to_line(hub, user, "all_reduce 3", image="pytorch", size="small",
                               script="ddp.py", workers=2), 1.0))
    note_starts(results[-1])
    results.append(log_latency(hub, user))
    results.append(kill_and_resume(hub, user))
    results.append(queue_of_fifty(hub))
    time.sleep(3)
    idle_after = service_rss_mib(hub)
    results.append({"name": "jobs service idle RSS", "before_mib": idle_before,
                    "after_mib": idle_after, "goal": "<= 150 MiB",
                    "met": max(idle_before, idle_after) <= 150})
    print(f"service idle RSS: {idle_before:.0f} MiB fresh, {idle_after:.0f} MiB after the "
          f"runs above (goal ≤ 150 MiB: {'met' if results[-1]['met'] else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--only", choices=["first-line"], help="only this measurement "
                        "(the others take minutes)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: jobs run as other unix accounts", file=sys.stderr)
        return 2
    for image in ("base",) if args.only else ("base", "pytorch"):
        if not env_python(image).exists():
            print(f"no {image} environment at {env_python(image)}: build it with "
                  "tests/integration/test_frameworks.py", file=sys.stderr)
            return 2
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-training-"))
    workdir.chmod(0o755)
    hub = FrameworkHub(workdir, catalog=CATALOG, poll_interval=1.0)
    results: list[dict[str, Any]] = []
    try:
        hub.start()
        user = hub.new_user("bt")
        home = Path(ensure_user(user.name).pw_dir)
        time.sleep(3)
        idle_before = service_rss_mib(hub)
        write_script(user, "hello.py", HELLO)
        write_script(user, "ddp.py", DDP)
        results.append(compare(
            "submit → first log line", args.rounds,
            lambda: by_hand(user.name, [str(env_python("base")), "-u", str(home / "hello.py")],
                            "first line"),
            lambda: submit_to_line(hub, user, "first line", image="base", size="tiny",
                                   script="hello.py"), 0.5))
        note_starts(results[-1])
        if not args.only:
            others(hub, user, home, args.rounds, idle_before, results)
    finally:
        shut_down(hub)
    # The machine's load decides the absolute times: every result says what it was.
    end = os.getloadavg()[0]
    print(f"load average at the start {load:.1f}, at the end {end:.1f}")
    for result in results:
        result["load"] = [round(load, 1), round(end, 1)]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["met"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
