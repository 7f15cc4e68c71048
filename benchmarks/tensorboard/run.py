"""TensorBoard through StudioHub against the ``tensorboard`` command started by hand.

    sudo /opt/studiohub/hub/bin/python -m benchmarks.tensorboard.run [--runs 100 --steps 1000]

One folder of ``--runs`` runs × ``--steps`` steps (TF2 summary layout, scalars ``loss`` and
``accuracy``) in a fresh unix user's home. Each round, in alternating order:

* **by hand**: ``envs/tensorboard/bin/tensorboard --logdir FOLDER --port P`` as that
  user, then poll ``/data/plugin/scalars/tags`` on its port;
* **StudioHub**: ``POST studiohub/api/v1/tensorboards`` ("Open in TensorBoard") on the
  user's Jupyter server, then poll the same URL through the server's proxy.

The clock stops when every run lists ``loss`` and the last run's ``loss`` has all its
steps. Prints the medians, their ratio (target ≤ 1.2) and the memory (RSS of the
TensorBoard process plus its data server) of one running TensorBoard. Needs root
(creates and removes the user).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from benchmarks.tensorboard.environments import EVENTS_SCRIPT, ensure_tensorboard_env
from tests.labservers import (
    UnixUser,
    UserServer,
    group,
    make_user,
    remove_user,
)
from tests.ports import free_port

POLL = 0.02


def wait_for_scalars(get: Callable[[str], requests.Response], runs: int, steps: int,
                     timeout: float = 120) -> None:
    last = f"tf-summary-{runs - 1:03d}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            tags = get("data/plugin/scalars/tags")
            if tags.status_code == 200 and sum("loss" in t for t in tags.json().values()) == runs:
                points = get(f"data/plugin/scalars/scalars?run={last}&tag=loss")
                if points.status_code == 200 and len(points.json()) == steps:
                    return
        except requests.RequestException:
            pass
        time.sleep(POLL)
    raise TimeoutError("scalars not served in time")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += int(status.split("VmRSS:")[1].split()[0])
    return total / 1024


def by_hand(user: UnixUser, tensorboard: Path, logdir: Path, runs: int, steps: int
            ) -> tuple[float, float]:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"],
        user=user.uid, group=user.gid, extra_groups=[], env=user.env(), cwd=user.home,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    session = requests.Session()
    try:
        wait_for_scalars(lambda path: session.get(f"http://127.0.0.1:{port}/{path}", timeout=30),
                         runs, steps)
        elapsed = time.monotonic() - started
        return elapsed, rss_mb(group(process.pid))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def studiohub(server: UserServer, logdir: str, runs: int, steps: int) -> tuple[float, float]:
    session = requests.Session()
    session.headers["Authorization"] = f"token {server.token}"
    started = time.monotonic()
    board = session.post(server.url + "studiohub/api/v1/tensorboards",
                         json={"folders": [logdir]}, timeout=30).json()
    prefix = board["url"]
    base = server.url.split("/user/")[0]
    wait_for_scalars(lambda path: session.get(f"{base}{prefix}{path}", timeout=30), runs, steps)
    elapsed = time.monotonic() - started
    memory = rss_mb(group(board["pid"]))
    session.delete(server.url + f"studiohub/api/v1/tensorboards/{board['id']}", timeout=30)
    return elapsed, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the benchmark creates a unix user", file=sys.stderr)
        return 2
    python = ensure_tensorboard_env()
    tensorboard = python.parent / "tensorboard"
    user = make_user("tbbench")
    server = None
    try:
        logdir = user.home / "bench"
        made = user.run([str(python), str(EVENTS_SCRIPT), str(logdir), "--framework",
                         "tf-summary", "--runs", str(args.runs), "--steps", str(args.steps)])
        assert made.returncode == 0, made.stderr
        print(made.stdout.strip())
        log = Path(tempfile.mkdtemp()) / "server.log"
        server = UserServer(user, {"TensorBoardManager.python": str(python)}).start(log)
        hand, ours, hand_mem, our_mem = [], [], [], []
        for round_ in range(args.rounds):
            order = ("hand", "studiohub") if round_ % 2 == 0 else ("studiohub", "hand")
            for which in order:
                if which == "hand":
                    seconds, memory = by_hand(user, tensorboard, logdir, args.runs, args.steps)
                    hand.append(seconds)
                    hand_mem.append(memory)
                else:
                    seconds, memory = studiohub(server, "bench", args.runs, args.steps)
                    ours.append(seconds)
                    our_mem.append(memory)
            print(f"round {round_ + 1}: by hand {hand[-1]:.2f} s, StudioHub {ours[-1]:.2f} s")
        board = server.request("POST", "studiohub/api/v1/tensorboards?wait=ready",
                               json={"folders": ["bench"]}).json()
        started = time.monotonic()
        server.request("POST", "studiohub/api/v1/tensorboards", json={"folders": ["bench"]})
        reuse = time.monotonic() - started
        isolation = board["isolation"]
        hand_s, ours_s = statistics.median(hand), statistics.median(ours)
        print(f"\nfolder: {args.runs} runs x {args.steps} steps; isolation: {isolation}")
        print(f"time to scalars served, median of {args.rounds}: by hand {hand_s:.2f} s, "
              f"StudioHub {ours_s:.2f} s")
        print(f"ratio StudioHub / by hand: {ours_s / hand_s:.2f} (target <= 1.2)")
        print(f"memory per running TensorBoard (RSS, TensorBoard + data server): "
              f"StudioHub {statistics.median(our_mem):.0f} MB, "
              f"by hand {statistics.median(hand_mem):.0f} MB")
        print(f"opening the same folder again (reuse): {reuse * 1000:.0f} ms")
        return 0
    finally:
        if server is not None:
            server.stop()
        remove_user(user)


if __name__ == "__main__":
    sys.exit(main())
