"""GPU discovery parsing and the allocator's decisions (no GPU needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from studiohub import gpus
from studiohub.gpus import Gpu, GpuAllocator, NoGpuFree

SMI = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5c1f8b3e-aaaa-bbbb-cccc-000000000000)
  MIG 1g.5gb      Device  0: (UUID: MIG-11111111-2222-3333-4444-555555555555)
GPU 1: Tesla T4 (UUID: GPU-9d0e7f6a-aaaa-bbbb-cccc-111111111111)
"""
INFO = """Model: \t\t Tesla T4
IRQ:   \t\t 35
GPU UUID: \t GPU-9d0e7f6a-aaaa-bbbb-cccc-111111111111
Bus Location: \t 0000:00:1e.0
Device Minor: \t 0
"""


def test_parse_nvidia_smi_skips_mig_slices() -> None:
    assert gpus.parse_nvidia_smi(SMI) == [
        Gpu(0, "NVIDIA A100-SXM4-40GB", "GPU-5c1f8b3e-aaaa-bbbb-cccc-000000000000"),
        Gpu(1, "Tesla T4", "GPU-9d0e7f6a-aaaa-bbbb-cccc-111111111111"),
    ]
    assert gpus.parse_nvidia_smi("No devices were found\n") == []


def test_parse_proc_information() -> None:
    assert gpus.parse_proc_information([INFO, "Model: X\n"]) == [
        Gpu(0, "Tesla T4", "GPU-9d0e7f6a-aaaa-bbbb-cccc-111111111111"), Gpu(1, "X", "")]


def fake_run(stdout: str = "", returncode: int = 0, missing: bool = False) -> Any:
    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert cmd == ["nvidia-smi", "-L"]
        if missing:
            raise FileNotFoundError("nvidia-smi")
        return subprocess.CompletedProcess(cmd, returncode, stdout, "")
    return run


def test_discover_prefers_nvidia_smi(tmp_path: Path) -> None:
    assert [g.index for g in gpus.discover_gpus(fake_run(SMI), tmp_path)] == [0, 1]


def test_discover_falls_back_to_proc(tmp_path: Path) -> None:
    for bus, model in (("0000:00:1f.0", "B"), ("0000:00:1e.0", "A")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: {model}\nGPU UUID: GPU-{model}\n")
    found = gpus.discover_gpus(fake_run(missing=True), tmp_path)
    assert found == [Gpu(0, "A", "GPU-A"), Gpu(1, "B", "GPU-B")]  # PCI bus order


def test_discover_without_driver_finds_none(tmp_path: Path) -> None:
    assert gpus.discover_gpus(fake_run(returncode=9), tmp_path / "absent") == []


def test_ids_and_visible_devices() -> None:
    listed = gpus.gpus_from_ids(["GPU-a", "3"])
    assert listed == [Gpu(0, "GPU", "GPU-a"), Gpu(3, "GPU")]
    assert gpus.cuda_visible_devices(listed) == "GPU-a,3"
    assert gpus.cuda_visible_devices([]) == ""
    assert str(Gpu(1, "Tesla T4", "GPU-x")) == "GPU 1: Tesla T4 (GPU-x)"


def two() -> GpuAllocator:
    return GpuAllocator(gpus.gpus_from_ids(["GPU-a", "GPU-b"]))


def test_allocation_never_shares_a_gpu() -> None:
    alloc = two()
    assert [g.id for g in alloc.allocate("alice", 1)] == ["GPU-a"]
    assert [g.id for g in alloc.allocate("bob", 1)] == ["GPU-b"]
    with pytest.raises(NoGpuFree) as e:
        alloc.allocate("carol", 1)
    assert str(e.value) == ("no GPU free: 2 of 2 in use by alice, bob; choose a CPU size or "
                            "try later")
    assert alloc.free("alice") == [Gpu(0, "GPU", "GPU-a")]
    assert [g.id for g in alloc.allocate("carol", 1)] == ["GPU-a"]


def test_a_cpu_size_takes_nothing() -> None:
    alloc = two()
    assert alloc.allocate("alice", 0) == []
    assert len(alloc.free_gpus()) == 2


def test_not_enough_for_a_two_gpu_size() -> None:
    alloc = two()
    alloc.allocate("alice", 1)
    with pytest.raises(NoGpuFree, match=r"not enough GPUs free for this size \(2 needed\): "
                                        r"1 of 2 in use by alice"):
        alloc.allocate("bob", 2)
    assert alloc.held_by("bob") == []  # a refusal takes nothing


def test_more_than_the_host_has() -> None:
    with pytest.raises(NoGpuFree, match=r"needs 1 GPU.* this host has 0"):
        GpuAllocator([]).allocate("alice", 1)


def test_allocating_again_replaces_what_the_holder_had() -> None:
    alloc = two()
    alloc.allocate("alice", 1)
    assert [g.id for g in alloc.allocate("alice", 2)] == ["GPU-a", "GPU-b"]
    assert alloc.free("alice") and alloc.free_gpus() == alloc.gpus


def test_reserve_after_a_hub_restart() -> None:
    alloc = two()
    reserved, problems = alloc.reserve("alice", ["GPU-b"])
    assert [g.id for g in reserved] == ["GPU-b"] and problems == []
    assert [g.id for g in alloc.allocate("bob", 1)] == ["GPU-a"]
    reserved, problems = alloc.reserve("carol", ["GPU-a", "GPU-gone"])
    assert reserved == []
    assert problems == ["GPU GPU-a is already held by bob",
                        "GPU GPU-gone is no longer on this host"]


def test_shared_allocator_is_one_per_hub() -> None:
    gpus.reset_shared_allocator()
    try:
        first = gpus.shared_allocator(gpus.gpus_from_ids(["GPU-a"]))
        assert gpus.shared_allocator() is first
    finally:
        gpus.reset_shared_allocator()


def test_a_replacing_kernel_takes_over_the_gpus_of_the_one_it_replaces() -> None:
    """Switching between two GPU choices on a full machine: the old kernel's GPU passes on."""
    alloc = two()
    alloc.allocate("alice/kernel/old", 1)
    alloc.allocate("bob", 1)
    with pytest.raises(NoGpuFree):
        alloc.allocate("alice/kernel/new", 1)
    taken = alloc.allocate("alice/kernel/new", 1, takeover=["alice/kernel/old"])
    assert [g.id for g in taken] == ["GPU-a"]
    assert alloc.held_by("alice/kernel/old") == []
    assert alloc.free("alice/kernel/old") == []  # the old kernel's release frees nothing
    assert [g.id for g in alloc.held_by("bob")] == ["GPU-b"]  # nobody else's GPU moves
    with pytest.raises(NoGpuFree):
        alloc.allocate("alice/kernel/other", 1, takeover=["carol"])
