"""The private directory where a personal hub's kernels listen."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from studiohub.users import ensure_private_dir, personal_socket_dir


def test_private_dir_is_made_0700_and_tightened(tmp_path: Path) -> None:
    path = tmp_path / "prefix" / "run"
    assert ensure_private_dir(path) == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    path.chmod(0o755)  # loosened by hand: tightened again
    ensure_private_dir(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_a_file_or_someone_else_s_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match="not a directory of this account"):
        ensure_private_dir(tmp_path / "file")
    if os.geteuid() == 0:  # only root can make a directory someone else's
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, 65534)
        with pytest.raises(RuntimeError, match="remove it"):
            ensure_private_dir(other)


def test_a_long_prefix_puts_sockets_in_a_short_directory(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("STUDIOHUB_PREFIX", "/home/someone/.local/share/studiohub")
    assert personal_socket_dir() == Path("/home/someone/.local/share/studiohub/run")
    monkeypatch.setenv("STUDIOHUB_PREFIX", "/srv/" + "deep/" * 20 + "studiohub")
    assert personal_socket_dir() == Path(f"/tmp/studiohub-{os.geteuid()}")
