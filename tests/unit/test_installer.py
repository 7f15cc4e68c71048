"""What `studiohub up` prints (the generated password once, then only where it is kept; how
to log in), and its steps that keep state private and clear what a crashed hub left."""

from __future__ import annotations

import dbm
import os
import stat
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

from studiohub import pidrecords
from studiohub.doctor import check_balancer, check_command, check_login
from studiohub.installer import (
    LinkRefused,
    StepError,
    banner,
    ensure_admin_passwords,
    ensure_command_link,
    ensure_no_leftovers,
    ensure_password,
    ensure_state_private,
    link_command,
)
from studiohub.settings import load_settings


def test_the_generated_password_is_printed_once(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: shared-password\n")
    settings = load_settings(config, environ={})
    first = ensure_password(settings)
    assert first and len(first) >= 16
    kept = tmp_path / "state" / "password"
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first in banner(settings, first)
    again = ensure_password(settings)  # the next start: the same password, not shown
    assert again is None and kept.read_text().strip() == first
    text = banner(settings, again)
    assert first not in text and f"kept in {tmp_path / 'state'}/password" in text


def test_an_operator_password_is_never_printed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: shared-password\n"
                      "  password: s3cret-enough\n")
    settings = load_settings(config, environ={})
    assert ensure_password(settings) is None
    assert "s3cret-enough" not in banner(settings, None)
    assert not (tmp_path / "state" / "password").exists()


def firstuse_settings(tmp_path: Path) -> dict:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n"
                      "auth:\n  type: firstuse\n  admin_users: [Ada]\n")
    return load_settings(config, environ={})


def test_first_use_admins_password_is_set_before_anyone_can_claim_it(tmp_path: Path) -> None:
    settings = firstuse_settings(tmp_path)
    ensure_admin_passwords(settings)
    password = (tmp_path / "state" / "admin-password").read_text().strip()
    with dbm.open(str(tmp_path / "state" / "passwords.dbm"), "r") as db:
        stored = db[b"ada"]  # normalised as FirstUseAuthenticator looks it up
    assert bcrypt.checkpw(password.encode(), stored)
    with dbm.open(str(tmp_path / "state" / "passwords.dbm"), "w") as db:
        db["ada"] = bcrypt.hashpw(b"chosen-later", bcrypt.gensalt())
    ensure_admin_passwords(settings)  # a password the admin changed is kept
    with dbm.open(str(tmp_path / "state" / "passwords.dbm"), "r") as db:
        assert bcrypt.checkpw(b"chosen-later", db[b"ada"])


def test_banner_says_what_to_type_at_first_login(tmp_path: Path) -> None:
    ensure_admin_passwords(firstuse_settings(tmp_path))
    text = banner(firstuse_settings(tmp_path), None)
    assert "First login: type a user name and choose a password (at least 8 characters)" \
        in text
    assert f"Admins (Ada) log in with the password in {tmp_path / 'state'}/admin-password" \
        in text


def test_an_admin_who_already_had_a_password_is_not_sent_to_admin_password(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n"
                      "auth:\n  type: firstuse\n  admin_users: [Ada]\n")
    (tmp_path / "state").mkdir()
    with dbm.open(str(tmp_path / "state" / "passwords.dbm"), "c") as db:
        db["tourann"] = bcrypt.hashpw(b"chosen-at-first-login", bcrypt.gensalt())
    config.write_text(f"state_dir: {tmp_path / 'state'}\n"
                      "auth:\n  type: firstuse\n  admin_users: [Ada, tourann]\n")
    settings = load_settings(config, environ={})
    fresh = ensure_admin_passwords(settings)
    text = banner(settings, None, fresh)
    assert f"Admins (Ada) log in with their name and the admin password: {fresh}" in text
    assert "Admins who already had a password (tourann) keep logging in with their own" \
        in text
    later = banner(settings, None, None)
    assert f"Admins (Ada) log in with the password in {tmp_path / 'state'}/admin-password" \
        in later and "(tourann) keep logging in with their own" in later
    assert "Admins (Ada, tourann)" not in text + later


def test_every_state_file_is_made_private(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    settings = load_settings(config, environ={})
    state = tmp_path / "state"
    (state / "servers").mkdir(parents=True, mode=0o755)
    (state / "servers" / "a.log").write_text("x")
    (state / "servers" / "a.log").chmod(0o644)
    (state / "placements.json").write_text("{}")
    (state / "placements.json").chmod(0o664)
    ensure_state_private(settings)
    assert stat.S_IMODE((state / "jupyterhub.sqlite").stat().st_mode) == 0o600  # made here
    for path in state.rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_leftovers_are_stopped_by_record_and_start_time_only(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    settings = load_settings(config, environ={})
    run = tmp_path / "state" / "run"
    leftover, stranger = sleeper(), sleeper()
    try:
        pidrecords.write(run, "sharing", leftover.pid)
        # A record whose pid now belongs to another process (other start time).
        record = pidrecords.write(run, "idle-culler", stranger.pid)
        (run / "idle-culler.pid").write_text(f"{stranger.pid} {record.started - 1}\n")
        ensure_no_leftovers(settings)
        assert leftover.wait(timeout=10) == -15  # SIGTERM
        assert stranger.poll() is None
        assert not list(run.glob("*.pid"))
        ensure_no_leftovers(settings)  # idempotent: nothing left to do
    finally:
        for p in (leftover, stranger):
            p.kill()
            p.wait()


def test_a_running_hub_is_not_replaced(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    settings = load_settings(config, environ={})
    hub = sleeper()
    try:
        pidrecords.write(tmp_path / "state" / "run", pidrecords.HUB, hub.pid)
        with pytest.raises(StepError, match=f"already running \\(pid {hub.pid}\\)"):
            ensure_no_leftovers(settings)
        assert hub.poll() is None
    finally:
        hub.kill()
        hub.wait()
    assert os.path.exists(tmp_path / "state" / "run" / "hub.pid")


def test_doctor_warns_of_a_shared_password_on_a_system_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("studiohub.doctor.system_mode", lambda: True)
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: shared-password\n")
    finding = check_login(load_settings(config, environ={}))
    assert finding.level == "WARN" and "log in as any non-admin user" in finding.text
    assert check_login(firstuse_settings(tmp_path)).level == "OK"


def test_a_fresh_admin_password_is_shown_once_then_where_it_is(tmp_path: Path) -> None:
    settings = firstuse_settings(tmp_path)
    fresh = ensure_admin_passwords(settings)
    assert fresh == (tmp_path / "state" / "admin-password").read_text().strip()
    assert f"Admins (Ada) log in with their name and the admin password: {fresh}" \
        in banner(settings, None, fresh)
    assert ensure_admin_passwords(settings) is None  # the next start: not shown again
    text = banner(settings, None, None)
    assert fresh not in text and f"sudo cat {tmp_path / 'state'}/admin-password" in text


def test_shared_password_admins_get_their_password_before_the_hub_starts(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n"
                      "auth:\n  type: shared-password\n  admin_users: [ada]\n")
    fresh = ensure_admin_passwords(load_settings(config, environ={}))
    assert fresh and (tmp_path / "state" / "admin-password").read_text().strip() == fresh


def fake_hub_command(tmp_path: Path) -> Path:
    target = tmp_path / "opt" / "hub" / "bin" / "studiohub"
    target.parent.mkdir(parents=True)
    target.write_text("#!/bin/sh\n")
    return target


def test_the_command_is_linked_where_a_shell_finds_it_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target, link = fake_hub_command(tmp_path), tmp_path / "usr" / "local" / "bin" / "studiohub"
    bin_dir = str(link.parent)
    ensure_command_link(target, link, path_env=f"/usr/bin:{bin_dir}")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert f"linked {link} → {target}" in capsys.readouterr().out
    before = link.lstat()
    ensure_command_link(target, link, path_env=f"/usr/bin:{bin_dir}")  # again: a no-op
    after = link.lstat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    out = capsys.readouterr().out
    assert f"command {link} → {target}" in out and f"linked {link}" not in out
    assert link_command(target, link) is False


def test_a_link_dir_off_the_path_is_said(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    target, link = fake_hub_command(tmp_path), tmp_path / "home" / ".local" / "bin" / "studiohub"
    ensure_command_link(target, link, path_env="/usr/bin:/bin")
    assert link.is_symlink()
    assert f"{link.parent} is not on your PATH" in capsys.readouterr().out


def test_someone_elses_command_is_never_replaced(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = fake_hub_command(tmp_path)
    link = tmp_path / "bin" / "studiohub"
    link.parent.mkdir()
    link.write_text("#!/bin/sh\necho another studiohub\n")
    with pytest.raises(LinkRefused, match="already exists and is not StudioHub's"):
        link_command(target, link)
    ensure_command_link(target, link, path_env="")  # up goes on, saying so
    assert "not StudioHub's" in capsys.readouterr().out
    assert link.read_text() == "#!/bin/sh\necho another studiohub\n" and not link.is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("x")
    link.unlink()
    link.symlink_to(elsewhere)
    with pytest.raises(LinkRefused, match=f"a link to {elsewhere}"):
        link_command(target, link)
    assert os.readlink(link) == str(elsewhere)


def test_a_dangling_link_of_a_removed_studiohub_is_replaced(tmp_path: Path) -> None:
    target, link = fake_hub_command(tmp_path), tmp_path / "bin" / "studiohub"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "old-prefix" / "hub" / "bin" / "studiohub")
    assert link_command(target, link) is True and os.readlink(link) == str(target)


def test_a_link_to_another_live_studiohub_prefix_moves_to_this_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The last `studiohub up` owns the command (a fresh-clone prefix left the link)."""
    target, link = fake_hub_command(tmp_path), tmp_path / "bin" / "studiohub"
    other = tmp_path / "other-prefix" / "hub" / "bin" / "studiohub"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    link.parent.mkdir()
    link.symlink_to(other)
    assert link_command(target, link) is True and os.readlink(link) == str(target)
    assert f"pointed to {other}, another StudioHub prefix's command" in capsys.readouterr().out
    assert other.exists()


def test_doctor_says_whether_a_shell_finds_this_command(tmp_path: Path) -> None:
    ours = Path(sys.prefix) / "bin" / "studiohub"
    linked, other, empty = (tmp_path / d for d in ("linked", "other", "empty"))
    for d in (linked, other, empty):
        d.mkdir()
    (linked / "studiohub").symlink_to(ours)
    (other / "studiohub").write_text("#!/bin/sh\n")
    (other / "studiohub").chmod(0o755)
    assert check_command(str(linked)).level == "OK"
    assert check_command(str(other)).text.startswith(f"studiohub on PATH is {other}")
    assert "not on PATH: studiohub up links it" in check_command(str(empty)).text


def test_up_writes_an_empty_operator_catalog_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """So the hub reads etc/catalog.yaml from its first start, and the first
    `studiohub reload` after editing it applies (a file made later needs a restart)."""
    from studiohub.catalog import load_catalog
    from studiohub.installer import ensure_operator_catalog
    from studiohub.paths import paths

    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path))
    monkeypatch.delenv("STUDIOHUB_CATALOG", raising=False)
    ensure_operator_catalog(paths())
    path = tmp_path / "etc" / "catalog.yaml"
    assert "studiohub reload" in path.read_text()
    assert load_catalog(path).images.keys() == load_catalog(None).images.keys()
    path.write_text("# mine\n")
    ensure_operator_catalog(paths())
    assert path.read_text() == "# mine\n"  # never overwritten


def test_doctor_says_whether_model_endpoints_have_their_balancer(tmp_path: Path) -> None:
    missing = check_balancer(str(tmp_path / "no-haproxy"))
    assert missing.level == "WARN" and "apt-get install haproxy" in missing.text
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\necho 'HAProxy version 9.9.9 2030/01/01'\n")
    fake.chmod(0o755)
    found = check_balancer(str(fake))
    assert (found.level, found.text) == ("OK", f"HAProxy 9.9.9 at {fake} (model endpoints)")
