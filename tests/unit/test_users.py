"""The private directory where a personal hub's kernels listen."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from studiohub import users
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


def test_the_account_s_tmpdir_is_private_and_made_without_following_links(
        tmp_path: Path) -> None:
    import pwd

    from studiohub.users import ensure_tmp_dir

    me = pwd.getpwuid(os.geteuid())
    home = tmp_path / "home"
    home.mkdir()
    account = pwd.struct_passwd((me.pw_name, me.pw_passwd, me.pw_uid, me.pw_gid, me.pw_gecos,
                                 str(home), me.pw_shell))
    assert ensure_tmp_dir(account) == str(home / ".tmp")
    assert stat.S_IMODE((home / ".tmp").stat().st_mode) == 0o700
    (home / ".tmp").chmod(0o777)  # loosened: tightened again
    ensure_tmp_dir(account)
    assert stat.S_IMODE((home / ".tmp").stat().st_mode) == 0o700
    # A link planted in its place (to a directory the hub must not hand over) is refused.
    (home / ".tmp").rmdir()
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    (home / ".tmp").symlink_to(victim)
    with pytest.raises(RuntimeError, match="is not a directory: remove it"):
        ensure_tmp_dir(account)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755


def test_an_account_made_for_another_hub_name_is_refused(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Two names with the same cleaned form and 32-bit hash map to one account: the
    account's comment says whose it is, and the other name is refused."""
    entry = pwd.struct_passwd(("jupyter-alice-example-org--1a2b3c4d", "x", 4242, 4242,
                               "StudioHub user alice@example.org", "/nonexistent",
                               "/bin/bash"))
    monkeypatch.setattr(users.pwd, "getpwnam", lambda name: entry)
    with pytest.raises(users.AccountTaken, match="belongs to another hub user: "
                       "'alice_example_org' cannot use it"):
        users.ensure_user("alice_example_org")
    users.check_owner(entry, "alice@example.org")  # its own hub name is fine
    by_hand = pwd.struct_passwd((*entry[:4], "made by hand", *entry[5:]))
    users.check_owner(by_hand, "anyone")  # accounts StudioHub did not make are left alone


@pytest.mark.parametrize("name", ["boss\u200b", "ｂｏｓｓ", "boss ", "bo\u00a0ss", "boss\u2028",
                                  "ﬁle"])
def test_lookalike_names_are_refused(name: str) -> None:
    assert "invisible or look-alike characters" in (users.lookalike_reason(name) or "")


@pytest.mark.parametrize("name", ["boss", "alice@example.org", "josé", "李雷", "a.b_c-d",
                                  "john smith"])
def test_plain_names_pass(name: str) -> None:
    assert users.lookalike_reason(name) is None
