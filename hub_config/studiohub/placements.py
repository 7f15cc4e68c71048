"""Kernels placed on an image and size of their own: what the hub reserves for them.

When a notebook switches to an image and size, the user's server asks the hub
(:mod:`studiohub.hubapi`) to *place* that kernel. The hub checks the choice against the
catalog and the user's domains, then against what this machine has free: memory not
reserved by running servers and placed kernels, CPUs, GPUs. It gives the kernel GPUs
from the hub-wide allocator and a cgroup leaf ``k-<kernel id>`` with the size's limits
inside the user's server cgroup (:mod:`studiohub.cgroups`). Reservations are kept in a
JSON file in the state directory, so a restarted hub still counts them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .catalog import Image, Size
from .units import format_memory


def _amount(size: int) -> str:
    """Memory in a reason: ``23.5 GiB``, not ``23.5406 GiB`` (exact sizes print exactly)."""
    text = format_memory(size)
    number, unit = text.split(" ")
    return f"{float(number):.1f}".rstrip("0").rstrip(".") + f" {unit}"


@dataclass(frozen=True)
class Placement:
    """One kernel's reservation: whose, which server cgroup, image, size, GPUs."""

    user: str
    kernel_id: str
    cgroup: str  # the server's cgroup name ("" where limits are not enforced)
    image: str
    size: str
    cpus: float
    memory: int
    gpus: tuple[str, ...] = ()

    @property
    def leaf(self) -> str:
        return kernel_leaf(self.kernel_id)

    @property
    def gpu_holder(self) -> str:
        return f"{self.user}/kernel/{self.kernel_id}"


def kernel_leaf(kernel_id: str) -> str:
    """Name of a placed kernel's cgroup leaf."""
    return f"k-{kernel_id}"


@dataclass(frozen=True)
class Host:
    """What this machine has, for the capacity check."""

    cpus: int
    memory: int
    gpus: int

    @classmethod
    def detect(cls, gpus: int, meminfo: str | None = None) -> Host:
        if meminfo is None:
            try:
                meminfo = Path("/proc/meminfo").read_text()
            except OSError:
                meminfo = ""
        fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
        kib = int(fields.get("MemTotal", "0 kB").split()[0])
        return cls(os.cpu_count() or 1, kib * 1024, gpus)


def host_reason(size: Size, host: Host, overcommit: float = 1.0) -> str | None:
    """Why this machine can never hold ``size`` (more CPUs or memory than it has), or None."""
    if size.cpus > host.cpus:
        return f"needs {size.cpus:g} vCPU; this machine has {host.cpus}"
    total = int(host.memory * overcommit)
    if size.memory > total:
        return f"needs {_amount(size.memory)}; this machine has {_amount(total)}"
    return None


def unavailable_reason(image: Image, size: Size, host: Host, *, reserved_memory: int,
                       free_gpus: int, overcommit: float = 1.0) -> str | None:
    """Why ``size`` cannot run ``image`` on this machine now, or None when it can.

    ``reserved_memory`` is what running servers and placed kernels already hold;
    memory may be promised ``overcommit`` times over (1.0: never more than the host has).
    """
    if image.gpu and not size.gpus:
        return f"{image.label} needs a GPU size"
    if not size.can_run(image):
        return f"size {size.id} does not run {image.label}"
    never = host_reason(size, host, overcommit)
    if never:
        return never
    total = int(host.memory * overcommit)
    free = max(0, total - reserved_memory)
    if size.memory > free:
        return (f"needs {_amount(size.memory)}; only {_amount(free)} of this "
                "machine's memory is free (running servers and kernels hold the rest)")
    if size.gpus > host.gpus:
        have = f"{host.gpus} GPU" if host.gpus else "no GPU"
        return f"needs {size.gpus} GPU; this machine has {have}"
    if size.gpus > free_gpus:
        return f"needs {size.gpus} GPU; {free_gpus} free now (others are in use)"
    return None


class PlacementBook:
    """Every placed kernel of this hub, saved to ``path`` on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._placements: dict[str, Placement] = {}
        self._load()

    def _load(self) -> None:
        try:
            rows = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for row in rows if isinstance(rows, list) else []:
            try:
                placement = Placement(**{**row, "gpus": tuple(row.get("gpus", ()))})
            except TypeError:
                continue
            self._placements[placement.kernel_id] = placement

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(p) for p in self._placements.values()], indent=1))
        os.replace(tmp, self.path)

    # Reads take the lock too: release() and remove_user() change the book from threads.
    def get(self, kernel_id: str) -> Placement | None:
        with self._lock:
            return self._placements.get(kernel_id)

    def all(self) -> list[Placement]:
        with self._lock:
            return list(self._placements.values())

    def of_user(self, user: str) -> list[Placement]:
        return [p for p in self.all() if p.user == user]

    def reserved_memory(self, excluding: Iterable[str] = ()) -> int:
        skip = set(excluding)
        return sum(p.memory for p in self.all() if p.kernel_id not in skip)

    def add(self, placement: Placement) -> None:
        with self._lock:
            self._placements[placement.kernel_id] = placement
            self._save()

    def remove(self, kernel_id: str) -> Placement | None:
        with self._lock:
            placement = self._placements.pop(kernel_id, None)
            if placement is not None:
                self._save()
            return placement

    def remove_user(self, user: str) -> list[Placement]:
        """Forget every placement of ``user`` (their server stopped)."""
        with self._lock:
            gone = [p for p in self._placements.values() if p.user == user]
            for p in gone:
                del self._placements[p.kernel_id]
            if gone:
                self._save()
            return gone


_books: dict[Path, PlacementBook] = {}


def book(path: str | Path) -> PlacementBook:
    """The hub's one book per state file."""
    key = Path(path)
    if key not in _books:
        _books[key] = PlacementBook(key)
    return _books[key]


def describe(placement: Placement, image: Image | None, size: Size | None) -> dict[str, Any]:
    """A placement as the hub API answers it."""
    return {
        "kernel_id": placement.kernel_id,
        "image": placement.image,
        "size": placement.size,
        "image_label": image.label if image else placement.image,
        "size_label": size.display_name if size else placement.size,
        "limits": {"cpus": placement.cpus, "memory": placement.memory,
                   "gpus": len(placement.gpus)},
        "cuda_visible_devices": ",".join(placement.gpus),
    }


def limits_env(placement: Placement, labels: Mapping[str, str]) -> dict[str, str]:
    """Environment of a placed kernel: its size, GPUs and thread counts."""
    threads = str(max(1, int(placement.cpus)))
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(placement.gpus),
        "STUDIOHUB_KERNEL_IMAGE": placement.image,
        "STUDIOHUB_KERNEL_SIZE": placement.size,
        "STUDIOHUB_KERNEL_SIZE_LABEL": labels.get("size_label", placement.size),
        "STUDIOHUB_KERNEL_CPU_LIMIT": f"{placement.cpus:g}",
        "STUDIOHUB_KERNEL_MEM_LIMIT": str(placement.memory),
        # Math libraries size their thread pools from these, not from the host's CPUs.
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }
