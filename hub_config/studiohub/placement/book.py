"""The book of placements: what the hub has reserved, for whom, on which size.

A :class:`Placement` is keyed by its kind and id (a kernel id today; a job or endpoint
replica next), so every kind of workload is counted in the same book and by the same
capacity check. A placement is *pending* until the hub has seen its process run
(:mod:`.service` confirms it, or releases it once ``pending_timeout`` has passed): a
request can never reserve memory for something that does not start. The book is saved
to a JSON file in the state directory (0600) on each change, so a restarted hub still
counts what runs.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import contract
from ..catalog import Image, Size

KERNEL = "kernel"


@dataclass(frozen=True)
class Placement:
    """One reservation: whose, which kind and id, which server cgroup, image, size, GPUs.

    ``since``: when it was made (``time.time()``); ``confirmed``: its process was seen.
    """

    user: str
    id: str
    cgroup: str  # the server's cgroup name ("" where limits are not enforced)
    image: str
    size: str
    cpus: float
    memory: int
    gpus: tuple[str, ...] = ()
    kind: str = KERNEL
    since: float = 0.0
    confirmed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)

    @property
    def kernel_id(self) -> str:
        """The id, for a kernel's placement (the name callers of the kernels API use)."""
        return self.id

    @property
    def leaf(self) -> str:
        return leaf_name(self.id, self.kind)

    @property
    def gpu_holder(self) -> str:
        return f"{self.user}/{self.kind}/{self.id}"


def leaf_name(holder_id: str, kind: str = KERNEL) -> str:
    """Name of a placement's cgroup leaf: ``k-<kernel id>``, ``<kind initial>-<id>``."""
    return f"{kind[0]}-{holder_id}"


def kernel_leaf(kernel_id: str) -> str:
    """Name of a placed kernel's cgroup leaf."""
    return leaf_name(kernel_id, KERNEL)


def _to_row(placement: Placement) -> dict[str, Any]:
    """A placement as saved: its id under ``<kind>_id`` (``kernel_id``, ``job_id``…)."""
    row = asdict(placement)
    row[f"{placement.kind}_id"] = row.pop("id")
    return row


def _from_row(row: Any) -> Placement | None:
    """A saved row, or None (rows written before kinds existed are kernels')."""
    if not isinstance(row, dict):
        return None
    row = dict(row)
    key = f"{row.get('kind', KERNEL)}_id"
    if key in row and "id" not in row:
        row["id"] = row.pop(key)
    try:
        return Placement(**{**row, "gpus": tuple(row.get("gpus", ()))})
    except TypeError:
        return None


class PlacementBook:
    """Every placement of this hub, saved to ``path`` on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._placements: dict[tuple[str, str], Placement] = {}
        self._load()

    def _load(self) -> None:
        try:
            rows = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for row in rows if isinstance(rows, list) else []:
            placement = _from_row(row)
            if placement is not None:
                self._placements[placement.key] = placement

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([_to_row(p) for p in self._placements.values()], f, indent=1)
        os.replace(tmp, self.path)

    # Reads take the lock too: release() and remove_user() change the book from threads.
    def get(self, holder_id: str, kind: str = KERNEL) -> Placement | None:
        with self._lock:
            return self._placements.get((kind, holder_id))

    def all(self) -> list[Placement]:
        with self._lock:
            return list(self._placements.values())

    def of_user(self, user: str, kind: str | None = None) -> list[Placement]:
        return [p for p in self.all() if p.user == user and kind in (None, p.kind)]

    def reserved_memory(self, excluding: Iterable[str] = ()) -> int:
        skip = set(excluding)
        return sum(p.memory for p in self.all() if p.id not in skip)

    def add(self, placement: Placement) -> None:
        with self._lock:
            self._placements[placement.key] = placement
            self._save()

    def confirm(self, placement: Placement) -> Placement:
        """Mark it as running (its process was seen); the same placement if gone meanwhile."""
        with self._lock:
            current = self._placements.get(placement.key)
            if current is None or current.confirmed:
                return current or placement
            confirmed = replace(current, confirmed=True)
            self._placements[placement.key] = confirmed
            self._save()
            return confirmed

    def remove(self, holder_id: str, kind: str = KERNEL) -> Placement | None:
        with self._lock:
            placement = self._placements.pop((kind, holder_id), None)
            if placement is not None:
                self._save()
            return placement

    def remove_user(self, user: str) -> list[Placement]:
        """Forget every placement of ``user`` (their server stopped), except their jobs' and
        endpoints' (which have cgroups of their own and outlive the server)."""
        with self._lock:
            gone = [p for p in self._placements.values()
                    if p.user == user and p.kind not in ("job", "endpoint")]
            for p in gone:
                del self._placements[p.key]
            if gone:
                self._save()
            return gone


def describe(placement: Placement, image: Image | None, size: Size | None) -> dict[str, Any]:
    """A placement as the hub API answers it."""
    return {
        "kernel_id": placement.id,
        "image": placement.image,
        "size": placement.size,
        "image_label": image.label if image else placement.image,
        "size_label": size.display_name if size else placement.size,
        "limits": {"cpus": placement.cpus, "memory": placement.memory,
                   "gpus": len(placement.gpus)},
        "cuda_visible_devices": ",".join(placement.gpus),
    }


def limits_env(placement: Placement, labels: dict[str, Any]) -> dict[str, str]:
    """Environment of a placed kernel: its size, GPUs and thread counts (the contract's)."""
    return contract.make_kernel_env(
        image_id=placement.image, size_id=placement.size,
        size_label=str(labels.get("size_label", placement.size)), cpus=placement.cpus,
        memory=placement.memory, gpu_ids=placement.gpus)
