"""A hub's managed service dies with its hub and leaves a pid record (issue 12.9)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from studiohub import pidrecords


def wait_for(check: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.05)
    return False


def test_a_wrapped_service_is_recorded_and_dies_when_its_hub_is_killed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    service = [sys.executable, "-m", "studiohub.servicewrap", str(run), "svc", "--",
               "sleep", "120"]
    # A stand-in hub: starts the service, then waits to be killed.
    hub = subprocess.Popen([sys.executable, "-c",
                            f"import subprocess, time; subprocess.Popen({service!r}); "
                            "time.sleep(120)"])
    try:
        assert wait_for(lambda: (run / "svc.pid").exists()), "no record written"
        (record,) = pidrecords.read(run)
        assert record.alive()
        assert Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")[:2] == \
            [b"sleep", b"120"]  # the service itself, under the recorded pid (execv)
        assert (run / "svc.pid").stat().st_mode & 0o077 == 0
        hub.send_signal(signal.SIGKILL)
        hub.wait()
        assert wait_for(lambda: not record.alive(), timeout=10), \
            "the service outlived its killed hub"
    finally:
        hub.kill()
        hub.wait()
        for r in pidrecords.read(run):
            if r.alive():
                pidrecords.stop(r, grace=1)


def test_a_service_whose_hub_is_already_gone_does_not_start(tmp_path: Path) -> None:
    run = tmp_path / "run"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # The record says the hub is another process than this service's parent.
    run.mkdir()
    (run / "hub.pid").write_text(f"{gone.pid} 1\n")
    result = subprocess.run([sys.executable, "-m", "studiohub.servicewrap", str(run), "svc",
                             "--", "sleep", "120"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "the hub that started this service is gone" in result.stderr
    assert not (run / "svc.pid").exists()
