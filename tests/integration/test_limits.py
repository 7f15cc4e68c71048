"""Sizes really enforced: real cgroups, a real unix account, real processes (needs root).

Each test runs a Python child the way StudioSpawner starts a server: forked as root,
joined to its cgroup, then switched to the user's account before ``exec``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyterhub.spawner import set_user_setuid

from studiohub import cgroups
from studiohub.slugs import cgroup_name, unix_name
from studiohub.users import ensure_user

pytestmark = pytest.mark.integration
MIB = 1024**2


@pytest.fixture(scope="module")
def caps() -> cgroups.Capabilities:
    if os.geteuid() != 0:
        pytest.skip("creating cgroups and unix accounts needs root")
    found = cgroups.detect()
    if not found.enforced:
        pytest.skip(f"this host cannot enforce limits: {found.summary}")
    return found


@pytest.fixture(scope="module")
def account(caps: cgroups.Capabilities) -> Iterator[str]:
    name = f"limits{uuid.uuid4().hex[:6]}"
    entry = ensure_user(name)
    yield entry.pw_name
    subprocess.run(["userdel", "-r", entry.pw_name], capture_output=True, check=False)


@pytest.fixture
def tree(caps: cgroups.Capabilities) -> Iterator[cgroups.Cgroups]:
    """A private cgroup root for one test, removed with everything in it afterwards."""
    tree = cgroups.Cgroups(caps, f"studiohub-test-{uuid.uuid4().hex[:6]}")
    yield tree
    for mount in caps.mounts.values():
        root = mount / tree.root
        for child in root.glob("*/") if root.exists() else []:
            assert tree.remove(child.name, timeout=30), f"{child} still busy after 30 s"
        deadline = time.monotonic() + 30
        while root.exists():  # the kernel may answer EBUSY until the last exit is done
            try:
                root.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def run_as(user: str, tree: cgroups.Cgroups, name: str, code: str,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    join = cgroups.make_join(tree.procs_files(name))
    become = set_user_setuid(user)

    def preexec() -> None:
        join()
        become()

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], preexec_fn=preexec,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_ensure_user_creates_a_private_home(account: str) -> None:
    import pwd

    entry = pwd.getpwnam(account)
    assert account.startswith("jupyter-limits") and entry.pw_uid != 0
    assert stat.S_IMODE(os.stat(entry.pw_dir).st_mode) == 0o700
    assert ensure_user(account.removeprefix("jupyter-")) == entry  # idempotent
    assert unix_name(account.removeprefix("jupyter-")) == account


def test_accounts_for_many_first_logins_at_once(caps: cgroups.Capabilities) -> None:
    """Spawns create accounts in threads; odd hub names still give valid accounts."""
    import pwd
    from concurrent.futures import ThreadPoolExecutor

    stem = uuid.uuid4().hex[:5]
    names = [f"Many.{stem}@Example.org", *(f"many{stem}{i}" for i in range(5))]
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            entries = list(pool.map(ensure_user, names))
        assert [e.pw_name for e in entries] == [unix_name(n) for n in names]
        assert entries[0].pw_name.startswith("jupyter-many-") and "--" in entries[0].pw_name
        for entry in entries:
            assert pwd.getpwnam(entry.pw_name).pw_uid == entry.pw_uid
            assert stat.S_IMODE(os.stat(entry.pw_dir).st_mode) == 0o700
            assert os.stat(entry.pw_dir).st_uid == entry.pw_uid
    finally:
        for name in names:
            subprocess.run(["userdel", "-r", unix_name(name)], capture_output=True, check=False)


def test_memory_limit_kills_and_counts(tree: cgroups.Cgroups, account: str) -> None:
    caps = tree.caps
    tree.ensure_cgroup("mem", cgroups.make_settings(caps, 1, 300 * MIB))
    assert tree.read_oom("mem") == cgroups.OomCounters(0, 0)
    result = run_as(account, tree, "mem", """
        import os
        print(os.getuid(), flush=True)
        chunks = [bytearray(50 * 1024 * 1024) for _ in range(12)]  # 600 MiB, touched
        print("survived", flush=True)
    """)
    assert result.returncode == -9, (result.returncode, result.stdout, result.stderr)
    assert "survived" not in result.stdout and int(result.stdout.split()[0]) != 0
    counters = tree.read_oom("mem")
    assert counters is not None and counters.kills >= 1
    assert cgroups.oom_message(300 * MIB, "test", "1 vCPU + 300 MiB").startswith(
        "your kernel was stopped: it went past the 300 MiB memory limit of size test")


def test_under_the_limit_nothing_is_killed(tree: cgroups.Cgroups, account: str) -> None:
    tree.ensure_cgroup("fits", cgroups.make_settings(tree.caps, 1, 300 * MIB))
    result = run_as(account, tree, "fits", """
        chunks = [bytearray(50 * 1024 * 1024) for _ in range(4)]  # 200 MiB
        print("ok")
    """)
    assert result.stdout.strip() == "ok", result.stderr
    assert tree.read_oom("fits") == cgroups.OomCounters(0, 0)


def test_half_a_cpu_is_half_a_cpu(tree: cgroups.Cgroups, account: str) -> None:
    tree.ensure_cgroup("cpu", cgroups.make_settings(tree.caps, 0.5, 300 * MIB))
    result = run_as(account, tree, "cpu", """
        import multiprocessing, resource, time
        def burn(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        if __name__ == "__main__":
            start = time.monotonic()
            procs = [multiprocessing.Process(target=burn, args=(2,)) for _ in range(2)]
            [p.start() for p in procs]; [p.join() for p in procs]
            wall = time.monotonic() - start
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(round((used.ru_utime + used.ru_stime) / wall, 3))
            line = [l for l in open("/proc/self/cgroup") if ":cpu:" in l or l.startswith("0::")]
            print(line[0].strip().split(":", 2)[2])
    """)
    assert result.returncode == 0, result.stderr
    cpus_used, cgroup_path = result.stdout.split()
    # Two busy processes would use up to 2 CPUs here; the size allows 0.5.
    assert float(cpus_used) <= 0.6, result.stdout
    assert cgroup_path == f"/{tree.root}/cpu/server"
    if tree.caps.version == "v1":
        assert (tree.leaf_dirs("cpu")["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"


def test_process_count_limit(tree: cgroups.Cgroups, account: str) -> None:
    tree.ensure_cgroup("pids", cgroups.make_settings(tree.caps, 1, 300 * MIB, pids_max=8))
    result = run_as(account, tree, "pids", """
        import subprocess
        started = []
        try:
            for _ in range(20):
                started.append(subprocess.Popen(["sleep", "5"]))
        except OSError as e:
            print("refused", e.errno)
        for p in started:
            p.kill()
        print(len(started))
    """)
    assert result.stdout.split()[:2] == ["refused", "11"], (result.stdout, result.stderr)
    assert int(result.stdout.split()[2]) < 8


def test_remove_kills_leftovers_including_child_cgroups(tree: cgroups.Cgroups,
                                                        account: str) -> None:
    """A server's account may move its processes into a kernel leaf the hub made for it,
    but not make cgroups of its own; removing the server's cgroup takes every leaf."""
    import pwd

    entry = pwd.getpwnam(account)
    name = cgroup_name(account)
    dirs = tree.ensure_cgroup(name, cgroups.make_settings(tree.caps, 1, 300 * MIB))
    tree.delegate(name, entry.pw_uid, entry.pw_gid)
    tree.ensure_leaf(name, "k-1", cgroups.make_settings(tree.caps, 0.5, 200 * MIB))
    tree.delegate(name, entry.pw_uid, entry.pw_gid, "k-1")
    memory = dirs.get("unified") or dirs["memory"]
    join = cgroups.make_join(tree.procs_files(name))
    become = set_user_setuid(account)

    def preexec() -> None:
        join()
        become()

    # As the user: no cgroup of one's own, no higher limit, no escape into the limit-free
    # parent, but a move into the leaf.
    code = textwrap.dedent(f"""
        import os, time
        try:
            os.mkdir({str(memory)!r} + "/mine")
            print("made a cgroup", flush=True)
        except PermissionError:
            pass
        try:
            open({str(memory)!r} + "/k-1/memory.limit_in_bytes", "w").write("1")
            print("raised a limit", flush=True)
        except (PermissionError, FileNotFoundError):
            pass
        try:  # out of every limit: the parent has none (v1 denies it, v2 refuses it busy)
            open({str(memory)!r} + "/cgroup.procs", "w").write(str(os.getpid()))
            print("escaped into the parent", flush=True)
        except OSError:
            pass
        for procs in {tree.procs_files(name, "k-1")!r}:
            open(procs, "w").write(str(os.getpid()))
        print("moved", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], preexec_fn=preexec,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "moved"
        assert proc.pid in tree.pids(name)
        assert str(proc.pid) in (memory / "k-1" / "cgroup.procs").read_text().split()
        assert tree.remove(name)
        assert proc.wait(15) == -9
        assert not memory.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_own_cgroup_is_readable_from_inside(tree: cgroups.Cgroups, account: str) -> None:
    """What a server extension does: find its own cgroup and read its OOM counters."""
    tree.ensure_cgroup("self", cgroups.make_settings(tree.caps, 1, 300 * MIB))
    repo = Path(__file__).resolve().parents[2] / "hub_config"
    result = run_as(account, tree, "self", f"""
        import sys
        sys.path.insert(0, {str(repo)!r})
        from studiohub import cgroups
        print(cgroups.own_memory_cgroup()[0], cgroups.own_oom_counters())
    """)
    assert result.returncode == 0, result.stderr
    where, counters = result.stdout.split(" ", 1)
    assert where.endswith(f"/{tree.root}/self/server")
    assert counters.strip() == "OomCounters(kills=0, limit_hits=0)"
