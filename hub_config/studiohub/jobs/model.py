"""The plain values the jobs service, its executors and its clients share.

- :class:`Status`: a job's states, in the order a job moves through them.
- :class:`AttemptPlan` / :class:`ReplicaPlan`: everything an executor needs to start one
  attempt of a job (what the service decided: where each replica runs, as whom, with which
  environment). Executors carry a plan out and decide nothing.
- :class:`ReplicaState`: what an executor reports about one replica.
- :class:`Executor`: the interface of the local executor (processes in cgroups, in the
  job's network namespace) and of the Kubernetes executor (an Indexed Job + a Service).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Status(enum.StrEnum):
    """queued → starting → running → succeeded | failed | cancelled."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica of an attempt: its name, rank and what it runs with."""

    name: str  # worker-0, ps-1, chief-0, scheduler-0, server-0
    rank: int
    env: Mapping[str, str]  # generated: framework variables + STUDIOHUB_* + CUDA_VISIBLE_DEVICES
    gpus: tuple[str, ...] = ()
    cgroup_procs: tuple[str, ...] = ()  # cgroup.procs files the process joins (local mode)


@dataclass(frozen=True)
class AttemptPlan:
    """One attempt of a job, as the service decided it."""

    job_id: str
    attempt: int
    user: str  # hub user name
    unix_user: str  # the account replicas run as (local mode)
    command: Sequence[str]  # argv run by every replica (the image's python first)
    workdir: str  # the job's code snapshot
    job_dir: str  # <state>/jobs/<id>: logs/, snapshot/, readable by its owner only
    replicas: Sequence[ReplicaPlan]
    image: str  # catalog image id
    size: str  # catalog size id
    container_image: str = ""  # Kubernetes only
    env: Mapping[str, str] = field(default_factory=dict)  # the user's own variables
    timeout: int | None = None  # seconds, for this attempt

    def log_name(self, replica: str) -> str:
        """``attempt-2/worker-1.log``: where a replica's output is kept, under logs/."""
        return f"attempt-{self.attempt}/{replica}.log"


@dataclass(frozen=True)
class ReplicaState:
    """An executor's report on one replica: running, or exited with a code and why."""

    name: str
    running: bool
    exit_code: int | None = None  # None while running; negative: killed by that signal
    oom_killed: bool = False
    reason: str = ""  # e.g. "OOMKilled: worker-1 used more than 4 GiB"


class Executor(Protocol):
    """Carries out attempt plans; never decides (the service does)."""

    async def start(self, plan: AttemptPlan) -> None:
        """Start every replica of the attempt (all or none: on failure, stop what started
        and raise)."""

    async def poll(self, plan: AttemptPlan) -> Sequence[ReplicaState]:
        """The state of each replica of a started attempt."""

    async def stop(self, plan: AttemptPlan) -> None:
        """Stop every replica of the attempt as a group and release what it holds;
        returns once nothing of it runs. Safe to call twice."""

    async def running(self) -> Sequence[tuple[str, int]]:
        """(job id, attempt) of every attempt that still runs: the service reconciles
        its store with this when it starts."""
