"""In-memory parts of the jobs service for tests: a fake executor, a fake hub placement
client, a settable clock, catalogs with job quotas, and ``make_jobs`` wiring them to the
real :class:`studiohub.jobs.service.Jobs` over a real store.

A tools module (not a test module): tests/unit/test_jobs_service.py, test_jobs_http.py,
test_jobs_kube_executor.py and tests/jobsapi.py import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from studiohub.catalog import BUILTIN_CATALOG, Catalog, merge, parse_catalog
from studiohub.jobs.model import AttemptPlan, ReplicaState
from studiohub.jobs.placing import PlacementRefused, ReplicaPlacement
from studiohub.jobs.service import Account, Jobs
from studiohub.jobs.store import Store


class FakeExecutor:
    """Runs nothing: replicas run until the test makes them exit."""

    def __init__(self) -> None:
        self.started: list[AttemptPlan] = []
        self.stopped: list[tuple[str, int]] = []
        self.exits: dict[tuple[str, int], dict[str, int]] = {}
        self.live: set[tuple[str, int]] = set()
        self.resumes: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self.oom_killed: set[tuple[str, int, str]] = set()

    async def start(self, plan: AttemptPlan) -> None:
        self.started.append(plan)
        self.live.add((plan.job_id, plan.attempt))

    async def poll(self, plan: AttemptPlan) -> Sequence[ReplicaState]:
        exits = self.exits.get((plan.job_id, plan.attempt), {})
        return [ReplicaState(r.name, r.name not in exits, exits.get(r.name),
                             (plan.job_id, plan.attempt, r.name) in self.oom_killed)
                for r in plan.replicas]

    async def stop(self, plan: AttemptPlan) -> None:
        self.stopped.append((plan.job_id, plan.attempt))
        self.live.discard((plan.job_id, plan.attempt))

    async def running(self) -> Sequence[tuple[str, int]]:
        return sorted(self.live)

    def resumed(self, plan: AttemptPlan) -> list[tuple[str, str]]:
        return self.resumes.get((plan.job_id, plan.attempt), [])

    def exit(self, job_id: str, attempt: int, code: int, replica: str = "worker-0",
             oom_killed: bool = False) -> None:
        self.exits.setdefault((job_id, attempt), {})[replica] = code
        if oom_killed:
            self.oom_killed.add((job_id, attempt, replica))


class FakePlacing:
    def __init__(self) -> None:
        self.placed: dict[str, list[str]] = {}
        self.released: list[str] = []
        self.refuse: PlacementRefused | None = None

    async def check(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> None:
        if self.refuse:
            raise self.refuse

    async def place(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> dict[str, ReplicaPlacement]:
        if self.refuse:
            raise self.refuse
        self.placed[job_id] = list(replicas)
        return {r: ReplicaPlacement(procs=(f"/sys/fs/cgroup/x/{r}/cgroup.procs",),
                                    env={"OMP_NUM_THREADS": "1"}) for r in replicas}

    async def release(self, user: str, job_id: str) -> None:
        self.released.append(job_id)
        self.placed.pop(job_id, None)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def catalog_with(jobs: dict[str, Any] | None = None) -> Catalog:
    data = yaml.safe_load(BUILTIN_CATALOG.read_text())
    if jobs:
        data = merge(data, {"domains": {"everyone": {"jobs": jobs}}})
    return parse_catalog(data, "test")


def make_jobs(tmp_path: Path, catalog: Catalog | None = None,
              store: Store | None = None) -> tuple[Jobs, FakeExecutor, FakePlacing, Clock]:
    executor, placing, clock = FakeExecutor(), FakePlacing(), Clock()
    loaded = catalog or catalog_with()
    jobs = Jobs(store or Store(f"sqlite:///{tmp_path / 'jobs.sqlite'}"), executor, placing,
                lambda: loaded, state_dir=tmp_path,
                accounts=lambda user: Account(f"jupyter-{user}", f"/home/jupyter-{user}"),
                clock=clock)
    return jobs, executor, placing, clock
