"""Start a hub-managed service so that it cannot outlive its hub unnoticed.

``python -m studiohub.servicewrap RUN_DIR NAME -- COMMAND...`` is what the hub runs for
each of its managed services (``configurer.update_service_records`` rewrites their
commands). Before it becomes ``COMMAND`` (``execv``: same pid, nothing left in between) it

1. asks the kernel to send it SIGTERM when the hub that started it dies
   (``PR_SET_PDEATHSIG``, kept across ``execv``), so a hub killed with SIGKILL takes its
   services with it; and
2. records its pid and start time in ``RUN_DIR/NAME.pid`` (:mod:`studiohub.pidrecords`),
   so a later ``studiohub up`` can still find and stop it by that record if it
   survived (e.g. the parent-death signal was handled or ignored);
3. sets umask 077: services write their data under ``state/``, which stays private.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import pidrecords

PR_SET_PDEATHSIG = 1


def die_with_parent(run_dir: Path) -> None:
    """SIGTERM when the hub dies; exit now if it already has (it may die before prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # refused: the pid record still lets `studiohub up` find this service
    hub = next((r for r in pidrecords.read(run_dir) if r.name == pidrecords.HUB), None)
    if hub is not None and os.getppid() != hub.pid:
        sys.exit("studiohub.servicewrap: the hub that started this service is gone")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        sys.exit("usage: python -m studiohub.servicewrap RUN_DIR NAME -- COMMAND...")
    run_dir, name, command = Path(args[0]), args[1], args[3:]
    die_with_parent(run_dir)
    pidrecords.write(run_dir, name)
    os.umask(0o077)  # what the service writes (in state/) is its own
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
