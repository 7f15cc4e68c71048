"""Scalars from TensorBoard event files, read by the service's own minimal reader."""

from __future__ import annotations

import os
import pwd
import shutil
import struct
from pathlib import Path

import pytest

from studiohub.jobs import metrics
from studiohub.jobs.metrics import MAX_POINTS, read_job_scalars, read_scalars


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    key = varint(number << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)


def simple_event(step: int, tag: str, value: float) -> bytes:
    """An Event with a Summary.Value{tag, simple_value} (PyTorch's SummaryWriter)."""
    val = field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value))
    return field(1, 1, struct.pack("<d", 1.0)) + field(2, 0, varint(step)) + \
        field(5, 2, field(1, 2, val))


def tensor_event(step: int, tag: str, value: float) -> bytes:
    """TF2's tf.summary.scalar: a scalar TensorProto with a float in tensor_content."""
    tensor = field(1, 0, varint(1)) + field(4, 2, struct.pack("<f", value))
    val = field(1, 2, tag.encode()) + field(8, 2, tensor)
    return field(2, 0, varint(step)) + field(5, 2, field(1, 2, val))


def tfrecord(*events: bytes) -> bytes:
    return b"".join(struct.pack("<Q", len(e)) + b"crc!" + e + b"crc!" for e in events)


def test_simple_and_tensor_scalars_latest_and_points(tmp_path: Path) -> None:
    run = tmp_path / "tb" / "train"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1.host").write_bytes(tfrecord(
        b"\x0a\x00",  # a file_version event without a summary
        *(simple_event(s, "loss", 1.0 / (s + 1)) for s in range(3)),
        tensor_event(5, "accuracy", 0.75)))
    tags = read_scalars(str(tmp_path / "tb"), os.geteuid())
    assert tags["loss"]["step"] == 2 and abs(tags["loss"]["latest"] - 1 / 3) < 1e-6
    assert [p[0] for p in tags["loss"]["points"]] == [0, 1, 2]
    assert tags["accuracy"] == {"latest": 0.75, "step": 5, "points": [[5, 0.75]]}


def test_points_are_thinned_and_a_torn_record_is_left_out(tmp_path: Path) -> None:
    data = tfrecord(*(simple_event(s, "loss", float(s)) for s in range(1000)))
    (tmp_path / "x.tfevents.2").write_bytes(data + struct.pack("<Q", 50) + b"crc!abc")
    loss = read_scalars(str(tmp_path), os.geteuid())["loss"]
    assert len(loss["points"]) == MAX_POINTS and loss["points"][-1] == [999, 999.0]
    assert loss["latest"] == 999.0


def test_only_the_accounts_own_regular_files_are_read(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.tfevents.3"
    secret.write_bytes(tfrecord(simple_event(1, "stolen", 1.0)))
    tb = tmp_path / "tb"
    tb.mkdir()
    (tb / "link.tfevents.4").symlink_to(secret)
    (tb / "linked-dir").symlink_to(tmp_path)
    mine = tb / "mine.tfevents.5"
    mine.write_bytes(tfrecord(simple_event(1, "loss", 2.0)))
    assert set(read_scalars(str(tb), os.geteuid())) == {"loss"}
    assert read_scalars(str(tb), os.geteuid() + 12345) == {}


def test_a_diverged_loss_is_null_not_nan_or_infinity(tmp_path: Path) -> None:
    """JSON has no NaN or Infinity: a browser's JSON.parse refuses the whole answer."""
    (tmp_path / "x.tfevents.3").write_bytes(tfrecord(
        simple_event(0, "loss", 1.0), simple_event(1, "loss", float("nan")),
        simple_event(2, "loss", float("inf"))))
    loss = read_scalars(str(tmp_path), os.geteuid())["loss"]
    assert loss == {"latest": None, "step": 2, "points": [[0, 1.0], [1, None], [2, None]]}


# --- read_job_scalars: the service (root) reads a job's folder in the user's home ------

USER = "nobody"  # an account that is not root: the folder's owner in these tests


def job_home(tmp_path: Path) -> tuple[Path, Path]:
    """(home, its studiohub-jobs/j1/tensorboard with one event file), all ``USER``'s."""
    uid = pwd.getpwnam(USER).pw_uid
    home = tmp_path / "home"
    tensorboard = home / "studiohub-jobs" / "j1" / "tensorboard"
    (tensorboard / "train").mkdir(parents=True)
    (tensorboard / "train" / "events.out.tfevents.1").write_bytes(
        tfrecord(simple_event(4, "loss", 0.5)))
    for path in (home, *tensorboard.parents, *tensorboard.rglob("*"), tensorboard):
        if home in (path, *path.parents):
            os.chown(path, uid, uid)
    return home, tensorboard


def root_only_copy(tmp_path: Path) -> Path:
    """A folder only root may enter, holding a job folder of ``USER``'s own (files the
    user owns but cannot reach: the worst case for an ownership check alone)."""
    uid = pwd.getpwnam(USER).pw_uid
    secret = tmp_path / "root-only"
    run = secret / "jobs" / "j1" / "tensorboard" / "run"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.2").write_bytes(tfrecord(simple_event(7, "secret", 1.0)))
    for path in (*run.parents, run, run / "events.out.tfevents.2"):
        if secret in path.parents:
            os.chown(path, uid, uid)
    secret.chmod(0o700)
    assert secret.stat().st_uid == 0
    return secret


def lswap(path: Path, target: Path) -> None:
    """``path`` replaced by a link to ``target``, the link ``USER``'s (as they would make)."""
    shutil.rmtree(path)
    path.symlink_to(target)
    uid = pwd.getpwnam(USER).pw_uid
    os.lchown(path, uid, uid)


def test_a_job_folder_of_the_accounts_own_is_read(tmp_path: Path) -> None:
    home, _ = job_home(tmp_path)
    tags = read_job_scalars(str(home), "j1", USER)
    assert tags == {"loss": {"latest": 0.5, "step": 4, "points": [[4, 0.5]]}}
    assert read_job_scalars(str(home), "j2", USER) == {}  # absent: nothing, no error


@pytest.mark.parametrize("where", ["studiohub-jobs", "studiohub-jobs/j1",
                                   "studiohub-jobs/j1/tensorboard"])
def test_a_link_to_a_root_only_folder_on_the_way_reads_nothing(tmp_path: Path,
                                                               where: str) -> None:
    """A link the user planted at any step of the path (not only the last) answers what
    a missing folder answers; the folder behind it is never walked."""
    home, _ = job_home(tmp_path)
    secret = root_only_copy(tmp_path)
    inside = {"studiohub-jobs": "jobs", "studiohub-jobs/j1": "jobs/j1",
              "studiohub-jobs/j1/tensorboard": "jobs/j1/tensorboard"}[where]
    lswap(home / where, secret / inside)
    assert read_job_scalars(str(home), "j1", USER) == {}


def test_a_folder_not_the_accounts_reads_nothing(tmp_path: Path) -> None:
    home, tensorboard = job_home(tmp_path)
    os.chown(tensorboard, 0, 0)
    assert read_job_scalars(str(home), "j1", USER) == {}
    os.chown(tensorboard, pwd.getpwnam(USER).pw_uid, 0)
    os.chown(tensorboard / "train", 0, 0)  # a sub-folder not theirs is skipped
    assert read_job_scalars(str(home), "j1", USER) == {}
    assert read_job_scalars(str(home), "..", USER) == {}
    assert read_job_scalars(str(home), "j1", "no-such-account-x") == {}


def test_a_link_swapped_in_after_the_folder_is_opened_is_not_followed(
        tmp_path: Path) -> None:
    """The walk goes by descriptor: replacing the folder by a link once it is open (the
    race a path check then a path read would lose) still reads the folder opened."""
    home, tensorboard = job_home(tmp_path)
    secret = root_only_copy(tmp_path)
    uid = pwd.getpwnam(USER).pw_uid
    fd = metrics._open_job_folder(str(home), ("studiohub-jobs", "j1", "tensorboard"), uid)
    assert fd is not None
    try:
        tensorboard.rename(tensorboard.with_name("moved"))
        tensorboard.symlink_to(secret / "jobs" / "j1" / "tensorboard")
        assert set(metrics.scalars_under(fd, uid)) == {"loss"}
    finally:
        os.close(fd)
