"""The hub's capacity check for placed kernels, its book of placements, a kernel's env."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from studiohub import placement as placements
from studiohub.catalog import Image, Size
from studiohub.placement import (
    Host,
    Placement,
    PlacementBook,
    capacity,
    limits_env,
    unavailable_reason,
)

GIB = 1024**3
MIB = 1024**2

BASE = Image("base", "Base Python", "Python", "3.11", "cpu", (), "studiohub/base:1")
TORCH_GPU = Image("pytorch-gpu", "PyTorch", "PyTorch", "2.13", "gpu", (), "studiohub/pt:1")
SMALL = Size("small", "1 vCPU + 2 GiB", cpus=1, memory=2 * GIB)
GPU = Size("gpu", "4 vCPU + 16 GiB + 1 GPU", cpus=4, memory=16 * GIB, gpus=1)
HOST = Host(cpus=8, memory=32 * GIB, gpus=2)


def reason(image: Image, size: Size, host: Host = HOST, reserved: int = 0, free_gpus: int = 2,
           overcommit: float = 1.0) -> str | None:
    return unavailable_reason(image, size, host, reserved_memory=reserved, free_gpus=free_gpus,
                              overcommit=overcommit)


def placement(kernel_id: str, user: str = "ada", memory: int = 2 * GIB,
              gpus: tuple[str, ...] = ()) -> Placement:
    return Placement(user, kernel_id, f"{user}-cg", "base", "small", 1.0, memory, gpus)


# --- unavailable_reason -------------------------------------------------------------------


def test_a_size_that_fits_is_available() -> None:
    assert reason(BASE, SMALL) is None
    assert reason(TORCH_GPU, GPU) is None


def test_gpu_image_needs_a_gpu_size() -> None:
    assert reason(TORCH_GPU, SMALL) == "PyTorch 2.13 · GPU needs a GPU size"


def test_size_that_does_not_list_the_image() -> None:
    only_torch = Size("t", "T", cpus=1, memory=GIB, images=("pytorch*",))
    assert reason(BASE, only_torch) == "size t does not run Base Python 3.11 · CPU"


def test_more_cpus_than_the_machine_has() -> None:
    assert reason(BASE, SMALL, Host(cpus=0, memory=32 * GIB, gpus=0)) == \
        "needs 1 vCPU; this machine has 0"
    half = Size("half", "0.5", cpus=0.5, memory=GIB)
    assert reason(BASE, half, Host(cpus=1, memory=32 * GIB, gpus=0)) is None


def test_more_memory_than_the_machine_has_rounds_the_amount() -> None:
    host = Host(cpus=8, memory=int(1.54 * GIB), gpus=0)
    assert reason(BASE, SMALL, host) == "needs 2 GiB; this machine has 1.5 GiB"


def test_overcommit_scales_the_machine_s_memory() -> None:
    host = Host(cpus=8, memory=GIB, gpus=0)
    assert reason(BASE, SMALL, host) == "needs 2 GiB; this machine has 1 GiB"
    assert reason(BASE, SMALL, host, overcommit=2.0) is None
    assert reason(BASE, SMALL, host, overcommit=1.5) == "needs 2 GiB; this machine has 1.5 GiB"


def test_memory_held_by_servers_and_kernels() -> None:
    held = 31 * GIB
    assert reason(BASE, SMALL, reserved=held) == (
        "needs 2 GiB; only 1 GiB of this machine's memory is free (running servers and "
        "kernels hold the rest)")
    assert reason(BASE, SMALL, reserved=30 * GIB) is None  # exactly fits
    # Reserved beyond the total (overcommitted before) is "nothing free", not negative.
    assert str(reason(BASE, SMALL, reserved=40 * GIB)).startswith("needs 2 GiB; only 0 B of")


def test_gpus_the_machine_lacks_or_that_are_in_use() -> None:
    two = Size("two", "2 GPU", cpus=1, memory=GIB, gpus=2)
    assert reason(TORCH_GPU, GPU, Host(8, 32 * GIB, 0), free_gpus=0) == \
        "needs 1 GPU; this machine has no GPU"
    assert reason(TORCH_GPU, two, Host(8, 32 * GIB, 1), free_gpus=1) == \
        "needs 2 GPU; this machine has 1 GPU"
    assert reason(TORCH_GPU, GPU, free_gpus=0) == "needs 1 GPU; 0 free now (others are in use)"
    assert reason(TORCH_GPU, two, free_gpus=1) == "needs 2 GPU; 1 free now (others are in use)"


def test_cpu_sizes_do_not_need_free_gpus() -> None:
    assert reason(BASE, SMALL, Host(8, 32 * GIB, 0), free_gpus=0) is None


# --- Host ---------------------------------------------------------------------------------


def test_host_reads_total_memory_from_meminfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity.os, "cpu_count", lambda: 6)
    meminfo = "MemTotal:       24576000 kB\nMemFree:         1000 kB\nSwapTotal: 0 kB\n"
    assert Host.detect(1, meminfo) == Host(cpus=6, memory=24576000 * 1024, gpus=1)


def test_host_without_meminfo_has_no_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity.os, "cpu_count", lambda: None)
    assert Host.detect(0, "") == Host(cpus=1, memory=0, gpus=0)
    assert Host.detect(0, "garbage\nno colon here\n") == Host(cpus=1, memory=0, gpus=0)


def test_host_detects_this_machine() -> None:
    """Exactly this machine's MemTotal and CPU count: what every capacity check divides."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    mem_total = int(fields["MemTotal"].split()[0]) * 1024
    host = Host.detect(3)
    assert host == Host(cpus=os.cpu_count() or 1, memory=mem_total, gpus=3)
    assert host.memory > 64 * MIB


# --- PlacementBook ------------------------------------------------------------------------


def test_book_adds_removes_and_counts_memory(tmp_path: Path) -> None:
    book = PlacementBook(tmp_path / "state" / "placements.json")
    assert book.all() == [] and book.reserved_memory() == 0
    book.add(placement("k1", memory=2 * GIB))
    book.add(placement("k2", memory=1 * GIB))
    book.add(placement("k3", user="bob", memory=4 * GIB))
    assert book.reserved_memory() == 7 * GIB
    assert book.reserved_memory(excluding=["k1", "nope"]) == 5 * GIB
    assert [p.kernel_id for p in book.of_user("ada")] == ["k1", "k2"]
    assert book.get("k2") == placement("k2", memory=GIB)
    assert book.remove("k2") == placement("k2", memory=GIB)
    assert book.remove("k2") is None
    assert book.get("k2") is None and book.reserved_memory() == 6 * GIB


def test_book_re_adding_a_kernel_replaces_its_placement(tmp_path: Path) -> None:
    book = PlacementBook(tmp_path / "placements.json")
    book.add(placement("k1", memory=2 * GIB))
    book.add(placement("k1", memory=4 * GIB))
    assert book.reserved_memory() == 4 * GIB and len(book.all()) == 1


def test_remove_user_forgets_only_theirs(tmp_path: Path) -> None:
    path = tmp_path / "placements.json"
    book = PlacementBook(path)
    for kernel, user in (("k1", "ada"), ("k2", "bob"), ("k3", "ada")):
        book.add(placement(kernel, user=user))
    assert sorted(p.kernel_id for p in book.remove_user("ada")) == ["k1", "k3"]
    assert [p.kernel_id for p in book.all()] == ["k2"]
    assert book.remove_user("ada") == []
    assert [row["kernel_id"] for row in json.loads(path.read_text())] == ["k2"]


def test_book_survives_a_hub_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "placements.json"
    book = PlacementBook(path)
    gpu_kernel = placement("k1", memory=16 * GIB, gpus=("GPU-a", "GPU-b"))
    book.add(gpu_kernel)
    book.add(placement("k2"))
    book.remove("k2")
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert not path.with_suffix(".tmp").exists()
    again = PlacementBook(path)
    assert again.all() == [gpu_kernel]
    reloaded = again.get("k1")
    assert reloaded is not None and reloaded.gpus == ("GPU-a", "GPU-b")
    assert again.reserved_memory() == 16 * GIB


@pytest.mark.parametrize("text", ["", "not json", "{\"a\": 1}", "null"])
def test_book_starts_empty_from_a_missing_or_garbled_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "placements.json"
    if text:
        path.write_text(text)
    assert PlacementBook(path).all() == []


def test_book_skips_rows_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "placements.json"
    good = {"user": "ada", "kernel_id": "k1", "cgroup": "", "image": "base", "size": "small",
            "cpus": 1.0, "memory": GIB, "gpus": []}
    path.write_text(json.dumps([good, {"user": "ada"}, {**good, "kernel_id": "k2",
                                                        "colour": "blue"}]))
    assert [p.kernel_id for p in PlacementBook(path).all()] == ["k1"]


def test_one_book_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "placements.json"
    assert placements.book(path) is placements.book(str(path))
    assert placements.book(path) is not placements.book(tmp_path / "other.json")


# --- what a placed kernel gets ------------------------------------------------------------


def test_placement_leaf_and_gpu_holder() -> None:
    p = placement("0d3c")
    assert p.leaf == "k-0d3c" == placements.kernel_leaf("0d3c")
    assert p.gpu_holder == "ada/kernel/0d3c"


def test_limits_env_of_a_gpu_kernel() -> None:
    p = Placement("ada", "k1", "cg", "pytorch-gpu", "gpu", 4.0, 16 * GIB, ("GPU-a", "GPU-b"))
    assert limits_env(p, {"size_label": "4 vCPU + 16 GiB + 1 GPU"}) == {
        "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b",
        "STUDIOHUB_KERNEL_IMAGE": "pytorch-gpu",
        "STUDIOHUB_KERNEL_SIZE": "gpu",
        "STUDIOHUB_KERNEL_SIZE_LABEL": "4 vCPU + 16 GiB + 1 GPU",
        "STUDIOHUB_KERNEL_CPU_LIMIT": "4",
        "STUDIOHUB_KERNEL_MEM_LIMIT": str(16 * GIB),
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
        "OPENBLAS_NUM_THREADS": "4",
    }


def test_limits_env_of_a_fractional_cpu_kernel_without_gpus() -> None:
    p = Placement("ada", "k1", "cg", "base", "half", 0.5, GIB)
    env = limits_env(p, {})
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # no GPU visible, not "all of them"
    assert env["STUDIOHUB_KERNEL_CPU_LIMIT"] == "0.5"
    assert env["STUDIOHUB_KERNEL_SIZE_LABEL"] == "half"  # no label: the size id
    assert {env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} \
        == {"1"}


def test_describe_uses_catalog_labels_when_known() -> None:
    p = Placement("ada", "k1", "cg", "base", "small", 1.0, 2 * GIB, ("GPU-a",))
    assert placements.describe(p, BASE, SMALL) == {
        "kernel_id": "k1", "image": "base", "size": "small",
        "image_label": "Base Python 3.11 · CPU", "size_label": "1 vCPU + 2 GiB",
        "limits": {"cpus": 1.0, "memory": 2 * GIB, "gpus": 1},
        "cuda_visible_devices": "GPU-a"}
    gone = placements.describe(p, None, None)  # removed from the catalog since
    assert (gone["image_label"], gone["size_label"]) == ("base", "small")
