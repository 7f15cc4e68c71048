"""The one capacity check: whether this machine (and the user's own bound) has room now.

Every placement, whatever it is for (a user's server, a switched kernel, next a job or an
endpoint replica), is checked here, and every refusal is worded here: the hub answers
it as it is, and clients show it as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Image, Size
from ..units import format_memory


class Refused(Exception):
    """A placement this hub will not make: the HTTP status and the sentence for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def amount(size: int) -> str:
    """Memory in a reason: ``23.5 GiB``, not ``23.5406 GiB`` (exact sizes print exactly)."""
    text = format_memory(size)
    number, unit = text.split(" ")
    return f"{float(number):.1f}".rstrip("0").rstrip(".") + f" {unit}"


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
        return f"needs {amount(size.memory)}; this machine has {amount(total)}"
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
        return (f"needs {amount(size.memory)}; only {amount(free)} of this "
                "machine's memory is free (running servers and kernels hold the rest)")
    if size.gpus > host.gpus:
        have = f"{host.gpus} GPU" if host.gpus else "no GPU"
        return f"needs {size.gpus} GPU; this machine has {have}"
    if size.gpus > free_gpus:
        return f"needs {size.gpus} GPU; {free_gpus} free now (others are in use)"
    return None


def refusal(image: Image, size: Size, why: str) -> Refused:
    """The one wording of "no room now", for every kind of placement."""
    return Refused(409, f"{size.display_name} cannot run {image.label} now: {why}")


def user_memory_bound(allowed: list[Size], host: Host, overcommit: float = 1.0,
                      configured: int = 0) -> int:
    """Most memory one user's placements may hold at once (``configured`` if set, > 0).

    Default: twice the largest size the user's domains allow, but no more than half of
    this machine's memory (× overcommit), and never less than that largest size (one
    kernel on it always fits the bound). So one user can neither reserve the machine
    for kernels of their own nor be kept off the sizes their domains grant.
    """
    if configured > 0:
        return configured
    largest = max((s.memory for s in allowed), default=0)
    half = int(host.memory * overcommit) // 2
    return max(largest, min(2 * largest, half))


def user_bound_reason(size: Size, held: int, bound: int) -> str | None:
    """Why one more placement of ``size`` would pass the user's own bound, or None."""
    if held + size.memory <= bound:
        return None
    return (f"your kernels on sizes of their own already hold {amount(held)} of the "
            f"{amount(bound)} one user may hold: shut one down (Kernel > Shut Down Kernel) "
            "and try again")


def count_reason(count: int, most: int) -> str | None:
    """Why one more placement would pass ``max_placed_kernels``, or None."""
    if count < most:
        return None
    return (f"you already run {most} kernels on sizes of their own: shut one down "
            "(Kernel > Shut Down Kernel) and try again")
