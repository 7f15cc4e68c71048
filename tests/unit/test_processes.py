"""tests/processes.py: a session's leftovers are found by mark or port, never by name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests import processes

SLEEP = "import time; time.sleep(60)"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        child.kill()
        child.wait()


def test_leftovers_are_found_by_mark_or_port_and_stopped(
        started: list[subprocess.Popen[bytes]]) -> None:
    since = processes.clock()
    env = {k: v for k, v in os.environ.items() if k != processes.MARK}
    marked = subprocess.Popen([sys.executable, "-c", SLEEP],
                              env={**env, processes.MARK: "m1"})
    # A hub-like command line (jupyterhub) with the session's port: ours.
    proxy = subprocess.Popen([sys.executable, "-c", SLEEP, "jupyterhub", "--port", "12345"],
                             env=env)
    # The same command on another port, or this port without a hub's command: not ours.
    other = subprocess.Popen([sys.executable, "-c", SLEEP, "jupyterhub", "--port", "12346"],
                             env=env)
    plain = subprocess.Popen([sys.executable, "-c", SLEEP, "--port", "12345"], env=env)
    started += [marked, proxy, other, plain]
    time.sleep(0.5)
    found = {p.pid for p in processes.started_by(since, {12345}, "m1")}
    assert found == {marked.pid, proxy.pid}
    assert {p.pid for p in processes.started_by(since, {12345}, "other")} == {proxy.pid}
    assert processes.started_by(processes.clock() + 5, {12345}, "m1") == []  # older: not ours
    assert f"pid {proxy.pid}" in processes.describe(processes.started_by(since, {12345}))
    processes.kill(processes.started_by(since, {12345}, "m1"), grace=2)
    assert marked.poll() is not None and proxy.poll() is not None
    assert other.poll() is None and plain.poll() is None
