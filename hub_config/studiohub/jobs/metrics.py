"""Scalar metrics of a job, read from its TensorBoard event files (a minimal reader).

TensorBoard is not in the hub's environment, so this reads the two formats itself:
TFRecord framing (length, masked CRC, an ``Event`` protobuf, masked CRC) and, inside each
``Event``, the step and the summary's values, either ``simple_value`` (PyTorch's
``SummaryWriter``, TF1) or a scalar ``tensor`` (TF2's ``tf.summary.scalar``).

The files are the user's, in their home, and the service runs as root, so nothing is
looked up by path twice: each folder, from the home down to the job's ``tensorboard``
and below, is opened relative to its parent's descriptor without following a link
(``O_NOFOLLOW | O_DIRECTORY``) and checked on the open descriptor (owned by the job's
account); files likewise (regular, the account's). A link planted anywhere on the way,
or swapped in while the service reads, makes the service read nothing, and what it
answers (no scalars) is what a missing folder answers. Reading is bounded
(:data:`MAX_BYTES` in all); each tag keeps its latest value and at most
:data:`MAX_POINTS` points (evenly thinned, the last one always kept).
"""

from __future__ import annotations

import math
import os
import pwd
import stat
import struct
from collections.abc import Iterator
from typing import Any

MAX_BYTES = 64 * 1024 * 1024
MAX_POINTS = 200
MAX_FILES = 100


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message; bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _tensor_scalar(data: bytes) -> float | None:
    """A scalar TensorProto's value: float_val (5), double_val (6) or tensor_content (4)."""
    dtype = 1
    for number, wire, value in fields(data):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 5:
            return float(struct.unpack("<f", value[:4])[0]) if len(value) >= 4 else None
        elif number == 6:
            return float(struct.unpack("<d", value[:8])[0]) if len(value) >= 8 else None
        elif number == 4 and wire == 2:
            if dtype == 2 and len(value) >= 8:  # DT_DOUBLE
                return float(struct.unpack("<d", value[:8])[0])
            if len(value) >= 4:
                return float(struct.unpack("<f", value[:4])[0])
    return None


def event_scalars(event: bytes) -> Iterator[tuple[str, int, float]]:
    """(tag, step, value) of each scalar in one ``Event``."""
    step, summary = 0, None
    for number, wire, value in fields(event):
        if number == 2 and wire == 0:
            step = value
        elif number == 5 and wire == 2:
            summary = value
    if summary is None:
        return
    for number, wire, value in fields(summary):
        if number != 1 or wire != 2:
            continue
        tag, scalar = "", None
        for n, w, v in fields(value):
            if n == 1 and w == 2:
                tag = v.decode("utf-8", "replace")
            elif n == 2 and w == 5:
                scalar = float(struct.unpack("<f", v)[0])
            elif n == 8 and w == 2 and scalar is None:
                scalar = _tensor_scalar(v)
        if tag and scalar is not None:
            yield tag, step, scalar


def records(data: bytes) -> Iterator[bytes]:
    """The records of a TFRecord file's bytes (a torn last record is left out)."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        start = pos + 12
        if start + length + 4 > len(data):
            return
        yield data[start:start + length]
        pos = start + length + 4


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_owned(name: str, dir_fd: int, uid: int, budget: int) -> bytes:
    """``name`` in ``dir_fd`` if it is a regular file of ``uid`` (never through a link)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return b""
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(budget)
    finally:
        os.close(fd)


def _open_owned_dir(name: str, uid: int, dir_fd: int | None = None) -> int | None:
    """A descriptor of folder ``name`` (relative to ``dir_fd``) if it is a folder, not a
    link, owned by ``uid``; else None (the caller closes it)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    if os.fstat(fd).st_uid != uid:
        os.close(fd)
        return None
    return fd


def read_scalars(directory: str, uid: int) -> dict[str, Any]:
    """``{tag: {latest, step, points: [[step, value]…]}}`` of the event files under
    ``directory`` owned by ``uid`` (nothing if it is a link or not ``uid``'s)."""
    fd = _open_owned_dir(directory, uid)
    if fd is None:
        return {}
    try:
        return scalars_under(fd, uid)
    finally:
        os.close(fd)


def scalars_under(top_fd: int, uid: int) -> dict[str, Any]:
    """:func:`read_scalars` of an open folder: walked by descriptor (``os.fwalk``, links
    not followed; a sub-folder not ``uid``'s is skipped), so a link swapped in while the
    walk runs cannot redirect it."""
    series: dict[str, dict[int, float]] = {}
    budget, files = MAX_BYTES, 0
    for _, dirs, names, dir_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
        if os.fstat(dir_fd).st_uid != uid:
            dirs.clear()
            continue
        dirs.sort()
        for name in sorted(names):
            if "tfevents" not in name or files >= MAX_FILES or budget <= 0:
                continue
            files += 1
            try:
                data = _read_owned(name, dir_fd, uid, budget)
            except OSError:
                continue
            budget -= len(data)
            for record in records(data):
                try:
                    for tag, step, value in event_scalars(record):
                        series.setdefault(tag, {})[step] = value
                except (ValueError, IndexError, struct.error):
                    continue
    return {tag: summarise(points) for tag, points in sorted(series.items())}


def summarise(points: dict[int, float]) -> dict[str, Any]:
    ordered = sorted(points.items())
    if len(ordered) > MAX_POINTS:
        stride = len(ordered) / (MAX_POINTS - 1)
        ordered = [ordered[int(i * stride)] for i in range(MAX_POINTS - 1)] + [ordered[-1]]
    step, latest = ordered[-1]
    return {"latest": finite(latest), "step": step,
            "points": [[s, finite(v)] for s, v in ordered]}


def finite(value: float) -> float | None:
    """A NaN or an infinity (a diverged loss) as null: JSON, and browsers, have neither."""
    return value if math.isfinite(value) else None


def _open_job_folder(home: str, names: tuple[str, ...], uid: int) -> int | None:
    """A descriptor of ``home/names…``, each name opened in the one before it by
    :func:`_open_owned_dir`; None if any is absent, a link or not ``uid``'s. The home
    itself is the passwd entry's (not the user's to change), so it may be a link."""
    try:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    for name in names:
        inner = _open_owned_dir(name, uid, fd)
        os.close(fd)
        if inner is None:
            return None
        fd = inner
    return fd


def read_job_scalars(home: str, job_id: str, unix_user: str) -> dict[str, Any]:
    """The scalars of a job's ``~/studiohub-jobs/<id>/tensorboard``: nothing if a folder
    on the way is absent, a link or not the account's."""
    try:
        uid = pwd.getpwnam(unix_user).pw_uid
    except KeyError:
        return {}
    if job_id in ("", ".", "..") or "/" in job_id:
        return {}
    fd = _open_job_folder(home, ("studiohub-jobs", job_id, "tensorboard"), uid)
    if fd is None:
        return {}
    try:
        return scalars_under(fd, uid)
    finally:
        os.close(fd)
