"""The local :class:`~studiohub.jobs.model.Executor`: a job's replicas as the user's
processes, in their cgroup leaves, in a network namespace of the attempt's own.

One attempt = one keeper process (:mod:`studiohub.jobs.keeper`, root, a session of its
own) that owns the namespace, starts the replicas, copies their output into the logs and
reaps them. The executor only writes the keeper's orders (``attempt-N.json``), starts it,
and reads back what it records (``attempt-N.pids``): so the service may restart at any
time, and a restarted service finds, polls and stops the attempts the old one started.

Starting a keeper (an interpreter, its imports, a network namespace and slirp4netns)
costs a few hundred milliseconds on a loaded host, so the executor keeps one *spare*
keeper ready (:meth:`LocalExecutor.warm`): a start hands it the orders' path, and another
spare is prepared a moment later, off the job's path. No start waits for a spare: without
one, the keeper is started for the orders as before.

Under ``<state>/jobs/<id>/`` (root-owned, 0700; files 0600):

- ``attempt-N.json``: the orders (argv, environment, account, cgroup leaves, log bounds);
- ``attempt-N.pids``: the keeper's and each replica's pid and start time (so a reused pid
  is never taken for ours), exit codes, OOM counters, resume lines;
- ``attempt-N.keeper.log``: the keeper's own errors;
- ``logs/attempt-N/<replica>.log`` (and ``.log.1``, the older part): each replica's
  stdout and stderr, at most ``max_log_bytes`` of it, the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import envs, users
from ..paths import paths
from ..units import format_memory
from . import keeper
from .model import AttemptPlan, ReplicaState
from .runner import make_base_env

#: Most bytes kept on disk of one replica's output per attempt: its newest output, in two
#: rotating parts (:mod:`.logfiles`); ``jobs.max_log_bytes`` in the settings.
MAX_LOG_BYTES = 100 * 1024 * 1024
#: Seconds after a start before the next spare keeper is prepared (off the start's path:
#: its interpreter would compete with the new replicas' for the CPUs).
REFILL_DELAY = 1.0
KEEPER = [sys.executable, "-I", "-m", "studiohub.jobs.keeper"]
_PIDS = re.compile(r"^attempt-(\d+)\.pids$")
_JOB_ID = re.compile(r"^[0-9a-f]{12}$")


class ExecutorError(RuntimeError):
    """An attempt that could not start; its message is said to the user as is."""


def job_dir(state_dir: Path, job_id: str, group: str = "jobs") -> Path:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return state_dir / group / job_id


def log_path(state_dir: Path, job_id: str, attempt: int, replica: str,
             group: str = "jobs") -> Path:
    """Where a replica's output is kept (what the service's logs endpoint serves)."""
    if not re.fullmatch(r"[a-z]+-\d+", replica):
        raise ValueError(f"not a replica name: {replica!r}")
    return job_dir(state_dir, job_id, group) / "logs" / f"attempt-{attempt}" / \
        f"{replica}.log"


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _alive(entry: dict[str, Any] | None) -> bool:
    """Whether the recorded process still runs (same pid *and* same start time)."""
    if not entry or not entry.get("pid"):
        return False
    return keeper.start_ticks(entry["pid"]) == entry.get("start")


def _memory_limit(procs: Sequence[str]) -> int | None:
    for procs_file in procs:
        directory = Path(procs_file).parent
        for name in ("memory.max", "memory.limit_in_bytes"):
            with contextlib.suppress(OSError, ValueError):
                return int((directory / name).read_text().strip())
    return None


class LocalExecutor:
    """Runs attempts on this host (see the module's docstring)."""

    def __init__(self, state_dir: str | Path, *,
                 env_python: Callable[[str], Path] = envs.env_python,
                 jupyter_data: str | None = None, outbound: bool = True,
                 private_network: bool = True, max_log_bytes: int = MAX_LOG_BYTES,
                 stop_grace: float = 5.0, start_timeout: float = 60.0,
                 group: str = "jobs") -> None:
        """``group``: the folder of ``state_dir`` its groups' files go to (``jobs``; the
        models service runs its endpoint replicas with ``endpoints``)."""
        self.state_dir = Path(state_dir)
        self.group = group
        self.env_python = env_python
        self.jupyter_data = str(paths().kernels.parent) if jupyter_data is None else \
            jupyter_data
        self.outbound, self.private_network = outbound, private_network
        self.max_log_bytes, self.stop_grace = max_log_bytes, stop_grace
        self.start_timeout = start_timeout
        self._spare: tuple[subprocess.Popen[bytes], tuple[bool, bool]] | None = None
        self._keep_spare = False  # set by warm(): the service keeps one ready
        self._children: list[subprocess.Popen[bytes]] = []

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a test hands an executor to another process): without processes."""
        return {**self.__dict__, "_spare": None, "_keep_spare": False, "_children": []}

    # --- keepers --------------------------------------------------------------------------

    def warm(self) -> None:
        """Have a spare keeper ready (its namespace made), unless one is; from now on,
        prepare the next one after each start (until :meth:`close`)."""
        self._keep_spare = True
        self._reap()
        network = (self.private_network, self.outbound)
        if self._spare is not None:
            proc, made_for = self._spare
            if proc.poll() is None and made_for == network:
                return
            self._discard_spare()
        proc = self._spawn([*KEEPER, "--spare", *("1" if x else "0" for x in network)],
                           stdin=subprocess.PIPE, output=subprocess.DEVNULL)
        self._spare = (proc, network)

    @property
    def spare_pid(self) -> int | None:
        """The ready spare keeper's pid (None: none ready)."""
        return self._spare[0].pid if self._spare and self._spare[0].poll() is None else None

    def close(self) -> None:
        """No spare any more (the one ready exits)."""
        self._keep_spare = False
        self._discard_spare()

    def _refill(self) -> None:
        if self._keep_spare:
            self.warm()

    def _take_spare(self) -> subprocess.Popen[bytes] | None:
        """The spare keeper, if one is ready for this executor's network settings."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        proc, made_for = spare
        if proc.poll() is None and made_for == (self.private_network, self.outbound):
            return proc
        self._spare = spare
        self._discard_spare()
        return None

    def _discard_spare(self) -> None:
        if self._spare is not None:
            proc = self._spare[0]
            self._spare = None
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()  # end of file: it exits (and its slirp4netns with it)

    def _spawn(self, argv: list[str], stdin: Any, output: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=output, stderr=output,
                                start_new_session=True, cwd="/", close_fds=True)
        self._children.append(proc)
        return proc

    def _reap(self) -> None:
        """Wait for the keepers this process started that have ended (no zombies)."""
        self._children = [p for p in self._children if p.poll() is None]

    async def _keeper_for(self, orders_path: Path, keeper_log: Path
                          ) -> subprocess.Popen[bytes]:
        """A keeper running ``orders_path``: the spare, or a new one."""
        proc = self._take_spare()
        if proc is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(f"{orders_path}\n".encode())
                proc.stdin.close()
                return proc
            except OSError:  # it ended meanwhile
                pass
        fd = os.open(keeper_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return self._spawn([*KEEPER, str(orders_path)], subprocess.DEVNULL, fd)
        finally:
            os.close(fd)

    # --- files --------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return job_dir(self.state_dir, job_id, self.group)

    def log_path(self, job_id: str, attempt: int, replica: str) -> Path:
        return log_path(self.state_dir, job_id, attempt, replica, self.group)

    def _status_path(self, plan: AttemptPlan) -> Path:
        return self.job_dir(plan.job_id) / f"attempt-{plan.attempt}.pids"

    def status(self, job_id: str, attempt: int) -> dict[str, Any] | None:
        """What the keeper recorded (None before it wrote anything)."""
        path = self.job_dir(job_id) / f"attempt-{attempt}.pids"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data

    def resumed(self, plan: AttemptPlan) -> list[tuple[str, str]]:
        """(replica, ``<path> step <n>``) of each ``STUDIOHUB_RESUMED_FROM`` line seen."""
        status = self.status(plan.job_id, plan.attempt) or {}
        return [(name, line) for name, r in status.get("replicas", {}).items()
                for line in r.get("resumed", [])]

    # --- orders -------------------------------------------------------------------------

    def make_orders(self, plan: AttemptPlan) -> dict[str, Any]:
        """The keeper's orders: every replica's argv, environment, account and leaf."""
        account = pwd.getpwnam(plan.unix_user)
        base = make_base_env(str(self.env_python(plan.image).parent),
                             jupyter_data=self.jupyter_data)
        home = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
                "SHELL": account.pw_shell or "/bin/bash"}
        # The account's private TMPDIR, as its server gets (never /tmp).
        with contextlib.suppress(OSError, RuntimeError):
            home["TMPDIR"] = users.ensure_tmp_dir(account)
        directory = self.job_dir(plan.job_id)
        return {
            "job_id": plan.job_id, "attempt": plan.attempt,
            "status": str(directory / f"attempt-{plan.attempt}.pids"),
            "log_dir": str(directory / "logs" / f"attempt-{plan.attempt}"),
            "max_log_bytes": self.max_log_bytes, "stop_grace": self.stop_grace,
            "outbound": self.outbound, "private_network": self.private_network,
            "replicas": [{"name": r.name, "user": account.pw_name, "argv": list(plan.command),
                          "cwd": plan.workdir, "procs": list(r.cgroup_procs),
                          "env": {**base, **home, **plan.env, **r.env, **_local_env(r.env)}}
                         for r in plan.replicas],
        }

    # --- the Executor protocol ----------------------------------------------------------

    async def start(self, plan: AttemptPlan) -> None:
        """Start the attempt's keeper; return once every replica started (or raise, with
        whatever started stopped)."""
        directory = _private_dir(self.job_dir(plan.job_id))
        _private_dir(directory / "logs")
        _private_dir(directory / "logs" / f"attempt-{plan.attempt}")
        orders = await asyncio.to_thread(self.make_orders, plan)
        orders_path = directory / f"attempt-{plan.attempt}.json"
        keeper.write_json(orders_path, orders)
        self._status_path(plan).unlink(missing_ok=True)
        keeper_log = directory / f"attempt-{plan.attempt}.keeper.log"
        proc = await self._keeper_for(orders_path, keeper_log)
        if self._keep_spare:
            asyncio.get_running_loop().call_later(REFILL_DELAY, self._refill)
        deadline = time.monotonic() + self.start_timeout
        while True:
            status = self.status(plan.job_id, plan.attempt)
            if status and (status.get("started") or status.get("error")):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        error = (status or {}).get("error") if status else None
        if not status or error or not status.get("started"):
            if proc.poll() is None and not error:
                # Still starting (a slow host): no later start. Its replicas die with it
                # (PDEATHSIG). A keeper that reported an error stops what it started.
                proc.kill()
                await asyncio.to_thread(proc.wait)
            await self.stop(plan)
            tail = ""
            with contextlib.suppress(OSError):  # a spare that ended before its orders
                tail = keeper_log.read_text(errors="replace")[-2000:].strip()
            raise ExecutorError(error or f"the job's processes did not start: {tail}")

    async def poll(self, plan: AttemptPlan) -> Sequence[ReplicaState]:
        self._reap()
        status = self.status(plan.job_id, plan.attempt) or {}
        keeper_alive = _alive(status.get("keeper"))
        recorded = status.get("replicas", {})
        return [self._replica_state(r.name, recorded.get(r.name), keeper_alive,
                                    list(r.cgroup_procs))
                for r in plan.replicas]

    def _replica_state(self, name: str, entry: dict[str, Any] | None, keeper_alive: bool,
                       procs: list[str]) -> ReplicaState:
        if entry and entry.get("exit_code") is not None:
            code = int(entry["exit_code"])
            # Any kill the leaf's counter saw, not only the replica's own SIGKILL: in a
            # notebook job the kernel (papermill's child) is the one killed, and papermill
            # then exits with a code of its own.
            oom = code != 0 and (entry.get("oom_after") or 0) > (entry.get("oom_before") or 0)
            if oom:
                limit = _memory_limit(procs)
                used = f" used more than {format_memory(limit)}" if limit else ""
                return ReplicaState(name, False, code, True, f"OOMKilled: {name}{used}")
            return ReplicaState(name, False, code, False, _exit_reason(name, code))
        if keeper_alive or _alive(entry):
            return ReplicaState(name, True)
        # The keeper is gone without recording an exit (killed with SIGKILL): its replicas
        # died with it (PDEATHSIG).
        return ReplicaState(name, False, -signal.SIGKILL, False,
                            f"killed ({name}): the job's keeper process ended")

    async def stop(self, plan: AttemptPlan) -> None:
        """SIGTERM to the keeper (it stops the replicas' groups, SIGKILL after the grace),
        then SIGKILL to whatever is left in the replicas' cgroup leaves."""
        status = self.status(plan.job_id, plan.attempt) or {}
        entry = status.get("keeper")
        if _alive(entry):
            assert entry is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry["pid"], signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace + 5
            while _alive(entry) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if _alive(entry):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(entry["pid"], signal.SIGKILL)
        for replica in status.get("replicas", {}).values():
            if _alive(replica):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(replica["pid"], signal.SIGKILL)
        await asyncio.to_thread(_kill_leaves, [p for r in plan.replicas
                                               for p in r.cgroup_procs])

    async def running(self) -> Sequence[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        jobs = self.state_dir / self.group
        for directory in sorted(jobs.iterdir()) if jobs.is_dir() else []:
            if not _JOB_ID.match(directory.name):
                continue
            for path in directory.iterdir():
                match = _PIDS.match(path.name)
                status = self.status(directory.name, int(match.group(1))) if match else None
                if match and status and not status.get("done") and \
                        _alive(status.get("keeper")):
                    found.append((directory.name, int(match.group(1))))
        return found


def _local_env(env: Mapping[str, str]) -> dict[str, str]:
    """What a framework needs besides its variables on one host: ps-lite (MXNet) binds
    the address of the first interface that is not loopback, and a namespace with
    loopback only has none (its processes then wait forever): every replica reaches the
    others on 127.0.0.1 here."""
    return {"DMLC_NODE_HOST": "127.0.0.1"} if "DMLC_ROLE" in env else {}


def _exit_reason(name: str, code: int) -> str:
    if code == 0:
        return ""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name} ({name})"
        except ValueError:
            return f"killed by signal {-code} ({name})"
    return f"exit code {code} ({name})"


def _kill_leaves(procs_files: list[str], timeout: float = 5.0) -> None:
    """SIGKILL every process still in the replicas' leaves (ones that left the replica's
    process group too), until they are empty."""
    deadline = time.monotonic() + timeout
    while True:
        pids = set()
        for path in procs_files:
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in Path(path).read_text().split()}
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
