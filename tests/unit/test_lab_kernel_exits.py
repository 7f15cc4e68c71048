"""A dead kernel is explained: OOM when the server cgroup's kill counter rose, else not;
a kernel that never started does not block the server's shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from studiohub.cgroups import OomCounters
from studiohub_lab.switching.kernels import KernelExits, forget_failed_starts


class Kernels:
    """The two MappingKernelManager calls KernelExits uses."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.callbacks: dict[tuple[str, str], Callable[[], None]] = {}

    def list_kernel_ids(self) -> list[str]:
        return list(self.ids)

    def add_restart_callback(self, kernel_id: str, callback: Callable[[], None],
                             event: str) -> None:
        self.callbacks[kernel_id, event] = callback


def test_oom_kill_is_reported_with_the_size_message() -> None:
    counters = [OomCounters(kills=0, limit_hits=0)]
    kernels = Kernels()
    exits = KernelExits(kernels, lambda: counters[-1], lambda: "past the 512 MiB limit")
    kernels.ids.append("k1")
    assert exits.report("k1") == {"id": "k1", "last_exit": None}
    counters.append(OomCounters(kills=1, limit_hits=3))
    kernels.callbacks["k1", "restart"]()
    report = exits.report("k1")
    assert report is not None and report["last_exit"]["reason"] == "oom"
    assert report["last_exit"]["message"] == "past the 512 MiB limit"


def test_death_without_new_kills_is_not_blamed_on_memory() -> None:
    kernels = Kernels()
    exits = KernelExits(kernels, lambda: OomCounters(kills=2, limit_hits=0), lambda: "oom")
    kernels.ids.append("k2")
    exits.watch_new_kernels()
    kernels.callbacks["k2", "dead"]()
    report = exits.report("k2")
    assert report is not None and report["last_exit"]["reason"] == "died"


def test_unknown_kernel_is_none_and_no_cgroup_means_no_oom_claim() -> None:
    kernels = Kernels()
    exits = KernelExits(kernels, lambda: None, lambda: "oom")
    assert exits.report("nope") is None
    kernels.ids.append("k3")
    exits.watch_new_kernels()
    kernels.callbacks["k3", "restart"]()
    report = exits.report("k3")
    assert report is not None and report["last_exit"]["reason"] == "died"


def test_a_placed_kernel_that_stays_dead_gives_its_size_back() -> None:
    """jupyter_server drops a kernel whose restarter gave up without cleaning it up."""
    released: list[str] = []

    async def release(kernel_id: str) -> None:
        released.append(kernel_id)

    async def scenario() -> None:
        kernels = Kernels()
        exits = KernelExits(kernels, lambda: None, lambda: "oom", release=release)
        kernels.ids += ["placed", "plain"]
        exits.watch_new_kernels()
        exits.book.placed["placed"] = {"limits": {"memory": 1}, "size": "tiny",
                                       "size_label": "1 vCPU + 512 MiB"}
        try:
            kernels.callbacks["placed", "restart"]()  # restarted: keeps its size
            kernels.callbacks["plain", "dead"]()  # not placed: nothing to give back
            await asyncio.sleep(0)
            assert released == []
            kernels.callbacks["placed", "dead"]()
            await asyncio.sleep(0)
            assert released == ["placed"]
        finally:
            exits.book.placed.pop("placed", None)

    asyncio.run(scenario())


async def test_a_kernel_that_never_started_does_not_stop_the_server_shutting_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jupyter_server's own kernel manager, a kernel whose start fails (as a refused
    switch does): its shutdown of all kernels must not fail on it."""
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    spec = tmp_path / "kernels" / "broken"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp_path / "missing-python"), "-f", "{connection_file}"],
        "display_name": "Broken", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    manager = AsyncMappingKernelManager(root_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        await manager.start_kernel(kernel_name="broken")
    assert manager.list_kernel_ids() == []

    failed = forget_failed_starts(manager)
    assert len(failed) == 1
    await asyncio.wait_for(manager.shutdown_all(), 10)  # the 404 of jupyter_client 8.10
    assert forget_failed_starts(manager) == []
