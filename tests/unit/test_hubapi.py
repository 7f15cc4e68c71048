"""The hub's placement bookkeeping without a hub: GPUs taken over by a switch."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from studiohub.gpus import GpuAllocator, NoGpuFree, gpus_from_ids
from studiohub.placement import Placement, PlacementBook, release

GIB = 1024**3


def placed(kernel_id: str, gpu_ids: list[str]) -> Placement:
    return Placement("alice", kernel_id, "", "pytorch-gpu", "gpu-medium", 4, 16 * GIB,
                     tuple(gpu_ids))


def test_a_taken_over_gpu_goes_back_when_the_new_kernel_goes_first(tmp_path: Path) -> None:
    allocator = GpuAllocator(gpus_from_ids(["GPU-a", "GPU-b"]))
    spawner = SimpleNamespace(allocator=allocator)
    book = PlacementBook(tmp_path / "placements.json")
    old = placed("k1", [g.id for g in allocator.allocate("alice/kernel/k1", 1)])
    book.add(old)
    allocator.allocate("bob", 1)
    taken = allocator.allocate("alice/kernel/k2", 1, takeover=[old.gpu_holder])
    new = placed("k2", [g.id for g in taken])
    book.add(new)
    assert new.gpus == old.gpus == ("GPU-a",)

    release(spawner, book, new)  # the switch failed, or k2 stopped while k1 runs
    assert [g.id for g in allocator.held_by(old.gpu_holder)] == ["GPU-a"]
    with pytest.raises(NoGpuFree):  # never free for someone else while k1 uses it
        allocator.allocate("carol", 1)

    release(spawner, book, old)
    assert [g.id for g in allocator.free_gpus()] == ["GPU-a"]
    assert book.all() == []


def test_the_replaced_kernel_going_first_leaves_the_gpu_with_the_new_one(tmp_path: Path
                                                                          ) -> None:
    allocator = GpuAllocator(gpus_from_ids(["GPU-a"]))
    spawner = SimpleNamespace(allocator=allocator)
    book = PlacementBook(tmp_path / "placements.json")
    old = placed("k1", [g.id for g in allocator.allocate("alice/kernel/k1", 1)])
    book.add(old)
    new = placed("k2", [g.id for g in allocator.allocate("alice/kernel/k2", 1,
                                                         takeover=[old.gpu_holder])])
    book.add(new)
    release(spawner, book, old)  # the usual order: the old kernel is shut down
    assert [g.id for g in allocator.held_by(new.gpu_holder)] == ["GPU-a"]
