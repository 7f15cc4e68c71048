"""A job's code snapshot, made as the user's own account (studiohub.jobs.snapshot)."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub.jobs.snapshot import SnapshotError, snapshot, source_of
from studiohub.jobs.spec import parse_spec
from tests.integration.test_jobs_local import new_account

if os.geteuid() != 0:
    pytest.skip("snapshots are made as another account: run as root",
                allow_module_level=True)


@pytest.fixture
def account() -> Iterator[pwd.struct_passwd]:
    entry = new_account("jbs")
    yield entry
    subprocess.run(["userdel", "-r", entry.pw_name], capture_output=True, check=False)


def as_user(account: pwd.struct_passwd, *argv: str) -> str:
    return subprocess.run(list(argv), user=account.pw_uid, group=account.pw_gid,
                          cwd=account.pw_dir, capture_output=True, text=True, check=True,
                          env={"HOME": account.pw_dir, "PATH": "/usr/bin:/bin"}).stdout


def put(account: pwd.struct_passwd, relative: str, text: str = "x") -> Path:
    path = Path(account.pw_dir) / relative
    as_user(account, "mkdir", "-p", str(path.parent))
    as_user(account, "sh", "-c", f"printf %s '{text}' > {path}")
    return path


def run(job_id: str, spec: dict[str, object], account: pwd.struct_passwd, **kw: int
        ) -> Path:
    return asyncio.run(snapshot(job_id, spec, account.pw_name, **kw)).home


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_source_of() -> None:
    assert source_of(parse_spec({"notebook": "p/q/a.ipynb"})) == ("p/q", "folder")
    assert source_of(parse_spec({"script": "a.py"})) == ("a.py", "file")
    assert source_of(parse_spec({"module": "pkg.main"})) == ("pkg", "package")
    assert source_of(parse_spec({"command": "ls"})) == ("", "none")


def test_the_scripts_folder_is_copied_as_the_user(account: pwd.struct_passwd) -> None:
    put(account, "proj/train.py", "print(1)")
    put(account, "proj/lib/util.py")
    put(account, "proj/.ipynb_checkpoints/old.py")
    put(account, "proj/.secret")
    os.symlink("/etc/hostname", Path(account.pw_dir) / "proj" / "link")
    job = run("a" * 12, {"script": "proj/train.py"}, account)
    assert tree(job) == ["checkpoints", "code", "code/lib", "code/lib/util.py", "code/link",
                         "code/train.py", "outputs", "tensorboard"]
    assert (job / "code" / "link").is_symlink()  # copied as a link, never followed
    for path in [job.parent, job, *job.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_uid == account.pw_uid, path
    assert (job.stat().st_mode & 0o777, (job / "code").stat().st_mode & 0o777) == \
        (0o700, 0o700)
    # Editing the notebook afterwards does not change the snapshot.
    put(account, "proj/train.py", "print(2)")
    assert (job / "code" / "train.py").read_text() == "print(1)"


def test_a_file_in_the_home_alone_and_only_what_the_user_may_read(
        account: pwd.struct_passwd) -> None:
    put(account, "t.py", "print(1)")
    put(account, "other.txt")
    job = run("b" * 12, {"script": "t.py"}, account)
    assert tree(job / "code") == ["t.py"]
    # A link planted at the entry, to a file only root may read: the copy runs as the
    # user, so it fails instead of copying /etc/shadow into the user's home.
    os.symlink("/etc/shadow", Path(account.pw_dir) / "s.py")
    with pytest.raises(SnapshotError, match=r"could not copy s\.py: Permission denied"):
        run("c" * 12, {"script": "s.py"}, account)
    assert not (Path(account.pw_dir) / "studiohub-jobs" / ("c" * 12)).exists()


def test_a_folder_too_large_is_refused_and_nothing_is_left(account: pwd.struct_passwd
                                                           ) -> None:
    put(account, "big/train.py")
    for i in range(4):
        put(account, f"big/data/{i}.bin", "y" * 100)
    with pytest.raises(SnapshotError, match="big holds more than 3 files"):
        run("d" * 12, {"script": "big/train.py"}, account, max_files=3)
    with pytest.raises(SnapshotError, match=r"big holds more than 0\.000286102 MiB .* move "
                       r"the notebook or script into a folder"):
        run("d" * 12, {"script": "big/train.py"}, account, max_bytes=300)
    assert not (Path(account.pw_dir) / "studiohub-jobs" / ("d" * 12)).exists()
    assert tree(run("d" * 12, {"script": "big/train.py"}, account) / "code")[:2] == \
        ["data", "data/0.bin"]


def test_a_module_and_a_command(account: pwd.struct_passwd) -> None:
    put(account, "pkg/main.py")
    put(account, "pkg/__init__.py")
    assert tree(run("e" * 12, {"module": "pkg.main"}, account) / "code") == \
        ["__init__.py", "main.py"]
    assert tree(run("f" * 12, {"command": "true"}, account) / "code") == []


def test_git_branch_commit_and_head(account: pwd.struct_passwd) -> None:
    repo = Path(account.pw_dir) / "repo"
    put(account, "repo/train.py", "v1")
    git = ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@x"]
    as_user(account, "git", "init", "-q", "-b", "main", str(repo))
    as_user(account, *git, "add", ".")
    as_user(account, *git, "commit", "-qm", "one")
    first = as_user(account, *git, "rev-parse", "HEAD").strip()
    put(account, "repo/train.py", "v2")
    as_user(account, *git, "commit", "-qam", "two")
    url = f"file://{repo}"
    job = run("1" * 12, {"script": "train.py", "git": {"url": url, "ref": "main"}}, account)
    assert (job / "code" / "train.py").read_text() == "v2"
    job = run("2" * 12, {"script": "train.py", "git": {"url": url, "ref": first}}, account)
    assert (job / "code" / "train.py").read_text() == "v1"
    job = run("3" * 12, {"script": "train.py", "git": {"url": url}}, account)
    assert (job / "code" / "train.py").read_text() == "v2"
    assert (job / "code").stat().st_uid == account.pw_uid
    with pytest.raises(SnapshotError, match="nope"):
        run("4" * 12, {"script": "t.py", "git": {"url": url, "ref": "nope"}}, account)


def test_a_personal_hub_copies_as_itself(account: pwd.struct_passwd) -> None:
    """Not root: no account to become (and no other account's files to copy)."""
    put(account, "t.py", "print(1)")
    script = ("import asyncio, sys\nfrom studiohub.jobs.snapshot import snapshot\n"
              "d = asyncio.run(snapshot('5' * 12, {'script': 't.py'}, sys.argv[1]))\n"
              "print(sorted(p.name for p in d.home.iterdir()))\n"
              "try:\n asyncio.run(snapshot('6' * 12, {'script': 't.py'}, 'root'))\n"
              "except Exception as e:\n print(e)\n")
    out = as_user(account, sys.executable, "-c", script, account.pw_name)
    assert out.splitlines() == ["['checkpoints', 'code', 'outputs', 'tensorboard']",
                                "a personal hub cannot copy files as root"]
    assert (Path(account.pw_dir) / "studiohub-jobs" / ("5" * 12) / "code" / "t.py"
            ).read_text() == "print(1)"
