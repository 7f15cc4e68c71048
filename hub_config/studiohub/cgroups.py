"""Per-server cgroups: detect what the host can enforce, create, join, remove, read OOMs.

Every user server gets its own cgroup, ``<root>/<name>`` (root ``studiohub``, name
from :func:`studiohub.slugs.cgroup_name`), which holds no limits itself but *leaves*:
``server`` with the server's size (its kernels inherit it), and one ``k-<kernel id>``
per kernel the user placed on an image and size of its own (made by the hub, see
:mod:`studiohub.placement`), with that size's limits. Only root writes limits; the
server's account may only move its own processes between its leaves.

Detection prefers cgroup v2 (a ``cgroup2`` mount with the memory and cpu controllers
available), then v1 (``memory`` and ``cpu`` hierarchies mounted read-write), else
nothing is enforced and :class:`Capabilities` says so in one sentence for ``studiohub
doctor`` and the spawn page. The settings are built by the pure ``make_*`` functions.

This module imports only the standard library: the Jupyter server extension reads its
own OOM counters with :func:`own_oom_counters` from inside a user server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .units import format_memory

Settings = dict[str, dict[str, str]]
"""Controller (``memory``, ``cpu``, ``pids``; ``unified`` on v2) → control file → value."""

UNIFIED = "unified"
CPU_PERIOD_US = 100_000
DEFAULT_PIDS_MAX = 4096
V1_CONTROLLERS = ("memory", "cpu", "pids")


@dataclass(frozen=True)
class Capabilities:
    """What this host enforces: which cgroup version, and which limits."""

    version: str  # "v2", "v1" or "none"
    mounts: Mapping[str, Path] = field(default_factory=dict)  # controller (or "unified") → mount
    memory: bool = False
    cpu: bool = False
    pids: bool = False
    swap: bool = False  # swap is limited too, so memory limits cannot spill into swap
    reason: str = ""  # why (some) limits are not enforced

    @property
    def enforced(self) -> bool:
        """Memory and CPU limits of a size are both enforced."""
        return self.memory and self.cpu

    @property
    def summary(self) -> str:
        """One sentence for ``studiohub doctor`` and the spawn page."""
        if not self.enforced:
            return (f"instance sizes are NOT enforced on this host ({self.reason}): a server "
                    "can use more memory and CPU than its size says")
        where = ", ".join(sorted({str(p) for p in self.mounts.values()}))
        memory = "memory" + (" (swap included)" if self.swap else " (swap not limited)")
        parts = f"{memory}, CPU and process-count" if self.pids else f"{memory} and CPU"
        text = f"cgroup {self.version} ({where}) enforces the {parts} limits of each size"
        return text + (f"; {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Mount:
    path: Path
    fstype: str
    options: frozenset[str]


def parse_mounts(text: str) -> list[Mount]:
    """cgroup mounts from ``/proc/self/mounts`` text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            path = Path(fields[1].replace("\\040", " "))
            mounts.append(Mount(path, fields[2], frozenset(fields[3].split(","))))
    return mounts


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _writable(mount: Mount, root: str) -> bool:
    if "ro" in mount.options:
        return False
    target = mount.path / root
    return os.access(target if target.exists() else mount.path, os.W_OK)


def detect_v2(mount: Mount, root: str = "studiohub") -> Capabilities:
    """A cgroup2 mount: usable when memory+cpu are available and can be enabled below it."""
    available = set(_read(mount.path / "cgroup.controllers").split())
    missing = sorted({"memory", "cpu"} - available)
    if missing:
        return Capabilities("none", reason=f"cgroup v2 at {mount.path} lacks the "
                                           f"{' and '.join(missing)} controller"
                                           + "s" * (len(missing) > 1))
    if not _writable(mount, root):
        return Capabilities("none", reason=f"cgroup v2 at {mount.path} is not writable by "
                                           "this account (run the hub as root)")
    enabled = set(_read(mount.path / "cgroup.subtree_control").split())
    is_root = not (mount.path / "cgroup.type").exists()
    busy = _read(mount.path / "cgroup.procs").strip()
    if not {"memory", "cpu"} <= enabled and not is_root and busy:
        return Capabilities("none", reason=f"controllers cannot be enabled below {mount.path}: "
                                           "it holds processes (move them to a leaf cgroup)")
    return Capabilities("v2", {UNIFIED: mount.path}, memory=True, cpu=True,
                        pids="pids" in available, swap=True)


def detect_v1(mounts: list[Mount], root: str = "studiohub") -> Capabilities:
    """v1 hierarchies: the memory and cpu controllers mounted read-write."""
    found = {c: m for m in mounts if m.fstype == "cgroup" for c in V1_CONTROLLERS
             if c in m.options}
    missing = sorted({"memory", "cpu"} - set(found))
    if missing:
        return Capabilities("none", reason=f"no cgroup v1 {' or '.join(missing)} hierarchy")
    unwritable = sorted(c for c, m in found.items() if not _writable(m, root))
    if {"memory", "cpu"} & set(unwritable):
        return Capabilities("none", reason=f"cgroup v1 {', '.join(unwritable)} not writable "
                                           "by this account (run the hub as root)")
    usable = {c: m.path for c, m in found.items() if c not in unwritable}
    swap = (usable["memory"] / "memory.memsw.limit_in_bytes").exists()
    reason = "" if swap else "swap accounting is off (boot with swapaccount=1)"
    return Capabilities("v1", usable, memory=True, cpu=True, pids="pids" in usable, swap=swap,
                        reason=reason)


def detect(mounts_text: str | None = None, root: str = "studiohub") -> Capabilities:
    """v2 if it has memory+cpu, else v1, else none (with the reason of the best attempt)."""
    if mounts_text is None:
        mounts_text = _read(Path("/proc/self/mounts"))
    mounts = parse_mounts(mounts_text)
    reasons = []
    for mount in (m for m in mounts if m.fstype == "cgroup2"):
        caps = detect_v2(mount, root)
        if caps.version == "v2":
            return caps
        reasons.append(caps.reason)
    caps = detect_v1(mounts, root)
    if caps.version == "v1":
        return caps
    reasons.append(caps.reason)
    return Capabilities("none", reason="; ".join(reasons) if mounts else "no cgroup mounted")


# --- pure builders -----------------------------------------------------------------------


def cpu_quota_us(cpus: float, period_us: int = CPU_PERIOD_US) -> int:
    """CFS quota for ``cpus`` CPUs per ``period_us`` (the kernel's minimum is 1000 µs)."""
    return max(1000, round(cpus * period_us))


def make_v1_settings(cpus: float, memory: int, *, memsw: bool = True,
                     pids_max: int = DEFAULT_PIDS_MAX) -> Settings:
    """v1 control files for a size; memsw equal to the limit means no swap on top of it.

    Written in order, and ``limit_in_bytes`` before ``memsw`` (memsw may never be lower).
    """
    mem = {"memory.limit_in_bytes": str(memory)}
    if memsw:
        mem["memory.memsw.limit_in_bytes"] = str(memory)
    settings: Settings = {
        "memory": mem,
        "cpu": {"cpu.cfs_period_us": str(CPU_PERIOD_US),
                "cpu.cfs_quota_us": str(cpu_quota_us(cpus))},
    }
    if pids_max:
        settings["pids"] = {"pids.max": str(pids_max)}
    return settings


def make_v2_settings(cpus: float, memory: int, *, pids_max: int = DEFAULT_PIDS_MAX) -> Settings:
    """v2 control files for a size: hard memory limit, no swap, CPU bandwidth, pids."""
    files = {"memory.max": str(memory), "memory.swap.max": "0",
             "cpu.max": f"{cpu_quota_us(cpus)} {CPU_PERIOD_US}"}
    if pids_max:
        files["pids.max"] = str(pids_max)
    return {UNIFIED: files}


def make_settings(caps: Capabilities, cpus: float, memory: int,
                  pids_max: int = DEFAULT_PIDS_MAX) -> Settings:
    """The settings for this host's cgroup version; empty when nothing is enforced."""
    pids_max = pids_max if caps.pids else 0
    if caps.version == "v2":
        return make_v2_settings(cpus, memory, pids_max=pids_max)
    if caps.version == "v1":
        return make_v1_settings(cpus, memory, memsw=caps.swap, pids_max=pids_max)
    return {}


def make_root_settings(version: str, host_cpus: int, servers: int) -> Settings:
    """CPU weight of the parent of all servers: one ordinary process per server (≥ per CPU).

    With the default weight, all servers together would compete like a single process
    against everything else on the host, so one background job could slow every user
    down; without StudioHub each server would be a process of its own. Each server's
    own ``cpus`` quota still caps it.
    """
    count = max(host_cpus, servers, 1)
    if version == "v2":
        return {UNIFIED: {"cpu.weight": str(min(10_000, 100 * count))}}
    if version == "v1":
        return {"cpu": {"cpu.shares": str(min(262_144, 1024 * count))}}
    return {}


@dataclass(frozen=True)
class OomCounters:
    """How often a cgroup hit its memory limit and how many processes the kernel killed."""

    kills: int
    limit_hits: int


def parse_oom_v1(oom_control: str, failcnt: str) -> OomCounters:
    """``memory.oom_control`` (``oom_kill N``, kernel ≥ 4.13) and ``memory.failcnt``."""
    fields = dict(line.split() for line in oom_control.splitlines() if len(line.split()) == 2)
    return OomCounters(int(fields.get("oom_kill", 0)), int(failcnt.strip() or 0))


def parse_oom_v2(memory_events: str) -> OomCounters:
    """``memory.events``: ``oom_kill`` kills, ``max`` times the limit was reached."""
    fields = dict(line.split() for line in memory_events.splitlines() if len(line.split()) == 2)
    return OomCounters(int(fields.get("oom_kill", 0)), int(fields.get("max", 0)))


def read_oom(directory: Path, version: str) -> OomCounters:
    """OOM counters of one cgroup directory (the memory one on v1)."""
    if version == "v2":
        return parse_oom_v2(_read(directory / "memory.events"))
    return parse_oom_v1(_read(directory / "memory.oom_control"), _read(directory /
                                                                       "memory.failcnt"))


def oom_message(memory: int, size_id: str, size_label: str) -> str:
    """What a user is told when the kernel killed a process of theirs for memory."""
    return (f"your kernel was stopped: it went past the {format_memory(memory)} memory limit "
            f"of size {size_id} ({size_label}). Free memory (del large objects) or restart "
            "with a larger size.")


def own_memory_cgroup(proc_cgroup: str | None = None, mounts_text: str | None = None
                      ) -> tuple[Path, str] | None:
    """(directory, version) of the calling process's memory cgroup, for a server extension.

    Needs no write access: it runs as the user, inside the server's cgroup.
    """
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    if mounts_text is None:
        mounts_text = _read(Path("/proc/self/mounts"))
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [UNIFIED]:
            paths[controller] = path.lstrip("/")
    for mount in parse_mounts(mounts_text):
        if mount.fstype == "cgroup" and "memory" in mount.options and "memory" in paths:
            return mount.path / paths["memory"], "v1"
        if mount.fstype == "cgroup2" and UNIFIED in paths and "memory" in _read(
                mount.path / "cgroup.controllers").split():
            return mount.path / paths[UNIFIED], "v2"
    return None


def own_oom_counters() -> OomCounters | None:
    """OOM counters of the cgroup this process runs in (None where nothing is enforced).

    A server extension compares them before and after a kernel died: more kills means
    the kernel was stopped for memory; tell the user with :func:`oom_message_from_env`.
    """
    found = own_memory_cgroup()
    return read_oom(*found) if found else None


def oom_message_from_env(environ: Mapping[str, str] | None = None) -> str:
    """:func:`oom_message` from the ``STUDIOHUB_*`` variables the spawner sets."""
    from .contract import read_server_env

    server = read_server_env(environ)
    return oom_message(server.memory or 0, server.size or "?", server.size_label or "")


# --- the cgroups of user servers ---------------------------------------------------------


SERVER_LEAF = "server"


@dataclass(frozen=True)
class Cgroups:
    """Server cgroups under ``root`` in every hierarchy :class:`Capabilities` found.

    Delegation: :meth:`delegate` gives the server's unix account the ``cgroup.procs``
    (v1 also ``tasks``) of each leaf, never a directory or a limit file. So the server
    can start a kernel straight into a leaf the hub made for it, but can neither create
    cgroups nor raise a limit. v2 also needs write access to the common parent's
    ``cgroup.procs`` for such a move; it is given there only, because v2 keeps processes
    out of a cgroup whose controllers are enabled for its children, while on v1 a
    process in the limit-free parent would escape its size.
    """

    caps: Capabilities
    root: str = "studiohub"

    def dirs(self, name: str) -> dict[str, Path]:
        """Controller → directory of cgroup ``name`` (nothing when limits are off)."""
        _check_name(name)
        return {c: m / self.root / name for c, m in self.caps.mounts.items()}

    def leaf_dirs(self, name: str, leaf: str = SERVER_LEAF) -> dict[str, Path]:
        """Controller → directory of leaf ``leaf`` of cgroup ``name``."""
        _check_name(leaf)
        return {c: d / leaf for c, d in self.dirs(name).items()}

    def ensure_cgroup(self, name: str, settings: Settings) -> dict[str, Path]:
        """Create cgroup ``name`` afresh (leftovers killed), its ``server`` leaf holding
        ``settings``; returns the cgroup's directories.

        Leftovers that are still exiting after the wait (a loaded machine) keep their
        directory, which is then reused: they were sent SIGKILL and go on their own.
        """
        self.remove(name, timeout=10)
        self._ensure_root()
        dirs = self.dirs(name)
        for controller, directory in dirs.items():
            directory.mkdir(exist_ok=True)
            if controller == UNIFIED:
                _enable(directory, self._v2_controllers())
        self.ensure_leaf(name, SERVER_LEAF, settings)
        self._reweigh_root()
        return dirs

    def ensure_leaf(self, name: str, leaf: str, settings: Settings) -> dict[str, Path]:
        """Leaf ``leaf`` of the existing cgroup ``name`` with ``settings`` (re)applied."""
        dirs = self.leaf_dirs(name, leaf)
        for controller, directory in dirs.items():
            directory.mkdir(exist_ok=True)
            for filename, value in settings.get(controller, {}).items():
                (directory / filename).write_text(value)
        return dirs

    def remove_leaf(self, name: str, leaf: str, timeout: float = 3.0) -> bool:
        """Kill what runs in one leaf and remove it."""
        ok = True
        for directory in self.leaf_dirs(name, leaf).values():
            ok = _remove_tree(directory, timeout) and ok
        return ok

    def leaves(self, name: str) -> list[str]:
        """Names of the leaves of cgroup ``name`` that exist."""
        found: set[str] = set()
        for directory in self.dirs(name).values():
            if directory.is_dir():
                found |= {p.name for p in directory.iterdir() if p.is_dir()}
        return sorted(found)

    def _v2_controllers(self) -> list[str]:
        return ["memory", "cpu", *(["pids"] if self.caps.pids else [])]

    def _ensure_root(self) -> None:
        for controller, mount in self.caps.mounts.items():
            (mount / self.root).mkdir(exist_ok=True)
            if controller == UNIFIED:
                _enable(mount, self._v2_controllers())
                _enable(mount / self.root, self._v2_controllers())

    def _reweigh_root(self) -> None:
        """Keep the parent's CPU weight at one process per running server (see builder)."""
        cpu = self.caps.mounts.get("cpu") or self.caps.mounts.get(UNIFIED)
        if cpu is None or not (cpu / self.root).is_dir():
            return
        servers = sum(1 for p in (cpu / self.root).iterdir() if p.is_dir())
        weights = make_root_settings(self.caps.version, os.cpu_count() or 1, servers)
        for controller, files in weights.items():
            for filename, value in files.items():
                with contextlib.suppress(OSError):
                    (self.caps.mounts[controller] / self.root / filename).write_text(value)

    def procs_files(self, name: str, leaf: str = SERVER_LEAF) -> list[str]:
        """``cgroup.procs`` of a leaf in every hierarchy: what a child writes itself into."""
        return [str(d / "cgroup.procs") for d in self.leaf_dirs(name, leaf).values()]

    def attach(self, name: str, pid: int, leaf: str = SERVER_LEAF) -> None:
        """Move process ``pid`` (and its threads) into a leaf of cgroup ``name``."""
        for procs in self.procs_files(name, leaf):
            Path(procs).write_text(str(pid))

    def delegate(self, name: str, uid: int, gid: int, leaf: str = SERVER_LEAF) -> None:
        """Let a server's account move its processes into ``leaf`` (see class doc)."""
        for controller, directory in self.dirs(name).items():
            v2 = controller == UNIFIED
            files = ["cgroup.procs", "cgroup.threads" if v2 else "tasks"]
            paths = [directory / leaf / f for f in files]
            if v2:
                paths.append(directory / "cgroup.procs")
            for path in paths:
                if path.exists():
                    os.chown(path, uid, gid)

    def pids(self, name: str) -> set[int]:
        """Every process in cgroup ``name`` and its children."""
        found: set[int] = set()
        for directory in self.dirs(name).values():
            for procs in _tree(directory, deepest_first=False):
                found |= {int(p) for p in _read(procs / "cgroup.procs").split()}
        return found

    def remove(self, name: str, timeout: float = 3.0) -> bool:
        """Kill what still runs in cgroup ``name``, then remove it (children first).

        Blocks up to ``timeout`` seconds; returns False if something could not be removed.
        """
        ok = True
        for directory in self.dirs(name).values():
            ok = _remove_tree(directory, timeout) and ok
        self._reweigh_root()
        return ok

    def read_oom(self, name: str, leaf: str = SERVER_LEAF) -> OomCounters | None:
        """OOM counters of a leaf of cgroup ``name`` (None where memory is not enforced)."""
        dirs = self.leaf_dirs(name, leaf)
        memory = dirs.get(UNIFIED) or dirs.get("memory")
        if memory is None or not memory.exists():
            return None
        return read_oom(memory, self.caps.version)


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad cgroup name {name!r}")


def _enable(directory: Path, controllers: list[str]) -> None:
    enabled = set(_read(directory / "cgroup.subtree_control").split())
    missing = [c for c in controllers if c not in enabled]
    if missing:
        (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))


def _tree(directory: Path, deepest_first: bool = True) -> list[Path]:
    """A cgroup and its child cgroups (directories), deepest first for removal."""
    if not directory.is_dir():
        return []
    found = [Path(d) for d, _, _ in os.walk(directory)]
    return sorted(found, key=lambda p: len(p.parts), reverse=deepest_first)


def _remove_tree(directory: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    return all(_empty_and_remove(cgroup, deadline) for cgroup in _tree(directory))


def _empty_and_remove(cgroup: Path, deadline: float) -> bool:
    kill_file = cgroup / "cgroup.kill"
    while True:
        procs = [int(p) for p in _read(cgroup / "cgroup.procs").split()]
        if not procs:
            try:
                cgroup.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                pass  # a process is still exiting; try again
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for pid in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def make_join(procs_files: list[str]) -> Callable[[], None]:
    """A ``preexec_fn`` step: the forked child writes itself into the cgroup.

    Joining before ``exec`` (and before dropping root) means the server never runs a
    single instruction outside its limits, and no fork of it can escape in between, as
    it could if the hub attached the pid after ``Popen`` returned.
    """
    paths = [p.encode() for p in procs_files]

    def join() -> None:
        pid = str(os.getpid()).encode()
        for path in paths:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    return join
