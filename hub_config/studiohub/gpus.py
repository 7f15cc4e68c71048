"""The hub-wide GPU allocator: which server holds which GPU, handed out as CUDA_VISIBLE_DEVICES.

One allocator per hub process (:func:`shared_allocator`). GPUs are found with
``nvidia-smi -L`` or, without it, ``/proc/driver/nvidia/gpus/*/information``, and named
by UUID: CUDA orders devices fastest-first while nvidia-smi orders them by PCI bus, so
an index could point a server at somebody else's GPU, a UUID cannot.

A GPU is never given to two holders. The allocation lives in the hub's memory and in
each spawner's state, from which :meth:`GpuAllocator.reserve` restores it after a hub
restart. CUDA_VISIBLE_DEVICES is allocation, not isolation: a user who unsets it can
still open every ``/dev/nvidia*`` device (see docs/limits.md).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
_SMI_LINE = re.compile(r"^GPU (\d+): (.+?)(?: \(UUID: (\S+)\))?$")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str = ""

    @property
    def id(self) -> str:
        """What CUDA_VISIBLE_DEVICES and spawner state name it by: the UUID when known."""
        return self.uuid or str(self.index)

    def __str__(self) -> str:
        return f"GPU {self.index}: {self.name}" + (f" ({self.uuid})" if self.uuid else "")


class NoGpuFree(Exception):
    """Not enough free GPUs for a size; the message says who holds them and what to do."""


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """``nvidia-smi -L`` output; MIG slices (indented lines) are not handed out."""
    gpus = []
    for line in text.splitlines():
        match = _SMI_LINE.match(line.rstrip())
        if match:
            gpus.append(Gpu(int(match.group(1)), match.group(2), match.group(3) or ""))
    return gpus


def parse_proc_information(texts: Iterable[str]) -> list[Gpu]:
    """``/proc/driver/nvidia/gpus/<bus>/information`` files, given in PCI bus order."""
    gpus = []
    for index, text in enumerate(texts):
        fields = {k.strip(): v.strip() for k, _, v in
                  (line.partition(":") for line in text.splitlines()) if v}
        gpus.append(Gpu(index, fields.get("Model", "NVIDIA GPU"), fields.get("GPU UUID", "")))
    return gpus


def discover_gpus(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                  proc_dir: Path = PROC_GPUS) -> list[Gpu]:
    """NVIDIA GPUs of this host, empty when there are none (or no driver)."""
    try:
        result = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20,
                     check=False)
        if result.returncode == 0:
            return parse_nvidia_smi(result.stdout)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if not proc_dir.is_dir():
        return []
    infos = sorted(proc_dir.glob("*/information"))
    return parse_proc_information(p.read_text(errors="replace") for p in infos)


def gpus_from_ids(ids: Sequence[str]) -> list[Gpu]:
    """GPUs an operator listed by UUID or index (``StudioSpawner.gpu_ids``)."""
    return [Gpu(i, "GPU", value) if not value.isdigit() else Gpu(int(value), "GPU")
            for i, value in enumerate(ids)]


def cuda_visible_devices(gpus: Sequence[Gpu]) -> str:
    """The variable's value; ``""`` hides every GPU from a CPU-only server."""
    return ",".join(g.id for g in gpus)


class GpuAllocator:
    """Hands whole GPUs to holders (``user`` or ``user/server``), never one to two."""

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self.gpus = list(gpus)
        self._holders: dict[str, str] = {}  # GPU id → holder

    def held_by(self, holder: str) -> list[Gpu]:
        return [g for g in self.gpus if self._holders.get(g.id) == holder]

    def free_gpus(self) -> list[Gpu]:
        return [g for g in self.gpus if g.id not in self._holders]

    def allocate(self, holder: str, count: int, takeover: Iterable[str] = ()) -> list[Gpu]:
        """``count`` free GPUs for ``holder`` (lowest first), replacing what it held.

        GPUs of the ``takeover`` holders (a kernel this one replaces, which stops once this
        one runs) count as free, and the ones taken pass to ``holder``.
        """
        self.free(holder)
        if count <= 0:
            return []
        if count > len(self.gpus):
            raise NoGpuFree(f"this size needs {count} GPU(s) but this host has "
                            f"{len(self.gpus)}: choose a CPU size or ask an administrator")
        handed = set(takeover)
        free = [g for g in self.gpus
                if (owner := self._holders.get(g.id)) is None or owner in handed]
        if len(free) < count:
            raise NoGpuFree(self._busy_message(count))
        for gpu in free[:count]:
            self._holders[gpu.id] = holder
        return free[:count]

    def _busy_message(self, count: int) -> str:
        taken = dict(self._holders)  # a copy: threads release GPUs meanwhile
        holders = sorted(set(taken.values()))
        used = f"{len(taken)} of {len(self.gpus)} in use by {', '.join(holders)}"
        if not self.free_gpus():
            return f"no GPU free: {used}; choose a CPU size or try later"
        return f"not enough GPUs free for this size ({count} needed): {used}; " \
               "choose a smaller size or try later"

    def reserve(self, holder: str, ids: Iterable[str]) -> tuple[list[Gpu], list[str]]:
        """Give ``holder`` back the GPUs its saved state names, after a hub restart.

        Returns (reserved, problems): a GPU that is gone or held by another holder is
        not given, and each such case is described for the log.
        """
        by_id = {g.id: g for g in self.gpus}
        reserved, problems = [], []
        for gpu_id in ids:
            other = self._holders.get(gpu_id)
            if gpu_id not in by_id:
                problems.append(f"GPU {gpu_id} is no longer on this host")
            elif other not in (None, holder):
                problems.append(f"GPU {gpu_id} is already held by {other}")
            else:
                self._holders[gpu_id] = holder
                reserved.append(by_id[gpu_id])
        return reserved, problems

    def free(self, holder: str) -> list[Gpu]:
        """Release everything ``holder`` held (nothing to do when it held nothing)."""
        freed = self.held_by(holder)
        for gpu in freed:
            self._holders.pop(gpu.id, None)
        return freed


_shared: GpuAllocator | None = None


def shared_allocator(gpus: Sequence[Gpu] | None = None) -> GpuAllocator:
    """The hub's one allocator, created on first use from ``gpus`` or discovery."""
    global _shared
    if _shared is None:
        _shared = GpuAllocator(discover_gpus() if gpus is None else gpus)
    return _shared


def reset_shared_allocator() -> None:
    """Forget the shared allocator (tests; a hub never needs this)."""
    global _shared
    _shared = None
