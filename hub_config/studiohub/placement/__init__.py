"""Where anything runs: the one owner of placements (servers' room, kernels, next jobs).

- :mod:`.capacity`: the one capacity check and the one wording of its refusals;
- :mod:`.book`: :class:`Placement` records (keyed by kind and id) and their state file;
- :mod:`.service`: :class:`Placer`, the decisions: check, place, release, expire;
- :mod:`.leaves`: the local executor (cgroup leaves inside a user's server cgroup).
"""

from . import service
from .book import KERNEL, Placement, PlacementBook, describe, kernel_leaf, limits_env
from .capacity import Host, Refused, host_reason, unavailable_reason
from .service import Placer, choose, placer, release

__all__ = [
    "KERNEL",
    "Host",
    "Placement",
    "PlacementBook",
    "Placer",
    "Refused",
    "book",
    "choose",
    "describe",
    "host_reason",
    "kernel_leaf",
    "limits_env",
    "placer",
    "release",
    "service",
    "unavailable_reason",
]


def book(path: str) -> PlacementBook:
    """The hub's one book per state file (its placer's)."""
    return placer(path).book
