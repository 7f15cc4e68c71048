"""The processes a test session started, found again after they outlived their parent.

A hub's proxy, its managed services (sharing, idle culler), users' servers and their
kernels and TensorBoards are not children of the test process: JupyterHub starts services
and servers in sessions of their own, so when a hub dies without a clean stop they are
re-parented to init and nothing in the test's process tree leads to them. CI once ended a
green run with the proxies, sharing services and idle cullers of about ten test hubs still
running 40 minutes later.

They are recognised by what they carry, never by name alone: created after the session
started, and either with this session's mark in their environment (:data:`MARK`, which
everything started directly by the tests inherits), or with one of the ports this
session handed out (:mod:`tests.ports`) in their command line or environment (a proxy's
``--port``, a service's or server's ``JUPYTERHUB_API_URL``) and a command line of the
hub's kind (:data:`HUB_COMMANDS`). Processes of other sessions on the same machine
(other people's test runs, a running StudioHub) carry neither.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Collection, Iterable

import psutil

#: The environment variable marking this test session's processes (not STUDIOHUB_*: those
#: are StudioHub's settings).
MARK = "PYTEST_STUDIOHUB_SESSION"
#: Command-line fragments of the processes a hub runs: its own, the proxy, services,
#: users' servers, kernels, TensorBoards.
HUB_COMMANDS = ("jupyterhub", "configurable-http-proxy", "studiohub up", "studiohub.", "jupyter",
                "ipykernel", "tensorboard")
#: Of those, what belongs to the hub itself rather than to a user's server (a stopped
#: hub's leftovers; users' servers outlive a hub by design).
HUB_OWN_COMMANDS = ("configurable-http-proxy", "studiohub.sharing", "-m studiohub.jobs ",
                    "-m studiohub.serving ", "-m studiohub.serving.gateway ",
                    "jupyterhub_idle_culler",
                    "studiohub up", "-m jupyterhub ", "-m studiohub.hubapp ")
_NUMBER = re.compile(r"(?<![0-9])[0-9]{4,5}(?![0-9])")


def clock() -> float:
    """Now, on the clock of ``Process.create_time`` (boot time + uptime). ``time.time()``
    can run a second or more ahead of it, which made a process started after a
    ``time.time()`` reading look older than it."""
    with open("/proc/uptime") as f:
        return psutil.boot_time() + float(f.read().split()[0])


def _text(process: psutil.Process) -> tuple[str, str]:
    """(command line, environment) of a process, empty where they cannot be read."""
    try:
        cmdline = " ".join(process.cmdline())
    except (psutil.Error, OSError):
        return "", ""
    try:
        with open(f"/proc/{process.pid}/environ", "rb") as f:
            environ = f.read().replace(b"\0", b"\n").decode(errors="replace")
    except OSError:
        environ = ""
    return cmdline, environ


def started_by(since: float, ports: Collection[int], mark: str | None = None,
               commands: Iterable[str] = HUB_COMMANDS) -> list[psutil.Process]:
    """Live processes created at or after ``since`` (a :func:`clock` reading) that
    carry ``mark`` (the value of :data:`MARK`) or mention one of ``ports`` with a command
    line containing one of ``commands``. Never this process or its ancestors."""
    commands = tuple(commands)
    exclude = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for process in psutil.process_iter(["pid", "create_time", "status"]):
        info = process.info
        if info["pid"] in exclude or info["create_time"] is None \
                or info["create_time"] < since or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline, environ = _text(process)
        if not cmdline:
            continue
        marked = bool(mark) and f"{MARK}={mark}\n" in environ + "\n"
        ours = any(c in cmdline for c in commands) and not ports_mentioned(
            cmdline + "\n" + environ).isdisjoint(ports)
        if marked or ours:
            found.append(process)
    return found


def ports_mentioned(text: str) -> set[int]:
    return {int(n) for n in _NUMBER.findall(text)}


def describe(processes: Iterable[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"  pid {process.pid} (user {process.username()}): "
                         f"{' '.join(process.cmdline())[:200]}")
        except psutil.Error:
            continue
    return "\n".join(lines)


def kill(processes: Iterable[psutil.Process], grace: float = 5) -> None:
    """SIGTERM, then SIGKILL for what is still there after ``grace`` seconds."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)


def wait_gone(find: Callable[[], list[psutil.Process]], timeout: float
              ) -> list[psutil.Process]:
    """``find()`` until it returns nothing or ``timeout`` passes: its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        left = find()
        if not left or time.monotonic() >= deadline:
            return list(left)
        time.sleep(0.5)
