"""A server's log stays bounded while the server runs (the rotating writer process)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from studiohub.spawners import serverlog

KIB = 1024


def test_a_flood_of_output_never_grows_the_log_past_twice_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "servers" / "jupyter-ada.log"
    flood = ("import sys\n"
             "for i in range(4000):\n"
             "    sys.stdout.write(f'{i:07d} ' + 'x' * 1000 + chr(10))\n")
    with serverlog.start_writer(path, 64 * KIB) as (out, writer):
        subprocess.run([sys.executable, "-c", flood], stdout=out, check=True)
    writer.wait(20)
    files = serverlog.log_files(path)
    assert files == [Path(f"{path}.1"), path]
    assert all(f.stat().st_size <= 64 * KIB for f in files)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    # The newest lines are kept, the oldest dropped (about 4 MB were written).
    both = "".join(f.read_text() for f in files)
    assert both.endswith("0003999 " + "x" * 1000 + "\n")
    assert "0000000 " not in both


def test_drain_rotates_an_old_log_past_the_bound_and_splits_big_chunks(tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"old" * 10)
    source = tmp_path / "in"
    source.write_bytes(b"y" * 25)
    with source.open("rb") as f:
        serverlog.drain(f.fileno(), path, max_bytes=10)
    assert Path(f"{path}.1").read_bytes() == b"y" * 10
    assert path.read_bytes() == b"y" * 5


def test_a_link_in_place_of_the_log_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    path = tmp_path / "b.log"
    path.symlink_to(target)
    source = tmp_path / "in"
    source.write_bytes(b"z")
    # Refused (ELOOP): nothing is written anywhere.
    with source.open("rb") as f, contextlib.suppress(OSError):
        serverlog.drain(f.fileno(), path, max_bytes=10)
    assert target.read_text() == "keep"
