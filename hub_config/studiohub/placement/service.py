"""Where things run: the decisions of placing and releasing, for every kind of holder.

One :class:`Placer` per book (state file) decides whether a choice may be placed (the
catalog's verdict, the user's own bounds, this machine's room: one wording of each
refusal), records the placement, gives it GPUs from the hub-wide allocator and has
:mod:`.leaves` make its cgroup leaf. Kernels are its first holders; a job or an
endpoint replica is placed through the same :meth:`Placer.place` with another ``kind``.

A placement stays *pending* until its process is seen (in its cgroup leaf, or, where
limits are not enforced, a process of the user's account running that kernel); a
pending placement older than the spawner's ``placement_pending_timeout`` is released,
by a periodic sweep and before every capacity check. So a request cannot keep memory
or GPUs for a kernel that never starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import gpus
from ..catalog import Catalog, Choice, ChoiceError, quote_value
from ..envs import kernel_registered
from . import leaves
from .book import KERNEL, Placement, PlacementBook
from .capacity import (
    Host,
    Refused,
    count_reason,
    refusal,
    unavailable_reason,
    user_bound_reason,
    user_memory_bound,
)

#: Seconds between sweeps of pending placements.
SWEEP_INTERVAL = 2.0
DEFAULT_PENDING_TIMEOUT = 10.0


def choose(spawner: Any, image: Any, size: Any) -> Choice:
    """The catalog's verdict on ``{image, size}`` for the spawner's user (400 if refused)."""
    missing = [k for k, v in (("image", image), ("size", size)) if not isinstance(v, str)]
    if missing:
        raise Refused(400, f"{' and '.join(missing)} required: give the image and the size "
                           "by id")
    try:
        choice: Choice = spawner.catalog.choose(spawner.groups, {"image": image, "size": size},
                                                note=getattr(spawner, "choice_note", None))
    except ChoiceError as e:
        raise Refused(400, str(e)) from None
    return choice


def server_memory(spawner: Any) -> int:
    """The memory a running server's size holds (0 when unknown)."""
    choice = getattr(spawner, "choice", None)
    if choice is not None:
        return int(choice.size.memory)
    size_id = (getattr(spawner, "user_options", None) or {}).get("size")
    catalog: Catalog | None = getattr(spawner, "catalog", None)
    size = catalog.sizes.get(size_id) if catalog and isinstance(size_id, str) else None
    return size.memory if size else 0


def give_back(allocator: gpus.GpuAllocator, book: PlacementBook,
              freed: Sequence[gpus.Gpu]) -> None:
    """Freed GPUs a booked placement still uses go back to it.

    A switch's new kernel takes over the GPUs of the kernel it replaces; if the new one
    goes first (it failed, or was stopped while the old one still runs), they are the
    old one's again, never free for someone else.
    """
    for other in book.all():
        back = [g.id for g in freed if g.id in other.gpus]
        if back:
            allocator.reserve(other.gpu_holder, back)


def release(spawner: Any, book: PlacementBook, placement: Placement) -> None:
    """Kill what is left in the placement's leaf, remove it, free its GPUs, forget it."""
    leaves.remove_leaf(spawner, placement)
    book.remove(placement.id, placement.kind)
    give_back(spawner.allocator, book, spawner.allocator.free(placement.gpu_holder))


@dataclass
class Placer:
    """The decisions about one book; ``servers`` lists the hub's spawners (users' servers)."""

    book: PlacementBook
    servers: Callable[[], Iterable[tuple[str, str, Any]]] = lambda: ()
    clock: Callable[[], float] = time.time
    _sweeper: Any = None

    # --- what is held ---------------------------------------------------------------------

    def reserved_memory(self, excluding: Sequence[str] = (), server_of: str = "") -> int:
        """Memory held by running servers (their size) and placements.

        ``excluding``: placements being replaced; ``server_of``: a user whose server is
        being restarted (its size is freed too).
        """
        held = self.book.reserved_memory(excluding=excluding)
        for user, name, spawner in self.servers():
            if spawner.active and not (user == server_of and name == ""):
                held += server_memory(spawner)
        return held

    def reason(self, spawner: Any, image: Any, size: Any, excluding: Sequence[str] = (),
               server_of: str = "") -> str | None:
        """Why ``size`` cannot run ``image`` now, counting what is being replaced as free."""
        if not kernel_registered(image.id):
            return (f"{image.label} is not built on this machine: ask an administrator to "
                    f"run `studiohub env build {image.id}`")
        holders = [p.gpu_holder for p in map(self.book.get, excluding) if p]
        if server_of:
            holders.append(spawner.gpu_holder)
        # What those holders hold now (a GPU taken over by a switch is counted once).
        freed_gpus = len({g.id for h in holders for g in spawner.allocator.held_by(h)})
        return unavailable_reason(
            image, size, host_of(spawner),
            reserved_memory=self.reserved_memory(excluding, server_of),
            free_gpus=len(spawner.allocator.free_gpus()) + freed_gpus,
            overcommit=float(getattr(spawner, "memory_overcommit", 1.0)))

    def require_room(self, spawner: Any, choice: Choice, excluding: Sequence[str] = (),
                     server_of: str = "") -> None:
        """A 409 (:class:`Refused`) saying why, when this machine cannot run the choice now."""
        self.sweep()
        why = self.reason(spawner, choice.image, choice.size, excluding, server_of)
        if why:
            raise refusal(choice.image, choice.size, why)

    def own(self, user: str, holder_id: Any, kind: str = KERNEL) -> list[str]:
        """``[holder_id]`` if it is a placement of this user (its size is being freed)."""
        placement = self.book.get(str(holder_id or ""), kind)
        return [placement.id] if placement and placement.user == user else []

    def user_bound(self, spawner: Any) -> int:
        """Most memory the spawner's user may hold in placements (see capacity)."""
        catalog: Catalog = spawner.catalog
        host = host_of(spawner)
        overcommit = float(getattr(spawner, "memory_overcommit", 1.0))
        fitting = [s for s in catalog.allowed_sizes(spawner.groups)
                   if s.memory <= host.memory * overcommit]
        return user_memory_bound(fitting, host, overcommit,
                                 int(getattr(spawner, "max_placed_memory", 0) or 0))

    # --- placing --------------------------------------------------------------------------

    def check(self, spawner: Any, user: str, holder_id: str | None, choice: Choice,
              replaces: Any = None, kind: str = KERNEL) -> tuple[Placement | None, list[str]]:
        """Every refusal placing would meet, before anything changes.

        Returns the holder's current placement when it is kept as it is (a restart on
        the same image and size), and the ids of this user's placements being replaced.
        """
        existing = self.book.get(holder_id, kind) if holder_id else None
        if existing is not None and existing.user != user:
            # As for an id that was never placed: another user's ids are not confirmed.
            raise Refused(404, f"no placed {kind} {quote_value(holder_id)} of {user}")
        if existing is not None and (existing.image, existing.size) == (choice.image.id,
                                                                         choice.size.id):
            return existing, []
        replaced = self.own(user, replaces, kind)
        gone = set(replaced) | ({existing.id} if existing else set())
        self.sweep()
        mine = [p for p in self.book.of_user(user, kind) if p.id not in gone]
        most = int(getattr(spawner, "max_placed_kernels", 16))
        why = count_reason(len(mine), most)
        if why:
            raise Refused(409, why)
        self.require_room(spawner, choice, excluding=sorted(gone))
        why = user_bound_reason(choice.size, sum(p.memory for p in mine),
                                self.user_bound(spawner))
        if why:
            raise Refused(409, why)
        return None, replaced

    async def place(self, spawner: Any, user: str, holder_id: str, choice: Choice,
                    replaces: Any = None, kind: str = KERNEL) -> tuple[Placement, bool]:
        """Place ``holder_id`` on ``choice``: (its placement, whether it is new).

        Raises :class:`Refused` (nothing changed) when it may not be placed.
        """
        kept, replaced = self.check(spawner, user, holder_id, choice, replaces, kind)
        if kept is not None:
            return kept, False  # a restart: same leaf
        existing = self.book.get(holder_id, kind)
        if existing is not None:
            await asyncio.to_thread(release, spawner, self.book, existing)
        holder = f"{user}/{kind}/{holder_id}"
        # What is being replaced stops once this one starts: its GPUs may be taken over.
        takeover = [p.gpu_holder for p in (self.book.get(r, kind) for r in replaced) if p]
        try:
            held = spawner.allocator.allocate(holder, choice.size.gpus, takeover=takeover)
        except gpus.NoGpuFree as e:
            raise Refused(409, str(e)) from None
        placement = Placement(user, holder_id, spawner.cgroup, choice.image.id, choice.size.id,
                              choice.size.cpus, choice.size.memory,
                              tuple(g.id for g in held), kind, since=self.clock())
        self.book.add(placement)  # before any await: a concurrent placement counts it
        try:
            await asyncio.to_thread(leaves.make_leaf, spawner, placement)
        except OSError:
            self.book.remove(holder_id, kind)
            give_back(spawner.allocator, self.book, spawner.allocator.free(holder))
            raise
        return placement, True

    def release(self, spawner: Any | None, placement: Placement) -> None:
        """Give a placement's leaf, memory and GPUs back (its server may be gone)."""
        if spawner is None:
            self.book.remove(placement.id, placement.kind)
            gpus.shared_allocator().free(placement.gpu_holder)
            return
        release(spawner, self.book, placement)

    # --- pending placements -----------------------------------------------------------------

    def runs(self, spawner: Any, placement: Placement) -> bool:
        """Whether the placement's process has been seen where it was placed."""
        if placement.cgroup:
            return leaves.leaf_runs(spawner, placement)
        account = getattr(spawner, "account", None)
        return account is not None and leaves.kernel_runs(account.pw_uid, placement.id)

    def sweep(self) -> list[Placement]:
        """Confirm pending placements whose process runs; release those past their time.

        Returns the released ones. A placement whose user's server is gone is released
        too (its cgroup went with the server).
        """
        spawners = {user: spawner for user, name, spawner in self.servers() if name == ""}
        released = []
        now = self.clock()
        for placement in self.book.all():
            if placement.confirmed:
                continue
            spawner = spawners.get(placement.user)
            if spawner is not None and spawner.active and self.runs(spawner, placement):
                self.book.confirm(placement)
                continue
            timeout = float(getattr(spawner, "placement_pending_timeout",
                                    DEFAULT_PENDING_TIMEOUT))
            if now - placement.since > timeout:
                with contextlib.suppress(OSError):
                    self.release(spawner if spawner is not None and spawner.active else None,
                                 placement)
                released.append(placement)
        return released

    def start_sweeping(self, interval: float = SWEEP_INTERVAL) -> None:
        """Sweep every ``interval`` seconds in this event loop (once per placer)."""
        if self._sweeper is not None:
            return
        from tornado.ioloop import PeriodicCallback

        self._sweeper = PeriodicCallback(self._sweep_logged, interval * 1000)
        self._sweeper.start()

    def _sweep_logged(self) -> None:
        import logging

        log = logging.getLogger("JupyterHub")
        try:
            for p in self.sweep():
                log.info("Released the placement of %s %s of %s: its process was not seen "
                         "within the pending timeout", p.kind, p.id, p.user)
        except Exception:  # a sweep must never stop the periodic check
            log.exception("Sweeping pending placements failed")


def host_of(spawner: Any) -> Host:
    return Host.detect(len(spawner.allocator.gpus))


_placers: dict[Path, Placer] = {}


def placer(path: str | Path,
           servers: Callable[[], Iterable[tuple[str, str, Any]]] | None = None) -> Placer:
    """The hub's one placer (and book) per state file; ``servers`` is set once known."""
    key = Path(path)
    if key not in _placers:
        _placers[key] = Placer(PlacementBook(key))
    found = _placers[key]
    if servers is not None:
        found.servers = servers
    return found


def servers_of(users: Mapping[str, Any]) -> Callable[[], list[tuple[str, str, Any]]]:
    """The hub's users' spawners as ``(user, server name, spawner)``."""
    def servers() -> list[tuple[str, str, Any]]:
        return [(user.name, name, spawner) for user in list(users.values())
                for name, spawner in list(user.spawners.items())]
    return servers
