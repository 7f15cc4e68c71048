"""cgroup detection on fake trees, settings builders against literal dicts, OOM counters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studiohub import cgroups
from studiohub.cgroups import Capabilities, Cgroups, OomCounters

GIB = 1024**3


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids",
            root_cgroup: bool = True, procs: str = "") -> str:
    mount = tmp_path / "unified"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text(controllers + "\n")
    (mount / "cgroup.subtree_control").write_text("\n")
    (mount / "cgroup.procs").write_text(procs)
    if not root_cgroup:
        (mount / "cgroup.type").write_text("domain\n")
    return f"cgroup2 {mount} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def fake_v1(tmp_path: Path, memsw: bool = True, options: str = "rw,relatime") -> str:
    lines = []
    for controller in ("cpu", "cpuacct", "memory", "pids", "devices"):
        (tmp_path / controller).mkdir()
        lines.append(f"cgroup {tmp_path / controller} cgroup {options},{controller} 0 0")
    if memsw:
        (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("-1\n")
    return "\n".join(lines) + "\n"


# --- detection -----------------------------------------------------------------------------


def test_parse_mounts_keeps_only_cgroups() -> None:
    text = ("proc /proc proc rw 0 0\n"
            "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n"
            "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n")
    mounts = cgroups.parse_mounts(text)
    assert [(str(m.path), m.fstype) for m in mounts] == [
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup"), ("/sys/fs/cgroup/unified", "cgroup2")]
    assert {"cpu", "cpuacct"} <= mounts[0].options


def test_v2_with_memory_and_cpu_is_preferred(tmp_path: Path) -> None:
    text = fake_v2(tmp_path) + fake_v1(tmp_path)
    caps = cgroups.detect(text)
    assert caps == Capabilities("v2", {"unified": tmp_path / "unified"}, memory=True, cpu=True,
                                pids=True, swap=True)
    assert caps.enforced
    assert caps.summary == (f"cgroup v2 ({tmp_path / 'unified'}) enforces the memory (swap "
                            "included), CPU and process-count limits of each size")


def test_hybrid_host_falls_back_to_v1(tmp_path: Path) -> None:
    """Like this machine: cgroup2 at /sys/fs/cgroup/unified with only hugetlb."""
    text = fake_v2(tmp_path, controllers="hugetlb") + fake_v1(tmp_path)
    caps = cgroups.detect(text)
    assert caps.version == "v1"
    assert caps.mounts == {"cpu": tmp_path / "cpu", "memory": tmp_path / "memory",
                           "pids": tmp_path / "pids"}
    assert (caps.memory, caps.cpu, caps.pids, caps.swap) == (True, True, True, True)


def test_v1_without_swap_accounting_says_so(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v1(tmp_path, memsw=False))
    assert caps.enforced and not caps.swap
    assert "swap not limited" in caps.summary
    assert "swapaccount=1" in caps.summary


def test_read_only_cgroups_enforce_nothing(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v1(tmp_path, options="ro,nosuid"))
    assert caps.version == "none" and not caps.enforced
    assert caps.summary.startswith("instance sizes are NOT enforced on this host (")
    assert "not writable" in caps.reason


def test_v2_without_memory_controller_and_no_v1(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v2(tmp_path, controllers="cpu io pids"))
    assert caps.version == "none"
    assert "lacks the memory controller" in caps.reason


def test_v2_whose_root_holds_processes_cannot_delegate(tmp_path: Path) -> None:
    """A container's namespace root with processes in it: controllers cannot be enabled."""
    caps = cgroups.detect(fake_v2(tmp_path, root_cgroup=False, procs="1\n42\n"))
    assert caps.version == "none"
    assert "holds processes" in caps.reason


def test_no_cgroups_at_all() -> None:
    caps = cgroups.detect("proc /proc proc rw 0 0\n")
    assert caps == Capabilities("none", reason="no cgroup mounted")


# --- builders ------------------------------------------------------------------------------


def test_v1_settings_for_medium() -> None:
    assert cgroups.make_v1_settings(2, 4 * GIB) == {
        "memory": {"memory.limit_in_bytes": "4294967296",
                   "memory.memsw.limit_in_bytes": "4294967296"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "200000"},
        "pids": {"pids.max": "4096"},
    }


def test_v1_settings_without_memsw_or_pids() -> None:
    assert cgroups.make_v1_settings(0.5, 512 * 1024**2, memsw=False, pids_max=0) == {
        "memory": {"memory.limit_in_bytes": "536870912"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"},
    }


def test_v2_settings_for_half_a_cpu() -> None:
    assert cgroups.make_v2_settings(0.5, GIB, pids_max=512) == {
        "unified": {"memory.max": "1073741824", "memory.swap.max": "0",
                    "cpu.max": "50000 100000", "pids.max": "512"},
    }


def test_parent_weighs_like_one_process_per_server() -> None:
    assert cgroups.make_root_settings("v1", 2, 0) == {"cpu": {"cpu.shares": "2048"}}
    assert cgroups.make_root_settings("v1", 2, 10) == {"cpu": {"cpu.shares": "10240"}}
    assert cgroups.make_root_settings("v2", 16, 3) == {"unified": {"cpu.weight": "1600"}}
    assert cgroups.make_root_settings("v2", 8, 512) == {"unified": {"cpu.weight": "10000"}}
    assert cgroups.make_root_settings("none", 4, 4) == {}


def test_cpu_quota_has_the_kernel_minimum() -> None:
    assert cgroups.cpu_quota_us(0.001) == 1000
    assert cgroups.cpu_quota_us(8) == 800_000


def test_make_settings_follows_capabilities() -> None:
    v1 = Capabilities("v1", {}, memory=True, cpu=True, pids=False, swap=False)
    assert cgroups.make_settings(v1, 1, GIB) == cgroups.make_v1_settings(
        1, GIB, memsw=False, pids_max=0)
    v2 = Capabilities("v2", {}, memory=True, cpu=True, pids=True, swap=True)
    assert cgroups.make_settings(v2, 1, GIB, 100) == cgroups.make_v2_settings(1, GIB,
                                                                              pids_max=100)
    assert cgroups.make_settings(Capabilities("none"), 1, GIB) == {}


# --- OOM counters --------------------------------------------------------------------------


def test_oom_counters_v1() -> None:
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    assert cgroups.parse_oom_v1(text, "17\n") == OomCounters(kills=2, limit_hits=17)
    assert cgroups.parse_oom_v1("oom_kill_disable 0\nunder_oom 0\n", "") == OomCounters(0, 0)


def test_oom_counters_v2() -> None:
    text = "low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n"
    assert cgroups.parse_oom_v2(text) == OomCounters(kills=1, limit_hits=31)


def test_oom_message_names_limit_and_size() -> None:
    assert cgroups.oom_message(512 * 1024**2, "tiny", "1 vCPU + 512 MiB") == (
        "your kernel was stopped: it went past the 512 MiB memory limit of size tiny "
        "(1 vCPU + 512 MiB). Free memory (del large objects) or restart with a larger size.")
    env = {"STUDIOHUB_MEM_LIMIT": str(4 * GIB), "STUDIOHUB_SIZE": "medium",
           "STUDIOHUB_SIZE_LABEL": "2 vCPU + 4 GiB"}
    assert "the 4 GiB memory limit of size medium (2 vCPU + 4 GiB)" in \
        cgroups.oom_message_from_env(env)


def test_own_memory_cgroup_from_proc_self_cgroup(tmp_path: Path) -> None:
    v1 = fake_v1(tmp_path)
    text = "8:pids:/studiohub/jupyter-a\n4:memory:/studiohub/jupyter-a\n0::/\n"
    assert cgroups.own_memory_cgroup(text, v1) == (
        tmp_path / "memory" / "studiohub" / "jupyter-a", "v1")
    v2 = fake_v2(tmp_path)
    assert cgroups.own_memory_cgroup("0::/studiohub/jupyter-a\n", v2) == (
        tmp_path / "unified" / "studiohub" / "jupyter-a", "v2")
    (tmp_path / "x").mkdir()
    hybrid = fake_v2(tmp_path / "x", controllers="hugetlb")
    assert cgroups.own_memory_cgroup("0::/\n", hybrid) is None


def test_read_oom_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("max 3\noom 1\noom_kill 1\n")
    assert cgroups.read_oom(tmp_path, "v2") == OomCounters(1, 3)


# --- the server cgroups on a fake tree -------------------------------------------------------


def test_ensure_cgroup_v2_enables_controllers_and_writes_limits(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v2(tmp_path))
    tree = Cgroups(caps, "studiohub")
    dirs = tree.ensure_cgroup("jupyter-a", cgroups.make_v2_settings(1, GIB))
    parent = tmp_path / "unified" / "studiohub" / "jupyter-a"
    server = parent / "server"
    assert dirs == {"unified": parent}
    for directory in (tmp_path / "unified", parent.parent, parent):
        assert (directory / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    # The limits are on the server's leaf; the parent holds the leaves of placed kernels.
    assert not (parent / "memory.max").exists()
    assert (server / "memory.max").read_text() == "1073741824"
    assert (server / "cpu.max").read_text() == "100000 100000"
    assert tree.procs_files("jupyter-a") == [str(server / "cgroup.procs")]
    tree.ensure_leaf("jupyter-a", "k-1", cgroups.make_v2_settings(0.5, 2 * GIB))
    assert (parent / "k-1" / "memory.max").read_text() == str(2 * GIB)
    assert tree.leaves("jupyter-a") == ["k-1", "server"]
    assert tree.procs_files("jupyter-a", "k-1") == [str(parent / "k-1" / "cgroup.procs")]
    tree.ensure_leaf("jupyter-a", "k-2", {})  # a fake tree removes only empty directories
    assert tree.remove_leaf("jupyter-a", "k-2")
    assert tree.leaves("jupyter-a") == ["k-1", "server"]


def test_ensure_cgroup_v1_writes_each_hierarchy(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v1(tmp_path))
    tree = Cgroups(caps, "sh")
    tree.ensure_cgroup("jupyter-a", cgroups.make_v1_settings(2, GIB, pids_max=64))
    assert (tmp_path / "memory/sh/jupyter-a/server/memory.memsw.limit_in_bytes").read_text() \
        == "1073741824"
    assert (tmp_path / "cpu/sh/jupyter-a/server/cpu.cfs_quota_us").read_text() == "200000"
    host = os.cpu_count() or 1
    assert (tmp_path / "cpu/sh/cpu.shares").read_text() == str(1024 * host)
    for i in range(host + 2):
        tree.ensure_cgroup(f"jupyter-{i}", {})
    assert (tmp_path / "cpu/sh/cpu.shares").read_text() == str(1024 * (host + 3))
    assert (tmp_path / "pids/sh/jupyter-a/server/pids.max").read_text() == "64"
    assert not (tmp_path / "cpuacct" / "sh").exists()


def test_remove_takes_child_cgroups_first(tmp_path: Path) -> None:
    caps = Capabilities("v2", {"unified": tmp_path}, memory=True, cpu=True)
    kernel = tmp_path / "sh" / "jupyter-a" / "kernel-1"
    kernel.mkdir(parents=True)
    assert Cgroups(caps, "sh").remove("jupyter-a")
    assert not (tmp_path / "sh" / "jupyter-a").exists()
    assert Cgroups(caps, "sh").remove("jupyter-a")  # nothing left: still fine


def test_names_that_could_escape_are_refused(tmp_path: Path) -> None:
    tree = Cgroups(Capabilities("v2", {"unified": tmp_path}), "sh")
    for bad in ("", "a/b", "..", ".hidden"):
        with pytest.raises(ValueError):
            tree.dirs(bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_delegate_lets_the_account_move_processes_only(tmp_path: Path) -> None:
    caps = cgroups.detect(fake_v2(tmp_path))
    tree = Cgroups(caps, "sh")
    parent = tree.ensure_cgroup("jupyter-a", {})["unified"]
    for name in ("cgroup.procs", "cgroup.subtree_control", "server/cgroup.procs",
                 "server/memory.max"):
        (parent / name).write_text("")
    tree.delegate("jupyter-a", 12345, 12346)
    # v2 moves need the common parent's cgroup.procs; nothing else becomes the user's.
    assert (parent / "cgroup.procs").stat().st_uid == 12345
    assert (parent / "server" / "cgroup.procs").stat().st_uid == 12345
    assert parent.stat().st_uid == 0  # no new cgroups of their own
    assert (parent / "server").stat().st_uid == 0
    assert (parent / "cgroup.subtree_control").stat().st_uid == 0
    assert (parent / "server" / "memory.max").stat().st_uid == 0  # limits stay root's


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_v1_delegation_keeps_the_limit_free_parent_roots(tmp_path: Path) -> None:
    """On v1 a process may sit in any cgroup: the parent, which has no limits, stays root's."""
    caps = cgroups.detect(fake_v1(tmp_path))
    tree = Cgroups(caps, "sh")
    dirs = tree.ensure_cgroup("jupyter-a", {})
    for directory in dirs.values():
        for name in ("cgroup.procs", "tasks", "server/cgroup.procs", "server/tasks"):
            (directory / name).write_text("")
    tree.delegate("jupyter-a", 12345, 12346)
    for directory in dirs.values():
        assert (directory / "server" / "cgroup.procs").stat().st_uid == 12345
        assert (directory / "server" / "tasks").stat().st_uid == 12345
        assert (directory / "cgroup.procs").stat().st_uid == 0
        assert (directory / "tasks").stat().st_uid == 0


def test_join_writes_the_childs_pid(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    cgroups.make_join([str(procs)])()
    assert procs.read_text() == str(os.getpid())
