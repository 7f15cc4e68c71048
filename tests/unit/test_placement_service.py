"""The placement owner's decisions without a hub: bounds, dry runs, pending placements.

Spawners are stand-ins with what :class:`studiohub.placement.Placer` reads from one
(catalog, groups, GPU allocator, cgroup capabilities, the traits of bounds).
"""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from studiohub import cgroups, placement
from studiohub.catalog import Catalog, load_catalog
from studiohub.gpus import GpuAllocator
from studiohub.placement import PlacementBook, Placer, Refused, leaves, service
from studiohub.placement.capacity import Host, user_memory_bound

GIB = 1024**3
MIB = 1024**2
KIDS = [f"0000000{i}-0000-4000-8000-000000000000" for i in range(8)]
CATALOG = {
    "sizes": {
        "tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
        "half": {"display_name": "0.5 vCPU + 1 GiB", "cpus": 0.5, "memory": "1G"},
    },
    "domains": {"everyone": {"images": ["base"], "sizes": ["tiny", "half"]}},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    return load_catalog(path)


@pytest.fixture(autouse=True)
def every_image_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "kernel_registered", lambda image_id: True)
    monkeypatch.setattr(service, "host_of", lambda spawner: Host(8, 32 * GIB, 0))


def make_spawner(catalog: Catalog, name: str = "ada", **traits: Any) -> Any:
    defaults = dict(
        catalog=catalog, groups=[], active=True, cgroup="", allocator=GpuAllocator([]),
        gpu_holder=name, memory_overcommit=1.0, max_placed_kernels=16, max_placed_memory=0,
        placement_pending_timeout=10.0, caps=cgroups.Capabilities("none", reason="test"),
        account=pwd.getpwuid(os.geteuid()), choice=None, user_options={})
    return SimpleNamespace(**{**defaults, **traits})


def make_placer(tmp_path: Path, servers: dict[str, Any], clock: Clock) -> Placer:
    book = PlacementBook(tmp_path / "placements.json")
    return Placer(book, lambda: [(user, "", s) for user, s in servers.items()], clock)


def place(placer: Placer, spawner: Any, user: str, kernel_id: str, size: str = "half",
          replaces: str | None = None) -> Any:
    choice = placement.choose(spawner, "base", size)
    return asyncio.run(placer.place(spawner, user, kernel_id, choice, replaces))[0]


def test_kernels_that_never_start_are_released_after_the_pending_timeout(
        tmp_path: Path, catalog: Catalog) -> None:
    """Five placements for kernels that do not exist hold their memory for seconds only."""
    clock = Clock()
    ada, bob = make_spawner(catalog, "ada", max_placed_memory=8 * GIB), make_spawner(catalog)
    placer = make_placer(tmp_path, {"ada": ada, "bob": bob}, clock)
    for kernel_id in KIDS[:5]:
        place(placer, ada, "ada", kernel_id)
    assert placer.book.reserved_memory() == 5 * GIB
    clock.now += 9
    assert placer.sweep() == [] and placer.book.reserved_memory() == 5 * GIB
    clock.now += 2  # past the 10 s: none of their processes was ever seen
    assert sorted(p.id for p in placer.sweep()) == KIDS[:5]
    assert placer.book.all() == [] and placer.book.reserved_memory() == 0
    assert place(placer, bob, "bob", KIDS[5]).user == "bob"


def test_a_capacity_check_releases_stale_pending_placements_itself(
        tmp_path: Path, catalog: Catalog) -> None:
    clock = Clock()
    ada = make_spawner(catalog, max_placed_kernels=2)
    placer = make_placer(tmp_path, {"ada": ada}, clock)
    place(placer, ada, "ada", KIDS[0])
    place(placer, ada, "ada", KIDS[1])
    with pytest.raises(Refused, match="already run 2 kernels"):
        place(placer, ada, "ada", KIDS[2])
    clock.now += 11  # no periodic sweep ran: the next placement sweeps first
    assert place(placer, ada, "ada", KIDS[2]).id == KIDS[2]
    assert [p.id for p in placer.book.all()] == [KIDS[2]]


def test_a_kernel_seen_running_is_kept(tmp_path: Path, catalog: Catalog,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    ada = make_spawner(catalog)
    placer = make_placer(tmp_path, {"ada": ada}, clock)
    running = {KIDS[0]}
    monkeypatch.setattr(leaves, "kernel_runs", lambda uid, kernel_id: kernel_id in running)
    place(placer, ada, "ada", KIDS[0])
    place(placer, ada, "ada", KIDS[1])
    placer.sweep()
    clock.now += 60
    assert [p.id for p in placer.sweep()] == [KIDS[1]]
    kept = placer.book.get(KIDS[0])
    assert kept is not None and kept.confirmed
    again = PlacementBook(placer.book.path).get(KIDS[0])  # saved as confirmed
    assert again is not None and again.confirmed


def test_without_cgroups_only_a_process_of_the_account_running_that_kernel_counts(
        tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cmdline").write_bytes(
        b"python\0-m\0ipykernel_launcher\0-f\0/run/x/kernel-" + KIDS[0].encode() + b".json\0")
    (proc / "self").mkdir()
    uid = os.geteuid()
    assert leaves.kernel_runs(uid, KIDS[0], proc)
    assert not leaves.kernel_runs(uid, KIDS[1], proc)
    assert not leaves.kernel_runs(uid + 1, KIDS[0], proc)


def test_one_user_is_bounded_by_their_own_memory(tmp_path: Path, catalog: Catalog) -> None:
    clock = Clock()
    ada = make_spawner(catalog, max_placed_memory=2 * GIB)
    bob = make_spawner(catalog)
    placer = make_placer(tmp_path, {"ada": ada, "bob": bob}, clock)
    place(placer, ada, "ada", KIDS[0])
    place(placer, ada, "ada", KIDS[1])
    with pytest.raises(Refused) as refused:
        place(placer, ada, "ada", KIDS[2], size="tiny")
    assert refused.value.status == 409
    assert refused.value.message == (
        "your kernels on sizes of their own already hold 2 GiB of the 2 GiB one user may "
        "hold: shut one down (Kernel > Shut Down Kernel) and try again")
    assert len(placer.book.all()) == 2  # refused: nothing changed
    # Replacing one of them is a switch, not one more; others are not bounded by Ada.
    assert place(placer, ada, "ada", KIDS[2], replaces=KIDS[0]).id == KIDS[2]
    assert place(placer, bob, "bob", KIDS[3]).user == "bob"


def test_the_default_memory_bound() -> None:
    from studiohub.catalog import Size

    small, big = Size("s", "S", 1, 2 * GIB), Size("b", "B", 1, 8 * GIB)
    host = Host(8, 32 * GIB, 0)
    assert user_memory_bound([small], host) == 4 * GIB  # twice the largest allowed
    assert user_memory_bound([small, big], host) == 16 * GIB  # = half the machine
    assert user_memory_bound([big], Host(8, 12 * GIB, 0)) == 8 * GIB  # one always fits
    assert user_memory_bound([small, big], Host(8, 20 * GIB, 0)) == 10 * GIB  # half
    assert user_memory_bound([small], host, configured=GIB) == GIB
    assert user_memory_bound([], host) == 0


def test_a_dry_run_answers_the_real_refusal_and_changes_nothing(
        tmp_path: Path, catalog: Catalog) -> None:
    clock = Clock()
    ada = make_spawner(catalog, max_placed_kernels=1)
    placer = make_placer(tmp_path, {"ada": ada}, clock)
    choice = placement.choose(ada, "base", "half")
    assert placer.check(ada, "ada", None, choice) == (None, [])
    assert placer.book.all() == []
    place(placer, ada, "ada", KIDS[0])
    with pytest.raises(Refused, match="already run 1 kernels"):
        placer.check(ada, "ada", None, choice)
    assert placer.check(ada, "ada", None, choice, replaces=KIDS[0]) == (None, [KIDS[0]])
    assert [p.id for p in placer.book.all()] == [KIDS[0]]


def test_another_user_s_kernel_is_answered_as_one_that_does_not_exist(
        tmp_path: Path, catalog: Catalog) -> None:
    clock = Clock()
    ada, eve = make_spawner(catalog), make_spawner(catalog, "eve")
    placer = make_placer(tmp_path, {"ada": ada, "eve": eve}, clock)
    place(placer, ada, "ada", KIDS[0])
    with pytest.raises(Refused) as refused:
        place(placer, eve, "eve", KIDS[0])
    assert (refused.value.status, refused.value.message) == (
        404, f"no placed kernel '{KIDS[0]}' of eve")
    assert placer.book.get(KIDS[0]).user == "ada"  # type: ignore[union-attr]


def test_choices_are_the_catalog_s_verdict_as_400s(catalog: Catalog) -> None:
    ada = make_spawner(catalog)
    with pytest.raises(Refused) as refused:
        placement.choose(ada, "x" * 20_000_000, "half")
    assert refused.value.status == 400 and len(refused.value.message) < 200
    with pytest.raises(Refused, match="size required"):
        placement.choose(ada, "base", None)


def test_a_leaf_gets_the_size_s_exact_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """What the executor writes for a placed kernel: memory, memory+swap, CPU quota, pids."""
    from tests.unit.test_cgroups import fake_v1

    caps = cgroups.detect(fake_v1(tmp_path))
    tree = cgroups.Cgroups(caps, "studiohub")
    tree.ensure_cgroup("jupyter-ada", cgroups.make_settings(caps, 2, 4 * GIB))
    spawner = SimpleNamespace(caps=caps, cgroup_root="studiohub", pids_limit=256)
    monkeypatch.setattr(leaves, "system_mode", lambda: False)
    placed = placement.Placement("ada", KIDS[0], "jupyter-ada", "base", "half", 0.5, GIB)
    leaves.make_leaf(spawner, placed)
    leaf = f"studiohub/jupyter-ada/k-{KIDS[0]}"
    read = {f: (tmp_path / c / leaf / f).read_text() for c, f in (
        ("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
        ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("pids", "pids.max"))}
    assert read == {"memory.limit_in_bytes": str(GIB), "memory.memsw.limit_in_bytes": str(GIB),
                    "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000",
                    "pids.max": "256"}
    paths = leaves.leaf_paths(spawner, placed)
    assert paths["memory_cgroup"] == str(tmp_path / "memory" / leaf)
    assert not leaves.leaf_runs(spawner, placed)
    (tmp_path / "memory" / leaf / "cgroup.procs").write_text("4242\n")
    assert leaves.leaf_runs(spawner, placed)
