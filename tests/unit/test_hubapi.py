"""The hub API without a hub: placement bookkeeping (GPUs taken over by a switch), bodies."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from studiohub.gpus import GpuAllocator, NoGpuFree, gpus_from_ids
from studiohub.hubapi import MAX_BODY, PENDING_WORDS, parse_body, parse_check
from studiohub.placement import Placement, PlacementBook, Refused, release

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


# --- request bodies ---------------------------------------------------------------------


def test_a_body_nested_too_deeply_is_a_400_not_a_500() -> None:
    for raw in (b"[" * 100_000, b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        with pytest.raises(Refused) as refused:
            parse_body(raw, {"image"}, limit=1_000_000)
        assert refused.value.status == 400
        assert refused.value.message in ("request body is nested too deeply: send a flat "
                                         "JSON object", "request body must be a JSON object")
    with pytest.raises(Refused, match="nested too deeply"):
        parse_body(b"[" * 100_000, {"image"}, limit=1_000_000)


def test_a_body_past_the_bound_is_a_413_before_it_is_read() -> None:
    body = json.dumps({"image": "x" * MAX_BODY}).encode()
    with pytest.raises(Refused) as refused:
        parse_body(body, {"image"})
    assert refused.value.status == 413
    assert refused.value.message == (f"request body of {len(body)} bytes is too large: at "
                                     f"most {MAX_BODY} bytes")


def test_bad_bodies_are_named_and_quoted_short() -> None:
    with pytest.raises(Refused, match="not valid JSON"):
        parse_body(b"{", {"image"})
    with pytest.raises(Refused, match="must be a JSON object"):
        parse_body(b"[]", {"image"})
    with pytest.raises(Refused) as refused:
        parse_body(json.dumps({"y" * 5000: 1}).encode(), {"image", "size"})
    assert refused.value.message.startswith("unknown field(s) 'yyyy")
    assert len(refused.value.message) < 160
    assert parse_body(b"", {"image"}) == {}
    assert parse_body(b'{"image": "base"}', {"image"}) == {"image": "base"}


def test_check_must_be_a_boolean() -> None:
    assert parse_check({"check": True}) is True and parse_check({}) is False
    with pytest.raises(Refused, match=r"check: true .* or false, not 'yes'"):
        parse_check({"check": "yes"})


def test_a_pending_server_is_named_in_words() -> None:
    assert PENDING_WORDS["stop"] == "stopping" and PENDING_WORDS["spawn"] == "starting"
