"""Snapshot files are private, atomic, and only ever at paths the service chose."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from studiohub.sharing.snapshots import SnapshotFiles

SHARE = "AbCdEfGhIjKlMnOpQrStUv"


def test_write_read_and_modes(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path / "snapshots")
    files.write(SHARE, 1, b'{"cells": []}', "<p>preview</p>")
    assert files.read_notebook(SHARE, 1) == b'{"cells": []}'
    assert files.read_preview(SHARE, 1) == "<p>preview</p>"
    assert stat.S_IMODE(os.stat(tmp_path / "snapshots").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files.path(SHARE, 1, "ipynb")).st_mode) == 0o600
    assert not [p for p in (tmp_path / "snapshots" / SHARE).iterdir() if p.name.startswith(".")]


def test_a_rewrite_replaces_whole_files(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    files.write(SHARE, 2, b"old", "old")
    inode = os.stat(files.path(SHARE, 2, "ipynb")).st_ino
    files.write(SHARE, 2, b"new", "new")
    assert files.read_notebook(SHARE, 2) == b"new"
    assert os.stat(files.path(SHARE, 2, "ipynb")).st_ino != inode  # renamed over, not rewritten


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = SnapshotFiles(tmp_path)

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        files.write(SHARE, 1, b"x", "x")
    assert list((tmp_path / SHARE).iterdir()) == []


@pytest.mark.parametrize("share_id", ["../../etc", "a/b" * 8, "", "x" * 10, "é" * 22])
def test_paths_only_for_the_services_own_ids(tmp_path: Path, share_id: str) -> None:
    with pytest.raises(ValueError, match="not a snapshot"):
        SnapshotFiles(tmp_path).path(share_id, 1, "ipynb")


def test_remove_share_and_version(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    files.write(SHARE, 1, b"1", "1")
    files.write(SHARE, 2, b"2", "2")
    files.remove_version(SHARE, 2)
    assert sorted(p.name for p in (tmp_path / SHARE).iterdir()) == ["1.html", "1.ipynb"]
    files.remove_share(SHARE)
    assert not (tmp_path / SHARE).exists()
