"""Per-domain job quotas and the queue's order: pure functions of plain values.

A domain of the catalog may limit what its training jobs use at once
(``domains.<d>.jobs: {max_running, max_cpus, max_memory, max_gpus}``) and what one user's
jobs in it use (``per_user: {...}``, the same keys); an absent key is no limit. A job
counts against the domain it was submitted in, with its whole demand (replicas × size).

:func:`quota_reason` says why one more job would pass a limit (the job then waits,
queued, with that reason shown); :func:`startable` walks the queue in submit order:
first in, first out within a domain (a job that does not fit holds back the later jobs of
its domain, or of its user when only the user's own limit is reached), while a job that
does not fit never holds back a job of another domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..catalog import JobLimits
from ..units import format_memory


@dataclass(frozen=True)
class Demand:
    """What one job uses while it runs: its owner, domain and whole size."""

    user: str
    domain: str
    cpus: float
    memory: int
    gpus: int = 0


@dataclass(frozen=True)
class Usage:
    jobs: int = 0
    cpus: float = 0.0
    memory: int = 0
    gpus: int = 0


def usage(running: Iterable[Demand]) -> Usage:
    """The sum of what ``running`` jobs use."""
    total = Usage()
    for d in running:
        total = Usage(total.jobs + 1, total.cpus + d.cpus, total.memory + d.memory,
                      total.gpus + d.gpus)
    return total


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def limit_reason(limits: JobLimits, used: Usage, job: Demand, who: str) -> str | None:
    """Why ``job`` would pass ``limits`` given ``used``; ``who`` names the holder."""
    if limits.max_running is not None and used.jobs + 1 > limits.max_running:
        return (f"{who} runs {_plural(limits.max_running, 'job')} at once at most "
                f"({used.jobs} running)")
    if limits.max_cpus is not None and used.cpus + job.cpus > limits.max_cpus:
        return (f"{who} uses {limits.max_cpus:g} vCPU for jobs at most ({used.cpus:g} in "
                f"use, this job needs {job.cpus:g})")
    if limits.max_memory is not None and used.memory + job.memory > limits.max_memory:
        return (f"{who} uses {format_memory(limits.max_memory)} for jobs at most "
                f"({format_memory(used.memory)} in use, this job needs "
                f"{format_memory(job.memory)})")
    if limits.max_gpus is not None and used.gpus + job.gpus > limits.max_gpus:
        return (f"{who} uses {_plural(limits.max_gpus, 'GPU')} for jobs at most "
                f"({used.gpus} in use, this job needs {job.gpus})")
    return None


@dataclass(frozen=True)
class Verdict:
    """Why a job waits (``reason``) and whom it holds back: its domain, or its user."""

    reason: str
    per_user: bool


def quota_verdict(domain: JobLimits, per_user: JobLimits, job: Demand,
                  running: Sequence[Demand]) -> Verdict | None:
    """None when ``job`` fits its domain's limits next to ``running``, else why not."""
    mine = [d for d in running if d.domain == job.domain]
    why = limit_reason(domain, usage(mine), job, f"domain {job.domain}")
    if why:
        return Verdict(f"{why}: queued", False)
    theirs = [d for d in mine if d.user == job.user]
    why = limit_reason(per_user, usage(theirs), job,
                       f"{job.user} in domain {job.domain}")
    if why:
        return Verdict(f"{why}: queued", True)
    return None


def quota_reason(domain: JobLimits, per_user: JobLimits, job: Demand,
                 running: Sequence[Demand]) -> str | None:
    """The reason ``job`` waits (``domain ml runs 2 jobs at once at most (2 running):
    queued``), or None when it fits."""
    verdict = quota_verdict(domain, per_user, job, running)
    return verdict.reason if verdict else None


LimitsOf = Callable[[str], tuple[JobLimits, JobLimits]]


def startable(queue: Sequence[tuple[str, Demand]], running: Sequence[Demand],
              limits_of: LimitsOf) -> tuple[list[str], dict[str, str]]:
    """Which queued jobs may start now, in order, and why each other one waits.

    ``queue``: (job id, demand) in submit order; ``limits_of(domain)``: the domain's and
    its per-user limits. Jobs chosen to start count against the limits of later ones.
    """
    now = list(running)
    start: list[str] = []
    waiting: dict[str, str] = {}
    held_domains: dict[str, str] = {}
    held_users: dict[tuple[str, str], str] = {}
    for job_id, job in queue:
        ahead = held_domains.get(job.domain) or held_users.get((job.domain, job.user))
        if ahead:
            waiting[job_id] = f"waiting for job {ahead}, queued before it in domain " \
                              f"{job.domain}"
            continue
        verdict = quota_verdict(*limits_of(job.domain), job, now)
        if verdict is None:
            start.append(job_id)
            now.append(job)
            continue
        waiting[job_id] = verdict.reason
        if verdict.per_user:
            held_users[(job.domain, job.user)] = job_id
        else:
            held_domains[job.domain] = job_id
    return start, waiting


def no_limits(_domain: str) -> tuple[JobLimits, JobLimits]:
    return JobLimits(), JobLimits()


def limits_from(domains: Mapping[str, object]) -> LimitsOf:
    """``limits_of`` for a catalog's domains (unknown domains: no limit)."""
    def limits_of(domain: str) -> tuple[JobLimits, JobLimits]:
        found = domains.get(domain)
        if found is None:
            return JobLimits(), JobLimits()
        return getattr(found, "jobs", JobLimits()), getattr(found, "jobs_per_user", JobLimits())
    return limits_of
