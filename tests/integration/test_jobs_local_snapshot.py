"""A job's code snapshot, made as the user's own account (studiohub.jobs.snapshot)."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub.jobs.service import Account, JobsError, Viewer
from studiohub.jobs.snapshot import SnapshotError, prepare, probe, snapshot, source_of
from studiohub.jobs.spec import parse_spec
from tests.integration.test_jobs_local import new_account
from tests.jobfakes import make_jobs

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
    with pytest.raises(SnapshotError, match=r"^s\.py is not a file you can read in your "
                       r"home \(it is missing, or your account may not read it\)$"):
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


@pytest.fixture
def root_only(tmp_path: Path) -> Path:
    """A folder only root may enter, in a folder anyone may enter: an account can stat it
    (and so tell it from a missing one) but not list it."""
    tmp_path.chmod(0o755)
    secret = tmp_path / "secret"
    (secret / "pkg").mkdir(parents=True)
    (secret / "pkg" / "__init__.py").write_text("TOKEN = 'root only'")
    (secret / "train.py").write_text("print('root only')")
    secret.chmod(0o700)
    return secret


def submit_as(account: pwd.struct_passwd, tmp_path: Path, spec: dict[str, object]) -> str:
    """The jobs service's submit with the real snapshot as ``account``: its refusal."""
    jobs = make_jobs(tmp_path)[0]
    jobs.accounts = lambda user: Account(account.pw_name, account.pw_dir)
    jobs.prepare = prepare
    with pytest.raises(JobsError) as refused:
        asyncio.run(jobs.submit(Viewer("someone"), {"image": "base", "size": "small",
                                                     **spec}))
    assert not list(jobs.store.jobs(user="someone"))
    return f"{refused.value.status} {refused.value.message}"


def test_links_to_a_folder_the_user_cannot_read_are_refused_like_missing_ones(
        account: pwd.struct_passwd, root_only: Path, tmp_path: Path) -> None:
    """Every probe of the home (is the module a folder or a file? is the script's folder
    there?) runs as the user: a link into a root-only folder is refused with the same
    4xx as a link to nothing, nothing is made, and nothing of the folder is copied."""
    home = Path(account.pw_dir)
    (home / "pkg").symlink_to(root_only / "pkg")  # a module: ~/pkg
    (home / "proj").symlink_to(root_only)  # a script's folder: ~/proj
    (home / "gone").symlink_to(root_only.parent / "missing")
    (home / "gonepkg").symlink_to(root_only.parent / "missing")
    answers = {
        "pkg": submit_as(account, tmp_path / "1", {"module": "pkg.main"}),
        "gonepkg": submit_as(account, tmp_path / "2", {"module": "gonepkg.main"}),
        "proj": submit_as(account, tmp_path / "3", {"script": "proj/train.py"}),
        "gone": submit_as(account, tmp_path / "4", {"script": "gone/train.py"}),
    }
    assert answers["pkg"] == "400 could not snapshot the code: pkg (or pkg.py) is not a " \
        "folder or file you can read in your home (it is missing, or your account may not " \
        "read it)"
    assert answers["gonepkg"] == answers["pkg"].replace("pkg", "gonepkg")
    assert answers["proj"] == "400 could not snapshot the code: proj is not a folder you " \
        "can read in your home (it is missing, or your account may not read it)"
    assert answers["gone"] == answers["proj"].replace("proj", "gone")
    assert not (home / "studiohub-jobs").exists()


def test_an_unreadable_folder_inside_the_project_is_named_not_skipped(
        account: pwd.struct_passwd) -> None:
    """A folder of the project the user cannot list would be missing from the snapshot
    without a word: the job is refused, naming it. A link to a folder is kept as a link."""
    put(account, "proj/train.py")
    put(account, "proj/locked/data.bin")
    os.symlink("/usr/share", Path(account.pw_dir) / "proj" / "shared")
    locked = Path(account.pw_dir) / "proj" / "locked"
    os.chown(locked, 0, 0)
    locked.chmod(0o700)
    with pytest.raises(SnapshotError, match=r"^cannot read proj/locked in proj: Permission "
                       r"denied$"):
        run("7" * 12, {"script": "proj/train.py"}, account)
    assert not (Path(account.pw_dir) / "studiohub-jobs").exists()
    locked.chmod(0o755)
    job = run("8" * 12, {"script": "proj/train.py"}, account)
    assert tree(job / "code") == ["locked", "locked/data.bin", "shared", "train.py"]
    assert os.readlink(job / "code" / "shared") == "/usr/share"


def test_the_copy_reads_what_only_the_user_may_and_never_what_only_root_may(
        account: pwd.struct_passwd) -> None:
    """The copy server's child is the user (not root with the user's files' owner): a file
    only the user may read is copied, a file only root may read fails the snapshot, and
    the server lives on (a new snapshot is made by the same server)."""
    from studiohub.jobs.snapshot_copy import SERVER

    mine = put(account, "proj/mine.txt", "user only")
    mine.chmod(0o600)
    put(account, "proj/train.py")
    job = run("9" * 12, {"script": "proj/train.py"}, account)
    assert (job / "code" / "mine.txt").read_text() == "user only"
    assert (job / "code" / "mine.txt").stat().st_uid == account.pw_uid
    server = SERVER.pid
    assert server is not None and os.stat(f"/proc/{server}").st_uid == 0
    theirs = Path(account.pw_dir) / "proj" / "root.txt"
    theirs.write_text("root only")
    theirs.chmod(0o600)  # root's, in the user's folder
    with pytest.raises(SnapshotError, match=r"^could not copy proj/root\.txt: Permission "
                       r"denied$"):
        run("a1" * 6, {"script": "proj/train.py"}, account)
    assert not (Path(account.pw_dir) / "studiohub-jobs" / ("a1" * 6)).exists()
    assert SERVER.pid == server
    theirs.unlink()
    assert tree(run("a2" * 6, {"script": "proj/train.py"}, account) / "code") == \
        ["mine.txt", "train.py"]
    assert SERVER.pid == server


def test_a_dead_copy_server_is_started_again(account: pwd.struct_passwd) -> None:
    from studiohub.jobs.snapshot_copy import SERVER

    put(account, "t.py")
    run("b1" * 6, {"script": "t.py"}, account)
    old = SERVER.pid
    assert old is not None
    os.kill(old, 9)
    stat = Path(f"/proc/{old}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # dead, not yet reaped
        time.sleep(0.01)
    assert tree(run("b2" * 6, {"script": "t.py"}, account) / "code") == ["t.py"]
    assert SERVER.pid not in (None, old)


def test_git_runs_no_hook_of_the_users_config_or_the_repo(account: pwd.struct_passwd
                                                          ) -> None:
    """A ``templateDir``, ``core.hooksPath`` or ``core.fsmonitor`` in the user's git
    configuration, or a hook in the cloned repository, would run the user's program in
    the jobs service's cgroup: none runs, and the clone still works."""
    home = Path(account.pw_dir)
    marker = home / "ran"
    hook = f"#!/bin/sh\necho ran >> {marker}\n"
    for folder in ("tmpl/hooks", "myhooks", "repo/.git/hooks"):
        for name in ("post-checkout", "fsmonitor"):
            put(account, f"{folder}/{name}", hook)
            as_user(account, "chmod", "+x", str(home / folder / name))
    put(account, ".gitconfig", f"[init]\n\ttemplateDir = {home}/tmpl\n[core]\n\t"
                               f"hooksPath = {home}/myhooks\n\tfsmonitor = {home}/myhooks/"
                               "fsmonitor\n")
    repo = home / "repo"
    put(account, "repo/train.py", "v1")
    git = ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@x",
           "-c", "core.hooksPath=/dev/null"]
    as_user(account, "git", "init", "-q", "-b", "main", "--template=", str(repo))
    as_user(account, *git, "config", "core.hooksPath", str(repo / ".git/hooks"))
    as_user(account, *git, "add", "train.py")
    as_user(account, *git, "commit", "-qm", "one")
    first = as_user(account, *git, "rev-parse", "HEAD").strip()
    # The hooks do run for the user's own git: the test would notice them.
    as_user(account, "git", "clone", "-q", f"file://{repo}", str(home / "plain"))
    assert marker.exists()
    marker.unlink()
    for number, ref in (("5", "main"), ("6", first)):
        job = run(number * 12, {"script": "train.py",
                                "git": {"url": f"file://{repo}", "ref": ref}}, account)
        assert (job / "code" / "train.py").read_text() == "v1"
    assert not marker.exists()


def _gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return True
        time.sleep(0.05)
    return False


def test_a_child_is_killed_with_its_group_and_its_output_is_bounded(
        account: pwd.struct_passwd) -> None:
    """What git (or anything the snapshot starts) leaves behind is killed with it, on
    exit and on timeout; of 20 MB of output only the tail is kept, for the message."""
    from studiohub.jobs.snapshot import as_user as run_as_user

    home = Path(account.pw_dir)
    chatty = (f"sleep 300 & echo $! > {home}/left; head -c 20000000 /dev/zero | tr '\\0' x;"
              " echo; echo the end; exit 3")
    with pytest.raises(SnapshotError) as refused:
        asyncio.run(run_as_user(account.pw_name, ["/bin/sh", "-c", chatty], 60))
    assert str(refused.value).endswith("the end") and len(str(refused.value)) <= 600
    assert _gone(home / "left")
    slow = f"sleep 300 & echo $! > {home}/slow; sleep 300"
    started = time.monotonic()
    with pytest.raises(SnapshotError, match="took longer than 1 s"):
        asyncio.run(run_as_user(account.pw_name, ["/bin/sh", "-c", slow], 1))
    assert time.monotonic() - started < 10
    assert _gone(home / "slow")


def test_the_dry_runs_probe_refuses_what_the_submit_would_and_makes_nothing(
        account: pwd.struct_passwd) -> None:
    put(account, "proj/train.py", "print(1)")
    put(account, "secret/x.py", "print(1)")
    os.chmod(Path(account.pw_dir) / "secret", 0o700)
    os.chown(Path(account.pw_dir) / "secret", 0, 0)
    asyncio.run(probe({"script": "proj/train.py"}, account.pw_name))
    asyncio.run(probe({"command": ["true"]}, account.pw_name))
    for spec, words in (({"script": "absent.py"}, "absent.py is not a file"),
                        ({"script": "nodir/t.py"}, "nodir is not a folder"),
                        # The folder is there, the script is not: refused before the run.
                        ({"script": "proj/absent.py"}, "proj/absent.py is not a file"),
                        ({"notebook": "proj/absent.ipynb"}, "proj/absent.ipynb is not a"),
                        ({"script": "secret/x.py"}, "secret is not a folder"),
                        ({"module": "nopkg.m"}, "nopkg (or nopkg.py) is not a folder")):
        with pytest.raises(SnapshotError, match=words.replace("(", r"\(").replace(")", r"\)")):
            asyncio.run(probe(spec, account.pw_name))
    with pytest.raises(SnapshotError):
        asyncio.run(probe({"script": "proj/train.py"}, account.pw_name, max_files=0))
    with pytest.raises(SnapshotError, match=r"proj/absent\.py is not a file"):  # the submit too
        asyncio.run(snapshot("0123456789ab", {"script": "proj/absent.py"}, account.pw_name))
    assert not (Path(account.pw_dir) / "studiohub-jobs").exists()
