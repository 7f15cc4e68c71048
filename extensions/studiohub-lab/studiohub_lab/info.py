"""What this server runs as: image, size and limits, as the spawner set them.

The spawner exports ``STUDIOHUB_IMAGE``, ``STUDIOHUB_SIZE``, ``STUDIOHUB_MEM_LIMIT``
(bytes, or a quantity such as ``4G``) and ``STUDIOHUB_CPU_LIMIT`` (CPUs, e.g. ``0.5``)
into the user's server; a server started some other way reports ``None`` for each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import hub

log = logging.getLogger(__name__)


def make_info(environ: Mapping[str, str], version: str) -> dict[str, Any]:
    """The body of ``GET studiohub/api/v1/info``."""
    return {
        "version": version,
        "image": environ.get("STUDIOHUB_IMAGE") or None,
        "size": environ.get("STUDIOHUB_SIZE") or None,
        "switching": hub.switching(environ),
        "limits": {
            "memory": memory_limit(environ.get("STUDIOHUB_MEM_LIMIT")),
            "cpu": cpu_limit(environ.get("STUDIOHUB_CPU_LIMIT")),
        },
    }


def memory_limit(value: str | None) -> int | None:
    """Bytes, or None when unset or unreadable (a bad value is logged, never a 500)."""
    if not value:
        return None
    from studiohub.units import QuantityError, parse_memory

    try:
        return parse_memory(value)
    except QuantityError as e:
        log.warning("ignoring STUDIOHUB_MEM_LIMIT: %s", e)
        return None


def cpu_limit(value: str | None) -> float | None:
    if not value:
        return None
    try:
        cpus = float(value)
    except ValueError:
        log.warning("ignoring STUDIOHUB_CPU_LIMIT=%r: not a number of CPUs", value)
        return None
    return cpus if cpus > 0 else None
