"""Why a kernel last died, so the user is told instead of seeing a bare restart.

The server runs inside its size's cgroup (see ``studiohub.cgroups``). When a kernel
dies, its restarter calls us; if the cgroup's OOM-kill counter went up since we last
looked, the kernel was stopped for memory and the message names the size's limit.

A kernel that never started is forgotten before the server shuts down
(:func:`forget_failed_starts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from studiohub.cgroups import (
    OomCounters,
    oom_message,
    oom_message_from_env,
    own_oom_counters,
    read_oom,
)

from .choices import ChoiceBook


class KernelExits:
    """Watches the server's kernels and records the reason of each one's last death."""

    def __init__(self, kernel_manager: Any,
                 read_counters: Callable[[], OomCounters | None] = own_oom_counters,
                 oom_message: Callable[[], str] = oom_message_from_env,
                 release: Callable[[str], Awaitable[None]] | None = None,
                 book: ChoiceBook | None = None) -> None:
        self.kernel_manager = kernel_manager
        self.read_counters, self.oom_message = read_counters, oom_message
        self.book = ChoiceBook() if book is None else book
        if release is None:
            from .provisioner import release_placement

            release = partial(release_placement, self.book)
        self.release: Callable[[str], Awaitable[None]] = release
        self.exits: dict[str, dict[str, Any]] = {}
        self._watched: set[str] = set()
        self._counters = read_counters()
        self._leaf_counters: dict[str, OomCounters] = {}

    def watch_new_kernels(self) -> None:
        """Register restart callbacks on kernels started since the last call."""
        current = set(self.kernel_manager.list_kernel_ids())
        for kernel_id in current - self._watched:
            self.kernel_manager.add_restart_callback(
                kernel_id, partial(self.kernel_died, kernel_id), "restart")
            self.kernel_manager.add_restart_callback(
                kernel_id, partial(self.kernel_gone, kernel_id), "dead")
        self._watched = current

    def kernel_gone(self, kernel_id: str) -> None:
        """The restarter gave up (e.g. killed for memory again and again).

        jupyter_server then forgets the kernel without cleaning up its provisioner, so a
        placed kernel's size is given back here, not when the server stops.
        """
        self.kernel_died(kernel_id)
        if kernel_id in self.book.placed:
            self._releasing = asyncio.ensure_future(self.release(kernel_id))

    def kernel_died(self, kernel_id: str) -> None:
        placement = self.book.placed.get(kernel_id)
        if placement and placement.get("memory_cgroup"):
            oom = self._placed_oom(kernel_id, placement)
            message = oom_message(placement["limits"]["memory"], placement["size"],
                                  placement["size_label"])
        else:
            counters = self.read_counters()
            oom = bool(counters and self._counters and counters.kills > self._counters.kills)
            self._counters = counters
            message = self.oom_message()
        if oom:
            reason = "oom"
        else:
            reason, message = "died", ("the kernel stopped unexpectedly (not for memory): "
                                       "check the server log, then restart the kernel")
        self.exits[kernel_id] = {"reason": reason, "message": message,
                                 "time": datetime.now(UTC).isoformat()}

    def _placed_oom(self, kernel_id: str, placement: dict[str, Any]) -> bool:
        """A placed kernel has a leaf of its own: its kill counter went up."""
        counters = read_oom(Path(placement["memory_cgroup"]), placement["cgroup_version"])
        before = self._leaf_counters.get(kernel_id, OomCounters(0, 0))
        self._leaf_counters[kernel_id] = counters
        return counters.kills > before.kills

    def report(self, kernel_id: str) -> dict[str, Any] | None:
        """``{id, last_exit}`` for a kernel of this server, None for an unknown id."""
        self.watch_new_kernels()
        if kernel_id not in self._watched and kernel_id not in self.exits:
            return None
        return {"id": kernel_id, "last_exit": self.exits.get(kernel_id)}


def forget_failed_starts(kernel_manager: Any) -> list[str]:
    """Drop the kernels whose start failed from jupyter_client's pending table.

    jupyter_client (8.10) logs a failed start but leaves the kernel's id pending
    forever; at shutdown ``shutdown_all`` then asks jupyter_server to shut that id down,
    which raises 404 and aborts the server's exit: it runs on until it is killed. Each
    refused switch is such a failed start. Returns the ids forgotten.
    """
    pending: dict[str, asyncio.Future[Any]] = getattr(kernel_manager, "_pending_kernels", {})
    failed = [kernel_id for kernel_id, task in pending.items()
              if task.done() and kernel_id not in kernel_manager]
    for kernel_id in failed:
        del pending[kernel_id]
    return failed
