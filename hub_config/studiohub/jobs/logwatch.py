"""Wake a log's follower when the log changes, instead of reading it on a timer.

The logs endpoint's ``follow`` reads a replica's log, then waits for more: with
:class:`LogWatch` the wait ends as soon as the keeper writes (inotify on the file), or the
file, or a folder on its way, appears (inotify on the nearest folder that exists), or it
is rotated (the watched file moved away). A timeout still bounds every wait: the caller
also has the job's status to look at.

Linux's inotify through :mod:`ctypes`, as :mod:`.netns` reaches ``unshare``: three calls,
no dependency. One inotify instance per follower (closed with it), at most
:data:`MAX_INSTANCES` at a time in this process: root's ``fs.inotify.max_user_instances``
(128 by default) is shared by every root daemon on the host, so the service must never use
them up (the logs endpoint also caps follows per user). Past that cap, or where none can be
made (the host's limit reached, not Linux), the wait is the timeout, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from pathlib import Path

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_TO, IN_CREATE, IN_DELETE_SELF, IN_MOVE_SELF = 0x80, 0x100, 0x400, 0x800
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
FILE_EVENTS = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
FOLDER_EVENTS = IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
#: Most inotify instances the followers of this process hold at once (a quarter of root's
#: default ``max_user_instances``); further followers wait on the timer.
MAX_INSTANCES = 32


class LogWatch:
    """Waits for a change of ``path``; use as a context manager (closes the instance)."""

    #: Instances open now, in this process (see :data:`MAX_INSTANCES`).
    live = 0

    def __init__(self, path: Path, levels: int = 4) -> None:
        self.path, self.levels = path, levels
        self._changed = asyncio.Event()
        self._target: tuple[str, int] | None = None  # (watched path, inode)
        self._wd = -1
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd: int = -1
        if LogWatch.live < MAX_INSTANCES and hasattr(self._libc, "inotify_init1"):
            self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd >= 0:
            LogWatch.live += 1
            asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def __enter__(self) -> LogWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            LogWatch.live -= 1

    def _readable(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._fd, 65536):
                pass
        self._changed.set()

    def _nearest(self) -> tuple[str, int, int] | None:
        """(path, inode, events) of the log, or of the nearest folder above it that exists."""
        candidate, mask = self.path, FILE_EVENTS
        for _ in range(self.levels + 1):
            with contextlib.suppress(OSError):
                return str(candidate), os.stat(candidate).st_ino, mask
            candidate, mask = candidate.parent, FOLDER_EVENTS
        return None

    def _rewatch(self) -> bool:
        """Watch what :meth:`_nearest` says; True when that changed (a new watch)."""
        nearest = self._nearest()
        target = nearest[:2] if nearest else None
        if nearest is None or target == self._target:
            return False
        if self._wd >= 0:
            self._libc.inotify_rm_watch(self._fd, self._wd)
        self._wd = self._libc.inotify_add_watch(self._fd, nearest[0].encode(), nearest[2])
        self._target = target if self._wd >= 0 else None
        return True

    async def wait(self, timeout: float) -> None:
        """Until the log may have changed, or ``timeout`` seconds.

        Returns at once when the watch moved (the file appeared or was rotated): what
        was written before the new watch existed is read by the caller's next read."""
        if self._fd < 0:
            await asyncio.sleep(timeout)
            return
        if self._rewatch() or self._wd < 0:
            if self._wd < 0:
                await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()
