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
  any URL git reaches without help (``file://``, public ``https://``), as the user but
  **without** the user's or the system's git configuration, hooks or templates (they would
  run the user's programs in this service's cgroup: see :data:`GIT`), in its own process
  group killed when it ends; the same size bounds after the clone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import pwd
import re
import signal
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
#: Most output of a child kept (its tail, for the error message); the rest is dropped.
MAX_OUTPUT = 64 * 1024
DRAIN_AFTER_EXIT = 2.0
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


async def as_user(unix_user: str, argv: list[str], timeout: float,
                  env: Mapping[str, str] | None = None) -> bytes:
    """Run ``argv`` as ``unix_user``, in its own process group, bounded in time and output.

    The whole group is killed when it ends or times out (nothing it started in that group
    outlives it), and only the last :data:`MAX_OUTPUT` bytes of its output are kept, for
    the error message: the rest is read and dropped, so a chatty child cannot fill the
    service's memory. Returns that tail (the models service reads its copy's answer)."""
    account = pwd.getpwnam(unix_user)
    if os.geteuid() != 0 and account.pw_uid != os.geteuid():
        raise SnapshotError(f"a personal hub cannot copy files as {unix_user}")
    # A personal hub already is the user: nothing to become.
    become = set_user_setuid(unix_user, chdir=False) if os.geteuid() == 0 else None
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=account.pw_dir, preexec_fn=become,
        start_new_session=True,
        env={"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
             "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **(env or {})})
    try:
        out = await asyncio.wait_for(_tail_and_wait(proc), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await _exited(proc)
        raise SnapshotError(f"{Path(argv[0]).name} took longer than {timeout:.0f} s") \
            from None
    finally:
        _kill_group(proc.pid)
    if proc.returncode:
        text = out.decode(errors="replace").strip().splitlines()
        raise SnapshotError(" ".join(text[-3:])[-600:] or
                            f"{Path(argv[0]).name} exited with {proc.returncode}")
    return out


async def _tail_and_wait(proc: asyncio.subprocess.Process) -> bytes:
    """The last :data:`MAX_OUTPUT` bytes of ``proc``'s output, once it ended.

    When it ended, its group is killed; whatever still holds the pipe open after that
    (it left the group) gets :data:`DRAIN_AFTER_EXIT` seconds, then is no longer read.
    (``proc.wait()`` would wait for the pipe too, so the exit is watched by its code.)"""
    tail = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.extend(chunk)
            del tail[:-MAX_OUTPUT]

    reader = asyncio.ensure_future(drain())
    try:
        while proc.returncode is None and not reader.done():
            await asyncio.wait({reader}, timeout=0.05)
        await _exited(proc)
        _kill_group(proc.pid)
        await asyncio.wait({reader}, timeout=DRAIN_AFTER_EXIT)
    finally:
        reader.cancel()
    return bytes(tail)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Until ``proc`` itself exited (its pipe may still be open: see above)."""
    while proc.returncode is None:
        await asyncio.sleep(0.05)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _copy(unix_user: str, job: str, source: str, kind: str, max_bytes: int,
                max_files: int, timeout: float, entry: str = "") -> None:
    """``snapshot_copy.copy`` as the user, by the copy server (see that module: why)."""
    if os.geteuid() != 0 and pwd.getpwnam(unix_user).pw_uid != os.geteuid():
        raise SnapshotError(f"a personal hub cannot copy files as {unix_user}")
    try:
        await SERVER.copy(unix_user, [job, source, kind, max_bytes, max_files, entry],
                          timeout)
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
            await as_user(unix_user, ["/bin/rm", "-rf", "--", job], 60)
            raise
        return dirs
    source, kind = source_of(spec)  # a package's folder-or-file is decided as the user
    await _copy(unix_user, job, source, kind, max_bytes, max_files, 600, _entry(spec))
    return dirs


#: Git without the user's (or the system's) configuration, hooks or templates: a hook,
#: an ``fsmonitor`` or a ``templateDir`` would run the user's own program in the jobs
#: service's cgroup, outside the user's limits. Only built-in transports; no prompts.
GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
       "-c", "protocol.ext.allow=never", "-c", "advice.detachedHead=false"]
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false"}
CLONE = ["clone", "--quiet", "--template="]


async def _clone(unix_user: str, url: str, ref: str, target: str, timeout: float) -> None:
    git, env = GIT, GIT_ENV
    if ref == "HEAD":
        await as_user(unix_user, [*git, *CLONE, "--depth", "1", "--", url, target],
                       timeout, env)
        return
    try:
        await as_user(unix_user, [*git, *CLONE, "--depth", "1", "--branch", ref,
                                   "--", url, target], timeout, env)
        return
    except SnapshotError:
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", ref):
            raise
    # A commit: the whole history, then that commit.
    await as_user(unix_user, ["/bin/rm", "-rf", "--", target], 60)
    await as_user(unix_user, [*git, *CLONE, "--no-checkout", "--", url, target],
                   timeout, env)
    await as_user(unix_user, [*git, "-C", target, "checkout", "--quiet", "--detach", ref,
                               "--"], timeout, env)


async def probe(spec: JobSpec | Mapping[str, Any], unix_user: str, *,
                max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> None:
    """The dry run's look, as the user, at what a submit would copy: a missing or
    unreadable notebook, script or package, or a folder over the bounds, is the
    :class:`SnapshotError` the submit would raise; nothing is made. (A Git source is
    only reached at submit.)"""
    if not isinstance(spec, JobSpec):
        spec = parse_spec(spec)
    source, kind = source_of(spec)
    if spec.git or kind == "none":
        return
    await _copy(unix_user, "", source, kind, max_bytes, max_files, 60, _entry(spec))


def _entry(spec: JobSpec) -> str:
    """The notebook or script a folder's snapshot is for: it must be readable there too."""
    return spec.notebook or spec.script or ""


async def check_code(spec: JobSpec | Mapping[str, Any], account: Any) -> None:
    """The jobs API's dry-run hook: :func:`probe` as ``account.unix_user``."""
    await probe(spec, account.unix_user)


async def prepare(job_id: str, spec: JobSpec | Mapping[str, Any], account: Any) -> None:
    """The jobs service's ``prepare`` hook: ``account.unix_user``'s snapshot of ``spec``."""
    await snapshot(job_id, spec, account.unix_user)
