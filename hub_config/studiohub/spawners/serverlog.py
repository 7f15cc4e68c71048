"""A server's log, bounded while the server runs: a pipe drained into a rotating file.

The server's stdout and stderr (and its kernels', which inherit them) go into a pipe;
a small writer process reads it and appends to ``<name>.log``, moving it to
``<name>.log.1`` whenever the next bytes would take it past ``max_bytes``. So whatever a
server, its kernels, or anyone able to make them print, writes, the two files hold at
most ``2 × max_bytes``. The writer runs in a session of its own: it outlives a hub
restart (the server keeps its log) and exits when the last writer of the pipe does.

``python -m studiohub.spawners.serverlog PATH MAX_BYTES`` is that writer; it imports
nothing but ``os`` and ``sys``, so it starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import DEVNULL, Popen

MAX_BYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024


def open_log(path: Path) -> int:
    """The log file for appending, readable by its owner only; a link there is refused."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)


def rotate(path: Path) -> None:
    """``path`` becomes ``path.1`` (replacing the older copy)."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, f"{path}.1")


def drain(source: int, path: Path, max_bytes: int) -> None:
    """Copy ``source`` into ``path`` until end of file, rotating before it passes the bound."""
    if path.exists() and path.stat().st_size >= max_bytes:
        rotate(path)
    fd = open_log(path)
    size = os.fstat(fd).st_size
    try:
        while chunk := os.read(source, CHUNK):
            while chunk:
                if size >= max_bytes:
                    os.close(fd)
                    rotate(path)
                    fd, size = open_log(path), 0
                part = chunk[:max_bytes - size]
                os.write(fd, part)
                size += len(part)
                chunk = chunk[len(part):]
    finally:
        os.close(fd)


@contextlib.contextmanager
def start_writer(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[tuple[int, Popen[bytes]]]:
    """Start the writer of ``path``; yield the pipe's write end, to give a process as its
    stdout (closed here afterwards: the process keeps its own copy), and the writer."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    read, write = os.pipe()
    try:
        writer = Popen([sys.executable, "-m", __name__, str(path), str(max_bytes)],
                       stdin=read, stdout=DEVNULL, stderr=DEVNULL, start_new_session=True,
                       close_fds=True)
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    try:
        yield write, writer
    finally:
        os.close(write)


def wait_written(writer: Popen[bytes] | None, timeout: float = 1.0) -> None:
    """Let the writer finish once its process is gone (what it read is then in the file)."""
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.wait(timeout)


def log_files(path: Path) -> list[Path]:
    """The log and its older copy, oldest first (those that exist)."""
    return [p for p in (Path(f"{path}.1"), path) if p.exists()]


if __name__ == "__main__":
    drain(0, Path(sys.argv[1]), int(sys.argv[2]))
