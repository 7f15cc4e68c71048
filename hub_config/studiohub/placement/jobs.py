"""Groups of replicas as placements: training jobs and model endpoints' versions, with
the same book, capacity check and GPU allocator as kernels, without a user server.

A job's replicas are ``kind="job"`` placements with ids ``<job id>-<replica>``; an
endpoint version's are ``kind="endpoint"`` ones, ``<holder id>-<replica>`` (the models
service picks a 12-hex holder id per version). They do not live in the user's server
cgroup (they outlive the server): each group gets a cgroup of its own,
``<cgroup_root>/<kind>-<id>``, and each replica a leaf in it
(:func:`.leaves.make_leaf`, with the size's limits, delegated to the user's account).
What the placer reads from a spawner (catalog, groups, allocator, cgroup settings, the
account) comes from the user's spawner object, started or not: :class:`JobSite`.

Job placements are made confirmed: the jobs service starts the replicas at once and
releases the placement when the attempt group ends (and on its own restart, for jobs
that no longer run), so they are not swept as pending like kernels. A server's stop
does not release them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from .. import cgroups, gpus
from ..catalog import Choice
from . import service
from .book import Placement
from .capacity import Refused, amount, host_reason, refusal
from .leaves import leaf_paths, make_leaf, remove_leaf
from .service import Placer, give_back

JOB = "job"
ENDPOINT = "endpoint"
#: The kinds of replica groups, each with its own scope in the hub API.
GROUP_KINDS = (JOB, ENDPOINT)
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
REPLICA = re.compile(r"^[a-z]{1,16}-\d{1,3}$")
MAX_REPLICAS = 128


class JobSite:
    """The user's spawner as the placer reads it, with the job's own cgroup."""

    def __init__(self, spawner: Any, job_id: str, kind: str = JOB) -> None:
        self._spawner = spawner
        self.cgroup = cgroup_name(job_id, kind) if spawner.caps.enforced else ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spawner, name)


def cgroup_name(job_id: str, kind: str = JOB) -> str:
    return f"{kind}-{job_id}"


def replica_id(job_id: str, replica: str) -> str:
    return f"{job_id}-{replica}"


def of_job(placer: Placer, user: str, job_id: str, kind: str = JOB) -> list[Placement]:
    prefix = f"{job_id}-"
    return [p for p in placer.book.of_user(user, kind) if p.id.startswith(prefix)]


def restore_gpus(placer: Placer, allocator: gpus.GpuAllocator) -> None:
    """Replica groups keep their GPUs across hub restarts (no server re-reserves them)."""
    for placed in placer.book.all():
        if placed.kind in GROUP_KINDS and placed.gpus:
            allocator.reserve(placed.gpu_holder, placed.gpus)


def whole(choice: Choice, count: int) -> Any:
    """The job's replicas together as one size (memory and GPUs add up; CPUs are per
    replica, as servers' CPUs are shares, not reservations)."""
    return dataclasses.replace(choice.size, memory=choice.size.memory * count,
                               gpus=choice.size.gpus * count)


def check_job(placer: Placer, site: Any, choice: Choice, count: int) -> None:
    """:class:`Refused` when the job cannot be placed: 400 if it never could on this
    machine, 409 (the placer's wording) if there is no room now."""
    size = whole(choice, count)
    host = service.host_of(site)
    never = host_reason(size, host, float(getattr(site, "memory_overcommit", 1.0)))
    if not never and size.gpus > host.gpus:
        never = f"needs {size.gpus} GPU; this machine has {host.gpus or 'none'}"
    if never:
        raise Refused(400, f"{count} replicas of {choice.size.display_name} cannot run here "
                           f"({amount(size.memory)} in all): {never}" if count > 1 else
                      f"{choice.size.display_name} cannot run here: {never}")
    placer.sweep()
    why = placer.reason(site, choice.image, size)
    if why:
        raise refusal(choice.image, choice.size, why if count == 1 else
                      f"{why} ({count} replicas)")


async def place_job(placer: Placer, site: Any, user: str, job_id: str, choice: Choice,
                    replicas: Sequence[str], kind: str = JOB
                    ) -> tuple[list[Placement], bool]:
    """Every replica placed (all or none); (placements, whether new). Placing a group that
    is already placed answers its placements as they are."""
    existing = of_job(placer, user, job_id, kind)
    if existing:
        return existing, False
    check_job(placer, site, choice, len(replicas))
    allocator = site.allocator
    placed: list[Placement] = []
    try:
        for replica in replicas:
            holder_id = replica_id(job_id, replica)
            held = allocator.allocate(f"{user}/{kind}/{holder_id}", choice.size.gpus)
            placement = Placement(user, holder_id, site.cgroup, choice.image.id,
                                  choice.size.id, choice.size.cpus, choice.size.memory,
                                  tuple(g.id for g in held), kind, since=placer.clock(),
                                  confirmed=True)
            placer.book.add(placement)  # before any await: a concurrent check counts it
            placed.append(placement)
        await asyncio.to_thread(_make_cgroups, site, choice, placed)
    except (gpus.NoGpuFree, OSError) as e:
        await asyncio.to_thread(_forget, site, placer, placed)
        if isinstance(e, gpus.NoGpuFree):
            raise Refused(409, str(e)) from None
        raise
    return placed, True


def _make_cgroups(site: Any, choice: Choice, placed: Sequence[Placement]) -> None:
    if not site.cgroup:
        return
    tree = cgroups.Cgroups(site.caps, site.cgroup_root)
    settings = cgroups.make_settings(site.caps, choice.size.cpus,
                                     choice.size.memory * len(placed), site.pids_limit)
    tree.ensure_cgroup(site.cgroup, settings)
    for placement in placed:
        make_leaf(site, placement)


def _forget(site: Any, placer: Placer, placed: Sequence[Placement]) -> None:
    for placement in placed:
        placer.book.remove(placement.id, placement.kind)
        give_back(site.allocator, placer.book, site.allocator.free(placement.gpu_holder))
    if site.cgroup:
        cgroups.Cgroups(site.caps, site.cgroup_root).remove(site.cgroup)


def release_job(placer: Placer, site: Any, user: str, job_id: str, kind: str = JOB
                ) -> list[Placement]:
    """Kill what is left in the group's leaves, remove its cgroup, free its GPUs."""
    placed = of_job(placer, user, job_id, kind)
    for placement in placed:
        if placement.cgroup:
            remove_leaf(site, placement)
    _forget(site, placer, placed)
    return placed


def describe_job(site: Any, placed: Sequence[Placement], env: Any) -> dict[str, Any]:
    """``{replicas: {name: {gpus, procs, env}}}``: where each replica joins and its limits."""
    answer = {}
    for placement in placed:
        name = placement.id.split("-", 1)[1]
        answer[name] = {"gpus": list(placement.gpus),
                        "procs": leaf_paths(site, placement)["procs"],
                        "env": env(placement)}
    return {"replicas": answer}
