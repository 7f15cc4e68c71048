"""A replica's log kept bounded: written in two rotating parts, read as one stream.

The keeper (:mod:`.keeper`) writes a replica's output into ``<replica>.log``; when that
part holds ``part_bytes`` bytes of output it becomes ``<replica>.log.1`` (replacing the
older one) and a new ``<replica>.log`` begins, as a server's log rotates
(:mod:`studiohub.spawners.serverlog`, whose ``open_log`` and ``rotate`` it uses). So a
replica printing without end keeps at most ``2 × part_bytes`` on disk: the newest
output. Every part after the first begins with a header line saying where in the
output it starts (:data:`HEADER`), so a reader knows what was dropped from the files
themselves, whatever rotation happens while it reads.

Reading (:func:`read`): positions are *logical*, bytes of the replica's output since its
start. The logs endpoint's ``offset`` is a logical position as long as nothing was
dropped (the usual case, and then the files are the output as printed). Once something
was, an answer from ``offset`` 0 begins with :func:`marker`, a line of a fixed
:data:`MARKER_BYTES` saying how much was dropped, then the oldest kept output; the
offsets after it count from there (:func:`to_logical`). A reader that polls by offset
across a later rotation skips at most one part (never reads a byte twice); the follow
stream tracks logical positions itself and skips nothing it could still read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HEADER = "[studiohub: part {part} of this replica's output, from byte {start}]\n"
_HEADER = re.compile(rb"\[studiohub: part (\d+) of this replica's output, from byte (\d+)\]\n")
MARKER_BYTES = 256


def header(part: int, start: int) -> bytes:
    return HEADER.format(part=part, start=start).encode()


@dataclass(frozen=True)
class Part:
    """One file of the log: the logical position of its first byte of output, where that
    byte is in the file, and how many bytes of output the file holds (when read)."""

    path: Path
    start: int
    skip: int
    size: int


def _start(head: bytes, size: int) -> tuple[int, int, int]:
    """(logical start, header length, bytes of output) of a part from its first bytes."""
    match = _HEADER.match(head)
    if not match:
        return 0, 0, size
    return int(match.group(2)), match.end(), size - match.end()


def _part(path: Path) -> Part | None:
    try:
        with open(path, "rb") as f:
            start, skip, size = _start(f.read(200), os.fstat(f.fileno()).st_size)
    except FileNotFoundError:
        return None
    return Part(path, start, skip, size)


def parts(path: Path, tries: int = 5) -> list[Part]:
    """The kept parts, oldest first; consistent (a rotation between the two looks is
    seen, and they are looked at again)."""
    found: list[Part] = []
    for _ in range(tries):
        older, newer = _part(Path(f"{path}.1")), _part(path)
        found = [p for p in (older, newer) if p is not None]
        if older is None or newer is None or older.start + older.size <= newer.start:
            return found
    return found[-1:]


def dropped(found: list[Part]) -> int:
    """Bytes of output no longer kept (the oldest kept part's start)."""
    return found[0].start if found else 0


def marker(count: int) -> bytes:
    """The line that stands for ``count`` dropped bytes: exactly :data:`MARKER_BYTES`."""
    text = (f"[studiohub: the first {count} bytes of this replica's output were not kept "
            "(jobs.max_log_bytes); its newest output follows]")
    return text.encode()[:MARKER_BYTES - 1].ljust(MARKER_BYTES - 1) + b"\n"


def to_logical(found: list[Part], offset: int) -> tuple[int, bytes]:
    """(logical position, marker bytes still to send) for an endpoint ``offset``."""
    count = dropped(found)
    if not count:
        return offset, b""
    if offset < MARKER_BYTES:
        return count, marker(count)[offset:]
    return count + offset - MARKER_BYTES, b""


def read(path: Path, position: int, limit: int, found: list[Part] | None = None
         ) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of output from logical ``position``: (bytes, next position).
    A position already dropped reads from the oldest kept byte. A part rotated away
    since ``found`` was taken (its file is another part now) is looked for again."""
    for _ in range(3):
        found = parts(path) if found is None else found
        result = _read(found, max(position, dropped(found)), limit)
        if result is not None:
            return result
        found = None
    return b"", position


def _read(found: list[Part], position: int, limit: int) -> tuple[bytes, int] | None:
    pieces: list[bytes] = []
    for part in found:
        if limit <= 0 or not part.start <= position < part.start + part.size:
            continue
        try:
            with open(part.path, "rb") as f:
                if _start(f.read(200), part.skip + part.size)[0] != part.start:
                    return None  # rotated meanwhile
                f.seek(part.skip + position - part.start)
                data = f.read(min(limit, part.start + part.size - position))
        except FileNotFoundError:
            return None
        pieces.append(data)
        position += len(data)
        limit -= len(data)
    return b"".join(pieces), position
