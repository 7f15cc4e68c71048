"""Memory and CPU quantities, parsed and printed one way everywhere.

Memory follows JupyterHub's ``ByteSpecification``: binary multiples, so ``4G``
and ``4GiB`` are both 4 * 1024**3 bytes. Kubernetes quantities are produced from
the same integers (``4Gi``), so local and cluster limits cannot drift.
"""

from __future__ import annotations

import re

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?|i)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


class QuantityError(ValueError):
    """A quantity that cannot be parsed; the message says what is accepted."""


def parse_memory(value: int | float | str) -> int:
    """Return bytes for ``4G``, ``4GiB``, ``512M``, ``4Gi`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a memory size")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise QuantityError(f"{value!r} is not a positive memory size")
        return int(value)
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise QuantityError(
            f"{value!r} is not a memory size: use bytes or a number with K, M, G or T "
            "(binary multiples, e.g. 4G or 4GiB)"
        )
    number, unit = float(match.group(1)), match.group(2).upper()
    size = int(number * 1024 ** _POWERS[unit])
    if size <= 0:
        raise QuantityError(f"{value!r} is not a positive memory size")
    return size


def format_memory(size: int) -> str:
    """Print bytes the way labels do: ``4 GiB``, ``512 MiB``."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        scaled = size / 1024**power
        if scaled >= 1:
            return f"{scaled:g} {unit}"
    return f"{size} B"


def kube_memory(size: int) -> str:
    """Kubernetes quantity for bytes, exact: ``4Gi`` or ``4294967296``."""
    for suffix, power in (("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{suffix}"
    return str(size)


def format_cpus(cpus: float) -> str:
    """``2 vCPU``, ``0.5 vCPU``."""
    return f"{cpus:g} vCPU"
