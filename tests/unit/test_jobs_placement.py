"""A training job's replicas as placements of the hub's one placer (no user server).

The same book, capacity check and GPU allocator as kernels: a job and a kernel can never
be promised the same memory or GPU. Spawners are stand-ins, as in test_placement_service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from studiohub import cgroups, placement
from studiohub.catalog import Catalog, Choice
from studiohub.gpus import Gpu, GpuAllocator
from studiohub.placement import Refused, leaves
from studiohub.placement import jobs as pjobs
from tests.unit import test_placement_service as shared
from tests.unit.test_placement_service import GIB, KIDS, Clock, make_placer, make_spawner, place

catalog = shared.catalog  # the fixtures, shared
every_image_built = shared.every_image_built

JOB = "0123456789ab"


def place_job(placer: Any, spawner: Any, names: list[str], size: str = "half",
              job_id: str = JOB) -> Any:
    site = pjobs.JobSite(spawner, job_id)
    choice = placement.choose(site, "base", size)
    return asyncio.run(pjobs.place_job(placer, site, "ada", job_id, choice, names))


def test_job_replicas_share_the_room_of_kernels(tmp_path: Path, catalog: Catalog) -> None:
    ada = make_spawner(catalog, active=False)  # no server running: jobs need none
    placer = make_placer(tmp_path, {"ada": ada}, Clock())
    placed, new = place_job(placer, ada, [f"worker-{i}" for i in range(31)])
    assert new and len(placed) == 31 and all(p.confirmed and p.kind == "job" for p in placed)
    # 31 GiB of 32 held: a 1 GiB kernel still fits, a second 1 GiB one does not.
    server = make_spawner(catalog)
    place(placer, server, "ada", KIDS[0])
    with pytest.raises(Refused) as e:
        place(placer, server, "ada", KIDS[1])
    assert e.value.status == 409 and "cannot run" in e.value.message
    # Placing the same job again answers its placements; releasing frees the room.
    again, new = place_job(placer, ada, ["worker-0"])
    assert not new and len(again) == 31
    assert len(pjobs.release_job(placer, pjobs.JobSite(ada, JOB), "ada", JOB)) == 31
    place(placer, server, "ada", KIDS[1])


def test_a_job_that_could_never_fit_is_a_400_and_no_room_now_a_409(
        tmp_path: Path, catalog: Catalog) -> None:
    ada = make_spawner(catalog)
    placer = make_placer(tmp_path, {"ada": ada}, Clock())
    with pytest.raises(Refused) as e:
        place_job(placer, ada, [f"worker-{i}" for i in range(40)])
    assert e.value.status == 400
    assert e.value.message == ("40 replicas of 0.5 vCPU + 1 GiB cannot run here (40 GiB in "
                               "all): needs 40 GiB; this machine has 32 GiB")
    place_job(placer, ada, [f"worker-{i}" for i in range(20)], job_id="aaaaaaaaaaaa")
    with pytest.raises(Refused) as e:
        place_job(placer, ada, [f"worker-{i}" for i in range(20)])
    assert e.value.status == 409 and "(20 replicas)" in e.value.message
    assert pjobs.of_job(placer, "ada", JOB) == []  # nothing of the refused job was kept


def test_gpus_come_from_the_shared_allocator_and_are_all_or_none(
        tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = GpuAllocator([Gpu(str(i), f"GPU-{i}") for i in range(2)])
    ada = make_spawner(catalog, allocator=gpus)
    placer = make_placer(tmp_path, {"ada": ada}, Clock())
    monkeypatch.setattr(placement.service, "host_of",
                        lambda spawner: placement.Host(8, 32 * GIB, 2))
    cat = catalog
    gpu_size = type(cat.sizes["half"])(id="g", display_name="1 GPU", cpus=1, memory=GIB,
                                       gpus=1)
    choice = Choice(cat.images["base"], gpu_size)
    site = pjobs.JobSite(ada, JOB)
    placed, _ = asyncio.run(pjobs.place_job(placer, site, "ada", JOB, choice,
                                            ["worker-0", "worker-1"]))
    assert sorted(g for p in placed for g in p.gpus) == sorted(g.id for g in gpus.gpus)
    assert gpus.free_gpus() == []
    with pytest.raises(Refused) as e:
        asyncio.run(pjobs.place_job(placer, pjobs.JobSite(ada, "bbbbbbbbbbbb"), "ada",
                                    "bbbbbbbbbbbb", choice, ["worker-0"]))
    assert e.value.status == 409
    pjobs.release_job(placer, site, "ada", JOB)
    assert len(gpus.free_gpus()) == 2


def test_a_stopped_server_keeps_its_users_job_placements(tmp_path: Path,
                                                          catalog: Catalog) -> None:
    ada = make_spawner(catalog)
    placer = make_placer(tmp_path, {"ada": ada}, Clock())
    place_job(placer, ada, ["worker-0"])
    place(placer, ada, "ada", KIDS[0])
    gone = placer.book.remove_user("ada")
    assert [p.kind for p in gone] == ["kernel"]
    assert [p.id for p in placer.book.all()] == [f"{JOB}-worker-0"]


def test_job_leaves_live_in_a_cgroup_of_the_job(tmp_path: Path, catalog: Catalog,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_cgroups import fake_v1

    caps = cgroups.detect(fake_v1(tmp_path))
    monkeypatch.setattr(leaves, "system_mode", lambda: False)
    ada = make_spawner(catalog, caps=caps, cgroup_root="studiohub", pids_limit=256)
    placer = make_placer(tmp_path, {"ada": ada}, Clock())
    placed, _ = place_job(placer, ada, ["worker-0", "worker-1"])
    site = pjobs.JobSite(ada, JOB)
    answer = pjobs.describe_job(site, placed, lambda p: {"X": p.size})
    procs = answer["replicas"]["worker-1"]["procs"]
    assert str(tmp_path / "memory" / "studiohub" / f"job-{JOB}" / f"j-{JOB}-worker-1" /
               "cgroup.procs") in procs
    leaf = tmp_path / "memory" / "studiohub" / f"job-{JOB}" / f"j-{JOB}-worker-0"
    assert (leaf / "memory.limit_in_bytes").read_text() == str(GIB)
    assert len(pjobs.release_job(placer, site, "ada", JOB)) == 2
    assert placer.book.all() == []
