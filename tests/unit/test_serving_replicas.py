"""The replicas' sockets: what root moves into its own folder, and what it leaves.

A replica binds its socket in its account's folder, which the user controls; the models
service renames it into a root-only folder for the balancer. Whatever the user put there
instead (a folder, a link to someone else's socket, a socket of another account) must
never be moved, kept, or followed (issue 15's attack review: a folder there used to stop
every endpoint's supervision).
"""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from studiohub.serving.replicas import ReplicaRunner

if os.geteuid() != 0:
    pytest.skip("sockets of other accounts: run as root", allow_module_level=True)

NOBODY = pwd.getpwnam("nobody")


class Runner(ReplicaRunner):
    """The real runner, with the account's folder in a temporary directory."""

    def __init__(self, tmp: Path) -> None:
        self.bind_root = tmp / "user"
        self.bind_root.mkdir()
        super().__init__(executor=None, placing=None,  # type: ignore[arg-type]
                         socket_root=tmp / "root", env_python=lambda image: Path("/x"),
                         unix_user=lambda user: "nobody")

    def bind_path(self, user: str, holder: str, replica: str) -> str:
        return str(self.bind_root / f"ep-{holder}-{replica}.sock")


def bound(path: str, uid: int = NOBODY.pw_uid) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen()
    os.chown(path, uid, -1, follow_symlinks=False)
    return s


def test_the_owners_socket_is_moved_into_roots_folder(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    with bound(runner.bind_path("u", "a" * 12, "replica-0")):
        assert runner.claim_socket("u", "a" * 12, "replica-0")
        target = Path(runner.socket_path("a" * 12, "replica-0"))
        assert target.is_socket() and not Path(runner.bind_path("u", "a" * 12,
                                                                "replica-0")).exists()
        assert oct(os.stat(tmp_path / "root").st_mode & 0o777) == "0o700"


def test_a_folder_a_link_or_anothers_socket_is_left_where_it_is(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    source = Path(runner.bind_path("u", "b" * 12, "replica-0"))
    source.mkdir()
    (source / "x").write_text("not a socket")
    assert not runner.claim_socket("u", "b" * 12, "replica-0")
    assert source.is_dir() and not Path(runner.socket_path("b" * 12, "replica-0")).exists()
    source_link = Path(runner.bind_path("u", "c" * 12, "replica-0"))
    with bound(str(tmp_path / "elsewhere.sock"), uid=0):
        source_link.symlink_to(tmp_path / "elsewhere.sock")
        assert not runner.claim_socket("u", "c" * 12, "replica-0")
        assert source_link.is_symlink()
    with bound(runner.bind_path("u", "d" * 12, "replica-0"), uid=0):  # root's, not nobody's
        assert not runner.claim_socket("u", "d" * 12, "replica-0")
    assert os.listdir(tmp_path / "root") == []
    # And nothing there makes a later start fail: the stale target is cleared first.
    assert not runner.claim_socket("u", "e" * 12, "replica-0")  # nothing bound yet
