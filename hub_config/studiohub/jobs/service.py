"""The jobs service's decisions: submit, the queue, attempts, retries, timeouts, cancel.

A job moves queued → starting → running → succeeded | failed | cancelled:

- :meth:`Jobs.submit` checks the spec (:func:`.spec.parse_spec`), the catalog for the
  user's domains, the job's replicas, asks the hub whether it could ever be placed (a
  dry run), and stores it *queued* (``?check=true``: only says whether it would start).
- :meth:`Jobs.tick` (every ``poll_interval``, and at once after a submit or a cancel)
  polls running attempts, enforces timeouts, and starts queued jobs in order when their
  domain's quota (:mod:`.quotas`) and the hub's room allow: placed through the hub
  (:mod:`.placing`), the attempt's plan built (:mod:`.replicas`), started by the executor.
- When a replica fails, every replica of the attempt is stopped; the job is retried as a
  whole group (attempt N+1 on the same placement, the same checkpoint dir) while retries
  are left, unless the exit code says the user's code is wrong (1, 2). Placements are
  released when the job ends.
- :meth:`Jobs.reconcile` (on start) compares the store with what the executor still runs:
  a running attempt is adopted (never started twice); one that is gone is retried, or
  failed with the reason.

Executors carry plans out and decide nothing; the store decides nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import secrets
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..catalog import Catalog, ChoiceError, Image, Size
from ..units import format_memory
from . import replicas as replicas_mod
from . import runner
from .keeper import MAX_RESUMES
from .model import AttemptPlan, Executor, ReplicaPlan, ReplicaState, Status
from .placing import HubUnreachable, PlacementRefused, Placing, ReplicaPlacement
from .quotas import Demand, limits_from, quota_reason, startable
from .spec import JobSpec, SpecError, parse_spec, resolve_in_home

log = logging.getLogger("studiohub.jobs")

#: Exit codes of the user's own code that a retry would not fix (an exception, a usage error).
NO_RETRY_CODES = (1, 2)
#: First port of the replicas' addresses inside the job's own network namespace.
BASE_PORT = 29500
JOBS_DIR = "studiohub-jobs"
GONE = "the jobs service restarted and the attempt was gone"
#: Read every event of a job (once per attempt after a restart: see ``_record_resumes``).
ALL_EVENTS = 10**9


#: The replica whose success is the job's (TensorFlow with parameter servers).
CHIEF = "chief-0"

class JobsError(Exception):
    """A refusal for the user: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Viewer:
    """Who asks: a hub user, their groups (domains) and whether they are an admin."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False


@dataclass(frozen=True)
class Account:
    """The unix account a user's replicas run as, and its home."""

    unix_user: str
    home: str
    python_of: Callable[[str], str] = lambda image: "python3"


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_duration(seconds: int) -> str:
    """``1h``, ``90m``, ``45s``, ``2d``: how a timeout is said in a reason."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def job_dirs(job_id: str) -> dict[str, str]:
    """A job's folders relative to the user's home, as the file browser shows them."""
    home = f"{JOBS_DIR}/{job_id}"
    return {"home": home, "code": f"{home}/code", "outputs": f"{home}/outputs",
            "checkpoints": f"{home}/checkpoints", "tensorboard": f"{home}/tensorboard"}


def domain_for(catalog: Catalog, groups: Sequence[str], image: Image, size: Size) -> str:
    """The domain a job counts against: the first of the user's that allows both."""
    for domain in catalog.domains_for(groups):
        if _matches(image.id, domain.images) and _matches(size.id, domain.sizes):
            return domain.id
    return ""


def _matches(item: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(item, p) for p in patterns)


def plan_to_dict(plan: AttemptPlan) -> dict[str, Any]:
    data = asdict(plan)
    data["replicas"] = [asdict(r) for r in plan.replicas]
    return data


def plan_from_dict(data: Mapping[str, Any]) -> AttemptPlan:
    replicas = [ReplicaPlan(r["name"], r["rank"], dict(r["env"]), tuple(r.get("gpus", ())),
                            tuple(r.get("cgroup_procs", ()))) for r in data["replicas"]]
    values = {k: v for k, v in data.items() if k != "replicas"}
    values["command"] = list(values["command"])
    return AttemptPlan(**values, replicas=replicas)


def demand_of(job: Any) -> Demand:
    return Demand(job.user, job.domain, job.cpus, job.memory, job.gpus)


Prepare = Callable[[str, JobSpec, Account], Awaitable[None]]
#: Removes a deleted job's files outside the service: (the job, account, outputs too).
Discard = Callable[[Any, Account, bool], Awaitable[None]]


class Jobs:
    """The state machine over a store, an executor and the hub's placements."""

    def __init__(self, store: Any, executor: Executor, placing: Placing,
                 catalog: Callable[[], Catalog], *, state_dir: Path,
                 accounts: Callable[[str], Account], prepare: Prepare | None = None,
                 poll_interval: float = 1.0,
                 clock: Callable[[], datetime] = utcnow,
                 discard: Discard | None = None, max_jobs_per_user: int = 1000) -> None:
        self.store, self.executor, self.placing = store, executor, placing
        self.catalog, self.state_dir, self.accounts = catalog, state_dir, accounts
        self.prepare, self.poll_interval, self.clock = prepare, poll_interval, clock
        self.discard, self.max_jobs_per_user = discard, max_jobs_per_user
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Jobs whose files are being removed (see :meth:`delete`).
        self._deleting: set[str] = set()
        #: Resume lines already recorded: (job, attempt) → replica → how many.
        self._resumes_seen: dict[tuple[str, int], dict[str, int]] = {}

    # --- submit ---------------------------------------------------------------------------

    async def submit(self, viewer: Viewer, data: Any, check: bool = False) -> Any:
        """A new queued job (or, with ``check``, None when it would be accepted now)."""
        try:
            spec = parse_spec(data)
        except SpecError as e:
            raise JobsError(400, str(e)) from None
        catalog = self.catalog()
        try:
            choice = catalog.choose(viewer.groups, {"image": spec.image, "size": spec.size})
        except ChoiceError as e:
            raise JobsError(400, str(e)) from None
        kind = replicas_mod.framework_kind(choice.image.framework)
        try:
            replicas = replicas_mod.make_replicas(kind, spec.workers, spec.parameter_servers)
        except ValueError as e:
            raise JobsError(400, f"parameter_servers: {e}") from None
        if self.store.count(viewer.name) >= self.max_jobs_per_user:
            raise JobsError(409, f"you already have {self.max_jobs_per_user} jobs, the most "
                                 "kept per user: delete finished ones you no longer need "
                                 "(studiohub jobs delete ID, or Delete in the Training panel)")
        account = self.accounts(viewer.name)
        for key in ("notebook", "script"):
            path = getattr(spec, key)
            if path:
                try:
                    resolve_in_home(account.home, path)
                except SpecError as e:
                    raise JobsError(400, f"{key}: {e}") from None
        job_id = secrets.token_hex(6)
        names = [r.name for r in replicas]
        # The code snapshot (a process as the user) runs while the hub answers its dry
        # run: each takes a few hundred milliseconds on a busy host. Refused: undone.
        copying = None if check or self.prepare is None else \
            asyncio.ensure_future(self.prepare(job_id, spec, account))
        try:
            await self.placing.check(viewer.name, job_id, choice.image.id, choice.size.id, names)
        except PlacementRefused as e:
            if check or e.status != 409:  # 409: no room now; a job waits for room
                await self._undo_snapshot(copying, job_id, account)
                raise JobsError(e.status, e.message) from None
        except BaseException as e:
            await self._undo_snapshot(copying, job_id, account)
            if isinstance(e, HubUnreachable):
                raise JobsError(503, "the hub is not reachable: try again in a minute") \
                    from None
            raise
        domain = domain_for(catalog, viewer.groups, choice.image, choice.size)
        count = len(replicas)
        job_values: dict[str, Any] = dict(
            id=job_id, user=viewer.name, status=Status.QUEUED.value,
            spec={**spec.as_dict(), "image": choice.image.id, "size": choice.size.id},
            image=choice.image.id, size=choice.size.id, replicas=count,
            cpus=choice.size.cpus * count, memory=choice.size.memory * count,
            gpus=choice.size.gpus * count, name=spec.name or _default_name(spec),
            domain=domain, max_retries=spec.max_retries, timeout=spec.timeout,
            created=self.clock())
        if check:
            demand = Demand(viewer.name, domain, job_values["cpus"], job_values["memory"],
                            job_values["gpus"])
            running = [demand_of(j) for j in self.store.active()]
            why = quota_reason(*limits_from(catalog.domains)(domain), demand, running)
            if why:
                raise JobsError(409, why)
            return None
        if copying is not None:  # the code snapshot, before anything is stored
            try:
                await copying
            except (ValueError, OSError) as e:
                raise JobsError(400, f"could not snapshot the code: {e}") from None
        from .store import Job

        self.store.add(Job(**job_values))
        self.store.add_event(job_id, "queued", f"queued in domain {domain or '-'}")
        self.wake()
        return self.store.get(job_id)

    async def _undo_snapshot(self, copying: asyncio.Future[None] | None, job_id: str,
                             account: Account) -> None:
        """A refused submit leaves nothing: its snapshot, once made, is removed."""
        if copying is None:
            return
        try:
            await copying
        except Exception:
            return  # nothing was left behind (the snapshot cleans up after itself)
        if self.discard is not None:
            try:
                await self.discard(SimpleNamespace(id=job_id), account, True)
            except (ValueError, OSError) as e:
                log.warning("Removing the snapshot of refused job %s: %s", job_id, e)

    # --- reading --------------------------------------------------------------------------

    def get(self, viewer: Viewer, job_id: str) -> Any:
        """The viewer's job (admins: anyone's); another user's is a 404, as a missing one."""
        job = self.store.get(job_id) if isinstance(job_id, str) and len(job_id) < 64 else None
        if job is None or (job.user != viewer.name and not viewer.admin):
            raise JobsError(404, f"no job {job_id[:64]!r}")
        return job

    def jobs_of(self, viewer: Viewer, user: str | None = None) -> list[Any]:
        if user is not None and user != viewer.name and not viewer.admin:
            raise JobsError(403, "only admins may list another user's jobs")
        return list(self.store.jobs(user=user or viewer.name))

    def replicas(self, job: Any) -> list[dict[str, Any]]:
        """The current attempt's replicas as last seen: ``{name, running, exit_code}``."""
        attempt = self.store.attempt(job.id, job.attempt) if job.attempt else None
        if attempt is None:
            return []
        seen = {r["name"]: r for r in attempt.replicas}
        return [{"name": r["name"], "running": bool(seen.get(r["name"], {}).get("running")),
                 "exit_code": seen.get(r["name"], {}).get("exit_code")}
                for r in attempt.plan.get("replicas", [])]

    def log_path(self, job: Any, attempt: int, replica: str) -> Path:
        return self.state_dir / "jobs" / job.id / "logs" / f"attempt-{attempt}" / \
            f"{replica}.log"

    # --- cancel, rerun ------------------------------------------------------------------------

    async def cancel(self, viewer: Viewer, job_id: str) -> Any:
        job = self.get(viewer, job_id)
        if job.final:
            raise JobsError(409, f"job {job.id} already {job.status}")
        async with self._lock:
            job = self.store.get(job.id)
            if job.final:
                return job
            await self._stop_attempt(job)
            return self._end(job, Status.CANCELLED, f"cancelled by {viewer.name}")

    async def rerun(self, viewer: Viewer, job_id: str) -> Any:
        job = self.get(viewer, job_id)
        if job.user != viewer.name:  # an admin: the owner's code would run as the admin
            raise JobsError(403, f"only {job.user} can run job {job.id} again: it would run "
                                 "their code as you")
        self._refuse_if_deleting(job.id)
        spec = {k: v for k, v in job.spec.items() if v not in (None, [], {}, "")}
        return await self.submit(viewer, spec)

    async def delete(self, viewer: Viewer, job_id: str, outputs: bool = False) -> None:
        """Forget the owner's finished job: its rows, its logs (``<state>/jobs/<id>``) and
        its code snapshot; with ``outputs``, its whole folder in the home too. A job not
        over yet is refused (cancel first); if the files cannot go, nothing is forgotten.

        The files are removed *without* the service's lock: ``discard`` is a process the
        user controls (it can be stopped, or walk a huge tree), and the lock is what the
        scheduler and every cancel wait for. Meanwhile the job is marked as being deleted:
        it still lists, and a second delete or a rerun of it is refused (409)."""
        job = self.get(viewer, job_id)
        if job.user != viewer.name:
            raise JobsError(403, f"only {job.user} can delete job {job.id}")
        async with self._lock:
            job = self.store.get(job.id)
            if job is None:
                raise JobsError(404, f"no job {job_id[:64]!r}")
            self._refuse_if_deleting(job.id)
            if not job.final:
                raise JobsError(409, f"job {job.id} is {job.status}: cancel it first, then "
                                     "delete it")
            self._deleting.add(job.id)
        try:
            await self._remove_files(job, outputs)
            async with self._lock:
                self.store.delete(job.id)
        finally:
            self._deleting.discard(job.id)

    async def _remove_files(self, job: Any, outputs: bool) -> None:
        """The job's files in the home (as the user) and its logs; 503 when they stay."""
        folder = self.state_dir / "jobs" / job.id
        try:
            if self.discard is not None:
                await self.discard(job, self.accounts(job.user), outputs)
            if folder.exists():
                await asyncio.to_thread(shutil.rmtree, folder)
        except (ValueError, OSError) as e:
            raise JobsError(503, f"could not remove the files of job {job.id} ({e}): "
                                 "it is kept; try again") from None

    def _refuse_if_deleting(self, job_id: str) -> None:
        if job_id in self._deleting:
            raise JobsError(409, f"job {job_id} is being deleted")

    # --- the loop -------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        """Run :meth:`tick` forever in this event loop (after :meth:`reconcile`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        try:
            await self.reconcile()
        except Exception:
            log.exception("Reconciling the job store with the executor failed")
        warm = getattr(self.executor, "warm", None)  # a spare keeper, ready for a start
        if callable(warm):
            warm()
        while True:
            self._wake.clear()  # before the tick: a submit during it wakes the next one
            try:
                await self.tick()
            except Exception:  # the loop must go on
                log.exception("Jobs tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def tick(self) -> None:
        """Poll running attempts, enforce timeouts, start what the queue allows."""
        async with self._lock:
            active = self.store.active()
            for job in active:
                await self._watch(job)
            watched = {(j.id, j.attempt) for j in active}
            for key in [k for k in self._resumes_seen if k not in watched]:
                del self._resumes_seen[key]
            await self._start_queued()

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Adopt attempts that still run; retry or fail those that are gone."""
        async with self._lock:
            running = {(j, a) for j, a in await self.executor.running()}
            for job in self.store.active():
                if (job.id, job.attempt) in running:
                    log.info("Adopted job %s attempt %s", job.id, job.attempt)
                    self.store.add_event(job.id, "adopted", f"attempt {job.attempt} still "
                                         "runs: adopted after the jobs service restarted")
                    if job.status != Status.RUNNING.value:
                        self.store.update(job.id, status=Status.RUNNING.value)
                    await self._confirm_placement(job)
                    continue
                if await self._ended_meanwhile(job):
                    continue
                self.store.update_attempt(job.id, job.attempt, ended=self.clock())
                await self._release(job)
                if job.attempt <= job.max_retries:
                    self.store.add_event(job.id, "retry", f"{GONE}: retried")
                    self.store.update(job.id, status=Status.QUEUED.value,
                                      queue_reason=f"{GONE}: retried")
                else:
                    self._end(job, Status.FAILED, GONE)

    async def _confirm_placement(self, job: Any) -> None:
        """Ask the hub for an adopted job's placement again: it answers the one it holds
        (and, after a hub restart, holds its GPUs again), or places it anew if it was lost."""
        try:
            await self.placing.place(job.user, job.id, job.image, job.size,
                                     self._replica_names(job, self.catalog()))
        except (PlacementRefused, HubUnreachable) as e:
            log.warning("Confirming the placement of adopted job %s: %s", job.id, e)

    async def _ended_meanwhile(self, job: Any) -> bool:
        """An attempt that ended while the service was away, with every replica's exit
        recorded by the executor: decided as if it had been watched (succeeded, failed,
        or retried)."""
        plan = self._plan(job)
        if plan is None:
            return False
        states = list(await self.executor.poll(plan))
        if not states or any(s.running or s.exit_code is None for s in states):
            return False
        self.store.add_event(job.id, "reconciled", f"attempt {job.attempt} ended while the "
                             "jobs service was restarting")
        await self._watch(job)
        return True

    # --- starting -----------------------------------------------------------------------------

    async def _start_queued(self) -> None:
        catalog = self.catalog()
        queue = self.store.queued()
        if not queue:
            return
        running = [demand_of(j) for j in self.store.active()]
        start, waiting = startable([(j.id, demand_of(j)) for j in queue], running,
                                   limits_from(catalog.domains))
        for job_id, why in waiting.items():
            job = self.store.get(job_id)
            if job is not None and job.queue_reason != why:
                self.store.update(job_id, queue_reason=why)
        held: set[str] = set()  # domains whose first job found no room: FIFO within them
        for job_id in start:
            job = self.store.get(job_id)
            if job is None or job.status != Status.QUEUED.value or job.domain in held:
                continue
            if not await self._place_and_start(job, catalog):
                held.add(job.domain)

    async def _place_and_start(self, job: Any, catalog: Catalog) -> bool:
        """Place and start a queued job's next attempt; False when it must wait for room."""
        names = self._replica_names(job, catalog)
        try:
            placed = await self.placing.place(job.user, job.id, job.image, job.size, names)
        except PlacementRefused as e:
            if e.status == 409:
                if job.queue_reason != e.message:
                    self.store.update(job.id, queue_reason=e.message)
                return False
            self._end(job, Status.FAILED, e.message)
            return True
        except HubUnreachable:
            self.store.update(job.id, queue_reason="the hub is not reachable: waiting")
            return False
        self.store.update(job.id, status=Status.STARTING.value, queue_reason="")
        self.store.add_event(job.id, "placed", f"placed {len(names)} replica(s) on "
                             f"{job.size}")
        await self._start_attempt(self.store.get(job.id), placed, catalog)
        return True

    def _replica_names(self, job: Any, catalog: Catalog) -> list[str]:
        image = catalog.images.get(job.image)
        kind = replicas_mod.framework_kind(image.framework if image else "")
        return [r.name for r in replicas_mod.make_replicas(
            kind, int(job.spec.get("workers") or 1), int(job.spec.get("parameter_servers") or 0))]

    def build_plan(self, job: Any, attempt: int, placed: Mapping[str, ReplicaPlacement],
                   catalog: Catalog) -> AttemptPlan:
        """The attempt's plan: every replica's generated env, GPUs and cgroup leaf."""
        account = self.accounts(job.user)
        image = catalog.images.get(job.image)
        kind = replicas_mod.framework_kind(image.framework if image else "")
        group = replicas_mod.make_replicas(kind, int(job.spec.get("workers") or 1),
                                           int(job.spec.get("parameter_servers") or 0))
        addresses = [f"127.0.0.1:{BASE_PORT + r.rank}" for r in group]
        dirs = {k: str(Path(account.home) / v) for k, v in job_dirs(job.id).items()}
        plans = []
        for replica in group:
            where = placed.get(replica.name, ReplicaPlacement())
            env = {**where.env, **replicas_mod.make_replica_env(
                kind, group, addresses, replica, job_id=job.id, attempt=attempt,
                checkpoint_dir=dirs["checkpoints"], output_dir=dirs["outputs"],
                tensorboard_dir=dirs["tensorboard"])}
            env["CUDA_VISIBLE_DEVICES"] = ",".join(where.gpus)
            plans.append(ReplicaPlan(replica.name, replica.rank, env, tuple(where.gpus),
                                     tuple(where.procs)))
        return AttemptPlan(
            job_id=job.id, attempt=attempt, user=job.user, unix_user=account.unix_user,
            command=runner.make_command(parse_spec(job.spec), account.python_of(job.image),
                                        code_dir=dirs["code"], output_dir=dirs["outputs"],
                                        hub_python=sys.executable),
            workdir=dirs["code"], job_dir=str(self.state_dir / "jobs" / job.id),
            replicas=plans, image=job.image, size=job.size,
            env=dict(job.spec.get("env") or {}), timeout=job.timeout)

    async def _start_attempt(self, job: Any, placed: Mapping[str, ReplicaPlacement],
                             catalog: Catalog) -> None:
        number = job.attempt + 1
        plan = self.build_plan(job, number, placed, catalog)
        self.store.add_attempt(job.id, number, plan_to_dict(plan), self.clock())
        self.store.update(job.id, attempt=number, status=Status.STARTING.value)
        try:
            await self.executor.start(plan)
        except Exception as e:
            log.warning("Starting job %s attempt %s failed: %s", job.id, number, e)
            self.store.update_attempt(job.id, number, ended=self.clock())
            self._end(self.store.get(job.id), Status.FAILED,
                      f"attempt {number} could not start: {e}")
            await self._release(job)
            return
        now = self.clock()
        self.store.update(job.id, status=Status.RUNNING.value,
                          started=job.started or now)
        self.store.update_attempt(job.id, number, replicas=[
            {"name": r.name, "running": True, "exit_code": None} for r in plan.replicas])
        self.store.add_event(job.id, "started", f"attempt {number} started")

    # --- watching -----------------------------------------------------------------------------

    def _plan(self, job: Any) -> AttemptPlan | None:
        attempt = self.store.attempt(job.id, job.attempt) if job.attempt else None
        return plan_from_dict(attempt.plan) if attempt and attempt.plan else None

    async def _watch(self, job: Any) -> None:
        plan = self._plan(job)
        if plan is None:
            return
        states = list(await self.executor.poll(plan))
        self._record(job, states)
        self._record_resumes(job, plan)
        attempt = self.store.attempt(job.id, job.attempt)
        if job.timeout and attempt is not None and \
                (self.clock() - attempt.started).total_seconds() > job.timeout:
            await self.executor.stop(plan)
            self.store.update_attempt(job.id, job.attempt, ended=self.clock())
            self._end(job, Status.FAILED, f"timed out after {format_duration(job.timeout)}")
            await self._release(job)
            return
        failed = [s for s in states if not s.running and s.exit_code not in (0, None)]
        if failed:
            await self._attempt_failed(job, plan, failed[0])
        elif states and all(not s.running and s.exit_code == 0 for s in states):
            self.store.update_attempt(job.id, job.attempt, ended=self.clock())
            self._end(job, Status.SUCCEEDED, "")
            await self._release(job)
        elif any(s.name == CHIEF and not s.running and s.exit_code == 0 for s in states):
            # TensorFlow's parameter-server strategy: the chief runs the training loop;
            # workers and ps tasks serve until they are stopped, so the chief's success
            # is the job's, and the others are stopped (their exits are no failure).
            await self.executor.stop(plan)
            self.store.update_attempt(job.id, job.attempt, ended=self.clock())
            self.store.add_event(job.id, "stopped", "the chief finished: the other "
                                 "replicas were stopped")
            self._end(job, Status.SUCCEEDED, "")
            await self._release(job)

    def _record(self, job: Any, states: Sequence[ReplicaState]) -> None:
        """Keep the replicas' states; an event for each replica seen exiting."""
        attempt = self.store.attempt(job.id, job.attempt)
        before = {r["name"]: r for r in attempt.replicas} if attempt else {}
        rows = [{"name": s.name, "running": s.running, "exit_code": s.exit_code}
                for s in states]
        for s in states:
            if not s.running and before.get(s.name, {}).get("running", True):
                self.store.add_event(job.id, "exited", f"{s.name} exited with "
                                     f"{s.exit_code}" + (f": {s.reason}" if s.reason else ""))
        if [before.get(r["name"]) for r in rows] != rows:
            self.store.update_attempt(job.id, job.attempt, replicas=rows)

    def _record_resumes(self, job: Any, plan: AttemptPlan) -> None:
        """An event for each ``STUDIOHUB_RESUMED_FROM <path> step <n>`` line the executor
        saw (printed by the SDK's checkpoint helper), once: each replica's lines only grow,
        so the service remembers how many it recorded (read back from the store once after
        a restart) and adds the ones past that, at most :data:`.keeper.MAX_RESUMES`."""
        resumed = getattr(self.executor, "resumed", None)
        lines = resumed(plan) if callable(resumed) else []
        if not lines:
            return
        key = (job.id, plan.attempt)
        if key not in self._resumes_seen:
            self._resumes_seen[key] = self._resumes_recorded(job.id, plan.attempt)
        recorded = self._resumes_seen[key]
        position: dict[str, int] = {}
        for replica, where in lines:
            index = position[replica] = position.get(replica, 0) + 1
            if index > recorded.get(replica, 0) and index <= MAX_RESUMES:
                self.store.add_event(job.id, "resumed", f"attempt {plan.attempt}: {replica} "
                                     f"resumed from checkpoint {where}")
                recorded[replica] = index

    def _resumes_recorded(self, job_id: str, attempt: int) -> dict[str, int]:
        """How many resume events each replica of the attempt already has in the store."""
        prefix = f"attempt {attempt}: "
        counts: dict[str, int] = {}
        for event in self.store.events(job_id, limit=ALL_EVENTS):
            if event.kind == "resumed" and event.message.startswith(prefix):
                replica = event.message[len(prefix):].split(" ", 1)[0]
                counts[replica] = counts.get(replica, 0) + 1
        return counts

    async def _attempt_failed(self, job: Any, plan: AttemptPlan, state: ReplicaState) -> None:
        """Stop the whole group; retry it as attempt N+1, or fail with the reason."""
        await self.executor.stop(plan)
        self.store.update_attempt(job.id, job.attempt, ended=self.clock())
        reason = self._failure_reason(job, state)
        # An OOM kill is retried whatever code the replica then exited with (a notebook's
        # kernel is killed and papermill exits with its own code).
        retry = (state.oom_killed or state.exit_code not in NO_RETRY_CODES) and \
            job.attempt <= job.max_retries
        if not retry:
            self._end(job, Status.FAILED, reason)
            await self._release(job)
            return
        self.store.add_event(job.id, "retry", f"attempt {job.attempt} failed ({reason}): "
                             f"retrying as attempt {job.attempt + 1}")
        placed = {r.name: ReplicaPlacement(r.gpus, r.cgroup_procs,
                                           {k: v for k, v in r.env.items()})
                  for r in plan.replicas}
        await self._start_attempt(job, placed, self.catalog())

    def _failure_reason(self, job: Any, state: ReplicaState) -> str:
        if state.reason:
            return state.reason
        if state.oom_killed or state.exit_code in (-9, 137):
            size = self.catalog().sizes.get(job.size)
            memory = format_memory(size.memory) if size else job.size
            if state.oom_killed:
                return f"OOMKilled: {state.name} used more than {memory}"
            return f"{state.name} was killed (signal 9)"
        if state.exit_code is not None and state.exit_code < 0:
            return f"{state.name} was killed by signal {-state.exit_code}"
        return f"exit code {state.exit_code} ({state.name})"

    # --- ending -------------------------------------------------------------------------------

    async def _stop_attempt(self, job: Any) -> None:
        plan = self._plan(job)
        if plan is not None and job.status in (Status.STARTING.value, Status.RUNNING.value):
            await self.executor.stop(plan)
            self.store.update_attempt(job.id, job.attempt, ended=self.clock())
            await self._release(job)

    async def _release(self, job: Any) -> None:
        try:
            await self.placing.release(job.user, job.id)
        except (PlacementRefused, HubUnreachable) as e:
            # The hub releases a job's placements itself once nothing runs in them.
            log.warning("Releasing the placement of job %s: %s", job.id, e)

    def _end(self, job: Any, status: Status, reason: str) -> Any:
        """The job's final status and reason (its placement is the caller's to release)."""
        ended = self.store.update(job.id, status=status.value, reason=reason,
                                  queue_reason="", finished=self.clock())
        self.store.add_event(job.id, status.value, reason or status.value)
        self.wake()
        return ended


def _default_name(spec: JobSpec) -> str:
    entry = spec.entry
    value = getattr(spec, entry)
    text = " ".join(value) if entry == "command" else str(value)
    return text[:80]
