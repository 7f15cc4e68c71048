"""Scalar metrics of a job, read from its TensorBoard event files (a minimal reader).

TensorBoard is not in the hub's environment, so this reads the two formats itself:
TFRecord framing (length, masked CRC, an ``Event`` protobuf, masked CRC) and, inside each
``Event``, the step and the summary's values, either ``simple_value`` (PyTorch's
``SummaryWriter``, TF1) or a scalar ``tensor`` (TF2's ``tf.summary.scalar``).

The files are the user's, in their home, and the service runs as root: only regular files
owned by the job's own account are read (``O_NOFOLLOW``, checked on the open file), so a
link planted there cannot make the service read anyone else's file. Reading is bounded
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
from pathlib import Path
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


def _read_owned(path: str, uid: int, budget: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return b""
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(budget)
    finally:
        os.close(fd)


def read_scalars(directory: str, uid: int) -> dict[str, Any]:
    """``{tag: {latest, step, points: [[step, value]…]}}`` of the event files under
    ``directory`` owned by ``uid``."""
    series: dict[str, dict[int, float]] = {}
    budget, files = MAX_BYTES, 0
    for top, dirs, names in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            if "tfevents" not in name or files >= MAX_FILES or budget <= 0:
                continue
            files += 1
            try:
                data = _read_owned(os.path.join(top, name), uid, budget)
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


def read_job_scalars(home: str, job_id: str, unix_user: str) -> dict[str, Any]:
    """The scalars of a job's ``~/studiohub-jobs/<id>/tensorboard`` (nothing if absent)."""
    try:
        uid = pwd.getpwnam(unix_user).pw_uid
    except KeyError:
        return {}
    directory = Path(home) / "studiohub-jobs" / job_id / "tensorboard"
    if directory.is_symlink() or not directory.is_dir():
        return {}
    return read_scalars(str(directory), uid)
