"""Records of the processes a hub started, so the next ``studiohub up`` can stop leftovers.

A hub killed without a clean shutdown (SIGKILL, OOM, power to the container) stops
nothing: its sharing service and idle culler would keep running with the dead hub's
configuration, and the next hub's own sharing service would crash-loop on its port.
Each process the hub starts writes ``state/run/<name>.pid`` with its pid *and* its start
time (clock ticks since boot, from ``/proc/<pid>/stat``); a later ``studiohub up`` stops
only a process whose pid and start time both match a record, so a pid the kernel has
since given to an unrelated process is never signalled. Nothing is ever found by name.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: The ``studiohub up`` process itself, which becomes the hub (``execv`` keeps the pid).
HUB = "hub"


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); None if no such process runs (a zombie
    has exited: only its parent's wait is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass(frozen=True)
class Record:
    name: str
    pid: int
    started: int

    def alive(self) -> bool:
        """The recorded process itself still runs (not a later one with its pid)."""
        return start_ticks(self.pid) == self.started


def write(run_dir: Path, name: str, pid: int | None = None) -> Record:
    """Record ``pid`` (default: this process) as ``run_dir/<name>.pid``, readable by root only."""
    pid = os.getpid() if pid is None else pid
    started = start_ticks(pid)
    if started is None:
        raise ProcessLookupError(pid)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = run_dir / f"{name}.pid"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{pid} {started}\n")
    tmp.replace(path)
    return Record(name, pid, started)


def read(run_dir: Path) -> list[Record]:
    """Every well-formed record in ``run_dir`` (a malformed one is ignored)."""
    records = []
    for path in sorted(run_dir.glob("*.pid")):
        try:
            pid, started = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            continue
        records.append(Record(path.stem, pid, started))
    return records


def stop(record: Record, grace: float = 5.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after ``grace`` seconds; True if it was running.

    Each signal is sent only after checking the start time again, so a process that
    exited meanwhile and whose pid was reused is left alone.
    """
    if not record.alive():
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not record.alive():
            break
        try:
            os.kill(record.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while record.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    return True


def remove(run_dir: Path, name: str) -> None:
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
