"""An endpoint version's replicas on this host: placed by the hub, run by the jobs'
local executor, reached by the balancer through a socket only root can open.

- **Placement**: the hub's placement API (``/hub/api/studiohub/users/NAME/endpoints/
  HOLDER/placement``, :class:`studiohub.jobs.placing.HubPlacing`), the same owner as
  servers, kernels and jobs: capacity, the user's bounds, GPUs, a cgroup
  ``endpoint-<holder>`` with a leaf per replica under the size's limits.
- **Processes**: :class:`studiohub.jobs.local.LocalExecutor` (group ``endpoints``): one
  root keeper per replica incarnation that outlives this service and the hub, the
  replica as the owner's account in its leaf and in a network namespace of its own with
  no network at all (it is reached over a unix socket), its output in root's log files.
- **Sockets**: a replica binds ``<its account's socket dir>/ep-<holder>-<replica>.sock``
  (the account's, 0700); this service then *renames* that socket into
  ``<root-only dir>/<holder>-<replica>.sock`` and checks, after the rename, that what it
  moved is a socket of that account. The balancer (root) only ever connects there: the
  user cannot later swap the path for a link to someone else's socket, as they could in
  their own folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import users
from ..jobs.local import LocalExecutor
from ..jobs.model import AttemptPlan, ReplicaPlan, ReplicaState
from ..jobs.placing import Placing

READY_PATH = b"/v2/health/ready"


class ReplicaRunner:
    """Places, starts, polls and stops replicas (see the module's docstring)."""

    def __init__(self, executor: LocalExecutor, placing: Placing, socket_root: str | Path,
                 env_python: Callable[[str], Path], unix_user: Callable[[str], str]) -> None:
        self.executor, self.placing = executor, placing
        self.socket_root = Path(socket_root)
        self.env_python, self.unix_user = env_python, unix_user
        if os.geteuid() == 0:
            # /run/studiohub itself is 0755 (every account reaches its own folder in it);
            # made here first, or the service's umask (077) would make it root-only.
            users.ensure_sockets_root()
        self.socket_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.socket_root, 0o700)

    # --- placement ---------------------------------------------------------------------

    async def place(self, user: str, v: dict[str, Any], names: list[str]
                    ) -> dict[str, dict[str, Any]]:
        placed = await self.placing.place(user, v["holder"], v["image"], v["size"], names)
        return {n: {"gpus": list(p.gpus), "procs": list(p.procs), "env": dict(p.env)}
                for n, p in placed.items()}

    async def check(self, user: str, image: str, size: str, count: int) -> None:
        """The hub's dry run of a placement (raises its refusal)."""
        names = [f"replica-{i}" for i in range(count)]
        await self.placing.check(user, "0" * 12, image, size, names)

    async def release(self, user: str, holder: str) -> None:
        await self.placing.release(user, holder)

    # --- sockets -------------------------------------------------------------------------

    def bind_path(self, user: str, holder: str, replica: str) -> str:
        """Where the replica binds (its account's private socket folder)."""
        entry = pwd.getpwnam(self.unix_user(user))
        if os.geteuid() == 0:
            folder = users.ensure_socket_dir(entry)
        else:  # a personal hub: every process is the user's own
            folder = str(self.socket_root / "bind")
            os.makedirs(folder, mode=0o700, exist_ok=True)
        return os.path.join(folder, f"ep-{holder}-{replica}.sock")

    def socket_path(self, holder: str, replica: str) -> str:
        """Where the balancer connects (root's folder)."""
        return str(self.socket_root / f"{holder}-{replica}.sock")

    def claim_socket(self, user: str, holder: str, replica: str) -> bool:
        """Move a replica's freshly bound socket into root's folder; False if there is
        none yet (or what is there is no socket of the owner's account: left alone).
        Checked before the rename and again after it (the user's folder may change in
        between); something else found in root's folder after the rename goes back."""
        source = self.bind_path(user, holder, replica)
        target = self.socket_path(holder, replica)
        uid = pwd.getpwnam(self.unix_user(user)).pw_uid

        def owners_socket(path: str) -> bool:
            try:
                st = os.lstat(path)
            except OSError:
                return False
            return stat.S_ISSOCK(st.st_mode) and st.st_uid == uid

        if not owners_socket(source):
            return False
        try:
            os.rename(source, target)
        except OSError:
            return False
        if owners_socket(target):
            return True
        with contextlib.suppress(OSError):
            os.rename(target, source)
        with contextlib.suppress(OSError):
            os.unlink(target)
        return False

    async def ready(self, holder: str, replica: str, timeout: float = 2.0) -> bool:
        """Whether the replica answers 200 on its readiness route."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path(holder, replica)), timeout)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"GET " + READY_PATH + b" HTTP/1.0\r\nHost: replica\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), timeout)
            return line.split()[1:2] == [b"200"]
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # --- processes ---------------------------------------------------------------------

    def plan(self, endpoint: dict[str, Any], v: dict[str, Any], replica: str,
             attempt: int) -> AttemptPlan:
        if v.get("user", endpoint["user"]) != endpoint["user"]:
            raise ValueError(f"version {v['version']} of {endpoint['name']} was deployed by "
                             "another user: not started")
        placed = v["placement"][replica]
        python = str(self.env_python(v["image"]))
        # -I: nothing of the working folder, the environment or the user's site-packages
        # on sys.path (the model folder is the user's); -u: unbuffered (-I ignores
        # PYTHONUNBUFFERED), so the log is live.
        command = [python, "-I", "-u", "-m", "studiohub.modelserver", "--model", v["model_dir"],
                   "--format", v["format"], "--name", endpoint["name"],
                   "--version", str(v["version"]),
                   "--socket", self.bind_path(endpoint["user"], v["holder"], replica)]
        env = {**placed["env"], "STUDIOHUB_ENDPOINT": endpoint["name"],
               "STUDIOHUB_ENDPOINT_VERSION": str(v["version"])}
        return AttemptPlan(
            job_id=v["holder"], attempt=attempt, user=endpoint["user"],
            unix_user=self.unix_user(endpoint["user"]), command=command,
            workdir=str(Path(v["model_dir"]).parent), job_dir=str(
                self.executor.job_dir(v["holder"])),
            replicas=[ReplicaPlan(replica, 0, env, tuple(placed["gpus"]),
                                  tuple(placed["procs"]))],
            image=v["image"], size=v["size"])

    async def start(self, endpoint: dict[str, Any], v: dict[str, Any], replica: str,
                    attempt: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path(v["holder"], replica))
        await self.executor.start(self.plan(endpoint, v, replica, attempt))

    async def poll(self, endpoint: dict[str, Any], v: dict[str, Any], replica: str,
                   attempt: int) -> ReplicaState:
        states = await self.executor.poll(self.plan(endpoint, v, replica, attempt))
        return states[0]

    async def stop(self, endpoint: dict[str, Any], v: dict[str, Any], replica: str,
                   attempt: int) -> None:
        await self.executor.stop(self.plan(endpoint, v, replica, attempt))
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path(v["holder"], replica))

    def forget(self, holder: str) -> None:
        """A stopped version's folder (its replicas' output and attempt records)."""
        shutil.rmtree(self.executor.job_dir(holder), ignore_errors=True)

    def log_path(self, holder: str, replica: str, attempt: int) -> Path:
        return self.executor.log_path(holder, attempt, replica)

    def log_tail(self, holder: str, replica: str, attempt: int, size: int = 1500) -> str:
        """The end of a replica's output (why it did not start)."""
        try:
            with open(self.log_path(holder, replica, attempt), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode(errors="replace")
        except OSError:
            return ""
