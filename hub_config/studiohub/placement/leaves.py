"""The local executor of placements: cgroup leaves inside a user's server cgroup.

A placement (a kernel today) runs in a leaf ``k-<id>`` of its user's server cgroup, with
its size's limits; the server's account may only move its own processes into it. Here
the decisions of :mod:`.service` are carried out on the cgroup tree; nothing is decided.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import cgroups
from ..paths import system_mode
from .book import Placement


def tree(spawner: Any) -> cgroups.Cgroups:
    return cgroups.Cgroups(spawner.caps, spawner.cgroup_root)


def make_leaf(spawner: Any, placement: Placement) -> None:
    """The placement's cgroup leaf with its size's limits, movable-into by the user only."""
    if not placement.cgroup:
        return
    caps = spawner.caps
    settings = cgroups.make_settings(caps, placement.cpus, placement.memory, spawner.pids_limit)
    leaves = tree(spawner)
    leaves.remove_leaf(placement.cgroup, placement.leaf)
    leaves.ensure_leaf(placement.cgroup, placement.leaf, settings)
    if system_mode():
        account = spawner.account
        leaves.delegate(placement.cgroup, account.pw_uid, account.pw_gid, placement.leaf)


def remove_leaf(spawner: Any, placement: Placement) -> None:
    """Kill what is left in the placement's leaf and remove it."""
    if placement.cgroup:
        tree(spawner).remove_leaf(placement.cgroup, placement.leaf)


def leaf_paths(spawner: Any, placement: Placement) -> dict[str, Any]:
    """Where the placement's process joins its leaf: ``procs`` files, the memory cgroup."""
    if not placement.cgroup:
        return {"procs": [], "memory_cgroup": "", "cgroup_version": spawner.caps.version}
    leaves = tree(spawner)
    dirs = leaves.leaf_dirs(placement.cgroup, placement.leaf)
    memory = dirs.get(cgroups.UNIFIED) or dirs.get("memory") or ""
    return {"procs": leaves.procs_files(placement.cgroup, placement.leaf),
            "memory_cgroup": str(memory), "cgroup_version": spawner.caps.version}


def leaf_runs(spawner: Any, placement: Placement) -> bool:
    """Whether a process runs in the placement's leaf (it started where it was placed)."""
    for procs in tree(spawner).procs_files(placement.cgroup, placement.leaf):
        try:
            if Path(procs).read_text().split():
                return True
        except OSError:
            continue
    return False


def kernel_runs(uid: int, kernel_id: str, proc: Path = Path("/proc")) -> bool:
    """Whether a process of account ``uid`` runs kernel ``kernel_id`` (no cgroup to look in).

    jupyter_client starts a kernel with its connection file ``kernel-<id>.json`` on
    the command line; only a process of the server's own account counts.
    """
    needle = f"kernel-{kernel_id}.json".encode()
    try:
        entries = [e for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return False
    for entry in entries:
        try:
            if entry.stat().st_uid != uid:
                continue
            if needle in (Path(entry.path) / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False
