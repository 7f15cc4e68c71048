"""A job's folders and its code snapshot, made at submit, **as the user**.

``~/studiohub-jobs/<id>/`` (0700) with ``code/`` (the snapshot), ``outputs/``,
``checkpoints/`` and ``tensorboard/``, all made by a process running as the user's own
account (uid, gid and groups; the hub runs as root): a child of the copy server
(``snapshot_copy.py``, started once, so a submit does not start an interpreter), or ``git``
started as the user. So the snapshot holds only what the user could read, and a link the
user (or anyone) planted can at worst point the copy at files that account may read
anyway: root never follows a path in a user's home.

What is copied (documented in docs/training.md, "Running locally"):

- a notebook or script in a folder: that **folder** (helper modules and small data files
  beside it come along), without hidden files and folders (``.git``, ``.ipynb_checkpoints``,
  ``.venv``…) and without ``studiohub-jobs/``; links are copied as links. At most
  ``max_bytes`` (200 MiB) and ``max_files`` (5,000): a larger folder is refused, saying so,
  and nothing is left behind;
- a notebook or script directly in the home: that **file** only (the home is no project);
- a module ``pkg.mod``: the folder ``~/pkg`` (or the file ``~/pkg.py``);
- a command: nothing (``code/`` is empty; the command runs there with ``HOME`` set);
- a Git source: ``git clone --depth 1 --branch <ref>`` (a branch or tag), a full clone and
  ``checkout --detach`` for a commit, ``--depth 1`` of the default branch for ``HEAD``;
  any URL git reaches, ``file://`` included, as the user (with the user's own git
  configuration and credentials); the same size bounds after the clone.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterhub.spawner import set_user_setuid

from .snapshot_copy import SERVER, Refused
from .spec import JobSpec, parse_spec

JOBS_DIR = "studiohub-jobs"
MAX_BYTES = 200 * 1024 * 1024
MAX_FILES = 5000
GIT_TIMEOUT = 600.0
SUBDIRS = ("code", "outputs", "checkpoints", "tensorboard")

class SnapshotError(ValueError):
    """The code could not be snapshotted; the message says why, to the user, as is."""


@dataclass(frozen=True)
class JobFolders:
    home: Path  # ~/studiohub-jobs/<id>
    code: Path
    outputs: Path
    checkpoints: Path
    tensorboard: Path


def folders(home: str, job_id: str) -> JobFolders:
    root = Path(home) / JOBS_DIR / job_id
    return JobFolders(root, *(root / sub for sub in SUBDIRS))


def source_of(spec: JobSpec) -> tuple[str, str]:
    """(home-relative path, kind) of what a home snapshot copies: see the module's doc."""
    path = spec.notebook or spec.script
    if path:
        folder = posixpath.dirname(path)
        return (folder, "folder") if folder else (path, "file")
    if spec.module:
        top = spec.module.split(".")[0]
        return top, "package"
    return "", "none"


async def _as_user(unix_user: str, argv: list[str], timeout: float,
                   env: Mapping[str, str] | None = None) -> None:
    account = pwd.getpwnam(unix_user)
    if os.geteuid() != 0 and account.pw_uid != os.geteuid():
        raise SnapshotError(f"a personal hub cannot copy files as {unix_user}")
    # A personal hub already is the user: nothing to become.
    become = set_user_setuid(unix_user, chdir=False) if os.geteuid() == 0 else None
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=account.pw_dir, preexec_fn=become,
        env={"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
             "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **(env or {})})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SnapshotError(f"{Path(argv[0]).name} took longer than {timeout:.0f} s") \
            from None
    if proc.returncode:
        text = out.decode(errors="replace").strip().splitlines()
        raise SnapshotError(" ".join(text[-3:])[-600:] or
                            f"{Path(argv[0]).name} exited with {proc.returncode}")


async def _copy(unix_user: str, job: str, source: str, kind: str, max_bytes: int,
                max_files: int, timeout: float) -> None:
    """``snapshot_copy.copy`` as the user, by the copy server (see that module: why)."""
    if os.geteuid() != 0 and pwd.getpwnam(unix_user).pw_uid != os.geteuid():
        raise SnapshotError(f"a personal hub cannot copy files as {unix_user}")
    try:
        await SERVER.copy(unix_user, [job, source, kind, max_bytes, max_files], timeout)
    except Refused as e:
        raise SnapshotError(str(e)) from None


async def snapshot(job_id: str, spec: JobSpec | Mapping[str, Any], unix_user: str, *,
                   max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
                   git_timeout: float = GIT_TIMEOUT) -> JobFolders:
    """Make the job's folders and copy (or clone) its code, as ``unix_user``."""
    if not re.fullmatch(r"[0-9a-f]{12}", job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    if not isinstance(spec, JobSpec):
        spec = parse_spec(spec)
    home = pwd.getpwnam(unix_user).pw_dir
    dirs = folders(home, job_id)
    job = f"{JOBS_DIR}/{job_id}"
    if spec.git:
        await _copy(unix_user, job, "", "git", max_bytes, max_files, 60)
        await _clone(unix_user, spec.git.url, spec.git.ref, str(dirs.code), git_timeout)
        try:
            await _copy(unix_user, f"{job}/code", "", "measure", max_bytes, max_files, 60)
        except SnapshotError:
            await _as_user(unix_user, ["/bin/rm", "-rf", "--", job], 60)
            raise
        return dirs
    source, kind = source_of(spec)  # a package's folder-or-file is decided as the user
    await _copy(unix_user, job, source, kind, max_bytes, max_files, 600)
    return dirs


async def _clone(unix_user: str, url: str, ref: str, target: str, timeout: float) -> None:
    git = ["git", "-c", "advice.detachedHead=false"]
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if ref == "HEAD":
        await _as_user(unix_user, [*git, "clone", "--quiet", "--depth", "1", "--", url,
                                   target], timeout, env)
        return
    try:
        await _as_user(unix_user, [*git, "clone", "--quiet", "--depth", "1", "--branch", ref,
                                   "--", url, target], timeout, env)
        return
    except SnapshotError:
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", ref):
            raise
    # A commit: the whole history, then that commit.
    await _as_user(unix_user, ["/bin/rm", "-rf", "--", target], 60)
    await _as_user(unix_user, [*git, "clone", "--quiet", "--no-checkout", "--", url, target],
                   timeout, env)
    await _as_user(unix_user, [*git, "-C", target, "checkout", "--quiet", "--detach", ref,
                               "--"], timeout, env)


async def prepare(job_id: str, spec: JobSpec | Mapping[str, Any], account: Any) -> None:
    """The jobs service's ``prepare`` hook: ``account.unix_user``'s snapshot of ``spec``."""
    await snapshot(job_id, spec, account.unix_user)
