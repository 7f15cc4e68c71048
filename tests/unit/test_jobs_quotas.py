"""Per-domain job quotas and the queue's order (pure), and the catalog keys they read."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml

from studiohub.catalog import BUILTIN_CATALOG, CatalogError, JobLimits, merge, parse_catalog
from studiohub.jobs.quotas import Demand, LimitsOf, quota_reason, startable

GIB = 1 << 30


def demand(user: str = "alice", domain: str = "ml-team", cpus: float = 1, memory: int = GIB,
           gpus: int = 0) -> Demand:
    return Demand(user, domain, cpus, memory, gpus)


NONE = JobLimits()


def limits(domain: JobLimits = NONE, per_user: JobLimits = NONE) -> LimitsOf:
    return lambda _d: (domain, per_user)


def test_a_quota_of_two_queues_the_third_job_with_the_reason() -> None:
    two = JobLimits(max_running=2)
    running = [demand(), demand(user="bob")]
    assert quota_reason(two, JobLimits(), demand(), running[:1]) is None
    assert quota_reason(two, JobLimits(), demand(), running) == \
        "domain ml-team runs 2 jobs at once at most (2 running): queued"
    # Another domain's jobs do not count.
    assert quota_reason(two, JobLimits(), demand(domain="other"), running) is None


def test_cpu_memory_gpu_and_per_user_limits_are_worded() -> None:
    running = [demand(cpus=4, memory=4 * GIB, gpus=1)]
    assert quota_reason(JobLimits(max_cpus=6), JobLimits(), demand(cpus=4), running) == \
        "domain ml-team uses 6 vCPU for jobs at most (4 in use, this job needs 4): queued"
    assert "uses 6 GiB for jobs at most (4 GiB in use, this job needs 4 GiB)" in \
        quota_reason(JobLimits(max_memory=6 * GIB), JobLimits(), demand(memory=4 * GIB),
                     running)
    assert "uses 1 GPU for jobs at most (1 in use, this job needs 1)" in \
        quota_reason(JobLimits(max_gpus=1), JobLimits(), demand(gpus=1), running)
    assert quota_reason(JobLimits(), JobLimits(max_running=1), demand(), running) == \
        "alice in domain ml-team runs 1 job at once at most (1 running): queued"
    assert quota_reason(JobLimits(), JobLimits(max_running=1), demand(user="bob"),
                        running) is None


def test_queue_is_fifo_per_domain_and_never_blocks_another_domain() -> None:
    queue = [("a1", demand(cpus=4)), ("a2", demand(cpus=1)), ("b1", demand(domain="b"))]
    start, waiting = startable(queue, [demand(cpus=4)], limits(JobLimits(max_cpus=6)))
    # a1 does not fit; a2 would, but waits behind a1 (FIFO); domain b is not held back.
    assert start == ["b1"]
    assert waiting["a1"].endswith(": queued") and "waiting for job a1" in waiting["a2"]


def test_a_users_own_limit_holds_back_only_that_user() -> None:
    queue = [("a1", demand()), ("a2", demand()), ("b1", demand(user="bob"))]
    start, waiting = startable(queue, [], limits(per_user=JobLimits(max_running=1)))
    assert start == ["a1", "b1"] and set(waiting) == {"a2"}


def test_fifty_jobs_under_a_quota_of_two_never_run_more_than_two_and_all_finish() -> None:
    rng = random.Random(7)
    queue = [(f"j{i:02d}", demand(user=rng.choice(["alice", "bob"]))) for i in range(50)]
    running: dict[str, Demand] = {}
    finished, order = [], []
    while queue or running:
        start, _ = startable(queue, list(running.values()), limits(JobLimits(max_running=2)))
        for job_id in start:
            running[job_id] = dict(queue)[job_id]
            order.append(job_id)
        queue = [q for q in queue if q[0] not in start]
        assert len(running) <= 2
        done = rng.choice(sorted(running))
        finished.append(done)
        del running[done]
    assert sorted(finished) == [f"j{i:02d}" for i in range(50)]
    assert order == sorted(order)  # started in submit order


def test_catalog_domain_job_limits_parse_and_refuse_bad_values() -> None:
    base = _raw()
    data = merge(base, {"domains": {"everyone": {"jobs": {
        "max_running": 2, "max_memory": "8G", "per_user": {"max_gpus": 1}}}}})
    parsed = parse_catalog(data, "test")
    domain = parsed.domains["everyone"]
    assert domain.jobs == JobLimits(max_running=2, max_memory=8 * GIB)
    assert domain.jobs_per_user == JobLimits(max_gpus=1)
    with pytest.raises(CatalogError, match="max_running"):
        parse_catalog(merge(base, {"domains": {"everyone": {"jobs": {"max_running": -1}}}}),
                      "test")
    with pytest.raises(CatalogError, match="max_memory"):
        parse_catalog(merge(base, {"domains": {"everyone": {"jobs": {"max_memory": "lots"}}}}),
                      "test")


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(BUILTIN_CATALOG.read_text())
    return data
