"""The keeper of one job attempt: a small root process that outlives the jobs service.

    python -I -m studiohub.jobs.keeper <state>/jobs/<id>/attempt-N.json
    python -I -m studiohub.jobs.keeper --spare OUTBOUND PRIVATE   (orders' path on stdin)

Why a process of its own: a replica must keep running, its output must keep reaching its
log, and its exit code must still be known, when the service restarts (an upgrade, a
crash). A replica started by the service itself would lose all three: its pipe's reader
gone (EPIPE kills a writer), and no one left to ``waitpid`` it. So the service (the local
executor) starts one keeper per attempt, in a session of its own, and the keeper:

1. moves itself into a new network namespace (:mod:`.netns`): every replica it forks is
   born there, reaching the others on 127.0.0.1 and the outside through slirp4netns;
2. starts each replica as a process group of its own: joins the replica's cgroup leaf
   (still root), becomes the user (groups, gid, uid), asks for SIGKILL when the keeper
   dies (so no replica outlives a killed keeper unnoticed), enters the code folder, execs;
3. copies each replica's stdout+stderr pipe into ``logs/attempt-N/<replica>.log``
   (root-owned, 0600; the user cannot point it anywhere), rotated into ``<replica>.log.1``
   so that the two keep at most ``max_log_bytes``, the newest output (:mod:`.logfiles`;
   the pipe is always drained, so a chatty replica never blocks);
4. reaps replicas and records in ``attempt-N.pids`` (JSON, written atomically) every
   replica's pid and start time, its exit code (negative: the signal), the OOM-kill
   counter of its leaf before and after, the resume lines of the SDK's checkpoint helper
   (the first :data:`MAX_RESUMES` distinct ones);
5. on SIGTERM (the executor's ``stop``) sends SIGTERM (and SIGCONT) to every replica's
   group, SIGKILL after ``stop_grace`` seconds, and exits once every replica is reaped.

A **spare** keeper (``--spare``) does step 1 before there are orders: the executor keeps
one started, so a job's start does not wait for an interpreter, its imports, a namespace
and slirp4netns (a few hundred milliseconds on a loaded host). It reads one line on
stdin, the path of its orders, then sends its own output to the attempt's keeper log and
goes on as above. Every spare serves one attempt: no namespace is ever reused. At end of
file on stdin (the service discarded it or is gone) it exits, and its slirp4netns with it.

Standard library only (plus :mod:`.netns`): it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..spawners.serverlog import open_log, rotate
from .logfiles import header
from .netns import die_with_parent, isolate

RESUMED = b"STUDIOHUB_RESUMED_FROM "
#: Distinct resume lines kept per replica (the first ones): a real resume prints one or a
#: few, and the whole list is rewritten to the status file on each new one, so a replica
#: printing them in a loop must not grow it (or the service's events) without end.
MAX_RESUMES = 20


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells a reused pid from ours.
    None for a process gone, or exited and not yet reaped (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def oom_kills(procs_files: list[str]) -> int:
    """OOM kills counted by the leaf's memory cgroup (v2 memory.events, v1 oom_control)."""
    total = 0
    for procs in procs_files:
        directory = Path(procs).parent
        for name in ("memory.events", "memory.oom_control"):
            try:
                text = (directory / name).read_text()
            except OSError:
                continue
            fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
            total += int(fields.get("oom_kill", 0))
    return total


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, 0600: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def make_preexec(replica: dict[str, Any]) -> Any:
    """In the forked child: cgroup (as root), then the user, then the code folder."""
    procs = list(replica["procs"])
    uid, gid, groups = replica["uid"], replica["gid"], replica["groups"]
    cwd = replica["cwd"]

    def preexec() -> None:
        try:
            steps()
        except Exception as e:  # Popen only says "Exception occurred in preexec_fn"
            os.write(2, f"[studiohub: the replica could not start: {e}]\n".encode())
            raise

    def steps() -> None:
        me = str(os.getpid()).encode()
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
        if os.getuid() == 0:  # a personal hub's keeper already is the user
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
        elif uid != os.getuid():
            raise PermissionError(f"a keeper running as uid {os.getuid()} cannot run "
                                  f"replicas as uid {uid}")
        die_with_parent()
        os.chdir(cwd)

    return preexec


class Replica:
    def __init__(self, spec: dict[str, Any], log_path: Path, limit: int) -> None:
        self.spec, self.name, self.log_path = spec, spec["name"], log_path
        self.part_bytes = max(1, limit // 2)  # two parts on disk at most
        self.fd: int | None = open_log(log_path)
        self.part, self.in_part, self.total, self.partial = 0, 0, 0, b""
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.open = True
        self.oom_before = oom_kills(spec["procs"])
        self.oom_after: int | None = None
        self.resumed: list[str] = []

    def start(self) -> int:
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                self.spec["argv"], env=self.spec["env"], stdin=subprocess.DEVNULL,
                stdout=write_end, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=make_preexec(self.spec))
        except Exception:
            os.close(write_end)
            while data := os.read(read_end, 65536):  # what the child said before failing
                self.copy(data)
            os.close(read_end)
            raise
        os.close(write_end)
        os.set_blocking(read_end, False)
        return read_end

    def copy(self, data: bytes) -> None:
        """Keep ``data`` in the log and note the checkpoint lines."""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()[-4096:]
        for line in lines:
            if len(self.resumed) >= MAX_RESUMES:
                break
            if line.startswith(RESUMED):
                where = line[len(RESUMED):].decode(errors="replace").strip()
                if where not in self.resumed:
                    self.resumed.append(where)
        self.write(data)

    def write(self, data: bytes) -> None:
        """Append to the newest part; a full part is rotated first (the older one goes)."""
        view = memoryview(data)
        while view and self.fd is not None:
            if self.in_part >= self.part_bytes:
                os.close(self.fd)
                rotate(self.log_path)
                self.fd, self.part, self.in_part = open_log(self.log_path), self.part + 1, 0
                os.write(self.fd, header(self.part, self.total))
            done = os.write(self.fd, view[:self.part_bytes - self.in_part])
            self.in_part += done
            self.total += done
            view = view[done:]

    def dropped(self) -> int:
        """Bytes of output no longer on disk: everything before the older part."""
        return 0 if self.part < 2 else (self.part - 1) * self.part_bytes

    def close(self) -> None:
        self.open = False
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def state(self) -> dict[str, Any]:
        pid = self.proc.pid if self.proc else None
        return {"pid": pid, "start": self.spec.get("start"), "exit_code": self.exit_code,
                "oom_before": self.oom_before, "oom_after": self.oom_after,
                "resumed": self.resumed, "output_bytes": self.total,
                "dropped_bytes": self.dropped()}


class Keeper:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.status_path = Path(config["status"])
        self.stopping: float | None = None
        self.network = ""
        self.slirp: dict[str, Any] | None = None
        log_dir = Path(config["log_dir"])
        self.replicas = [Replica(r, log_dir / f"{r['name']}.log", config["max_log_bytes"])
                         for r in config["replicas"]]
        self.error = ""

    def save(self, done: bool = False) -> None:
        write_json(self.status_path, {
            "keeper": {"pid": os.getpid(), "start": start_ticks(os.getpid())},
            "network": self.network, "slirp": self.slirp, "error": self.error, "done": done,
            "started": all(r.proc for r in self.replicas),
            "replicas": {r.name: r.state() for r in self.replicas}})

    def on_term(self, *_: object) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()
            self.signal_all(signal.SIGTERM)
            # A replica its owner stopped (SIGSTOP) takes the SIGTERM once continued,
            # rather than the whole grace period.
            self.signal_all(signal.SIGCONT)

    def signal_all(self, sig: int) -> None:
        for r in self.replicas:
            if r.proc and r.exit_code is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(r.proc.pid, sig)

    def isolate(self) -> None:
        """Step 1: the attempt's own network namespace (unless the orders say host)."""
        self.network, self.slirp = make_network(self.config.get("private_network", True),
                                                self.config.get("outbound", True))

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        if not self.network:
            self.isolate()
        selector = selectors.DefaultSelector()
        for r in self.replicas:
            if self.stopping is not None:
                break
            try:
                fd = r.start()
            except Exception as e:  # any failure: stop what started
                why = "see its log" if isinstance(e, subprocess.SubprocessError) else e
                self.error = f"{r.name} could not start: {why}"
                r.write(f"[studiohub: {self.error}]\n".encode())
                self.on_term()
                break
            assert r.proc is not None
            r.spec["start"] = start_ticks(r.proc.pid)
            selector.register(fd, selectors.EVENT_READ, r)
        self.save()
        self.loop(selector)
        self.save(done=True)
        return 0

    def loop(self, selector: selectors.BaseSelector) -> None:
        all_exited_at: float | None = None
        while True:
            for key, _ in selector.select(timeout=0.2):
                r: Replica = key.data
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    resumes = len(r.resumed)
                    r.copy(data)
                    if len(r.resumed) != resumes:
                        self.save()  # the service tells "resumed from" while the job runs
                else:
                    selector.unregister(key.fd)
                    os.close(key.fd)
            if self.reap():
                self.save()
            grace = self.config.get("stop_grace", 5.0)
            if self.stopping is not None and time.monotonic() - self.stopping > grace:
                self.signal_all(signal.SIGKILL)
            if all(r.exit_code is not None or not r.proc for r in self.replicas):
                # Output a replica's leftover children still write is read a little longer.
                all_exited_at = all_exited_at or time.monotonic()
                if not selector.get_map() or time.monotonic() - all_exited_at > 2.0:
                    break
        for key in list(selector.get_map().values()):
            os.close(key.fd)
        for r in self.replicas:
            r.close()

    def reap(self) -> bool:
        changed = False
        for r in self.replicas:
            if r.proc and r.exit_code is None and r.proc.poll() is not None:
                r.exit_code = r.proc.returncode
                r.oom_after = oom_kills(r.spec["procs"])
                changed = True
        return changed


def make_network(private: bool, outbound: bool) -> tuple[str, dict[str, Any] | None]:
    """(what the namespace reaches, slirp4netns's pid and start time or None)."""
    if not private:
        return "host", None
    network, pid = isolate(outbound)
    return network, None if pid is None else {"pid": pid, "start": start_ticks(pid)}


def read_orders(path: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(path).read_text())
    for replica in config["replicas"]:  # the account is looked up once, as root
        account = pwd.getpwnam(replica["user"])
        replica.setdefault("uid", account.pw_uid)
        replica.setdefault("gid", account.pw_gid)
        replica.setdefault("groups", os.getgrouplist(account.pw_name, account.pw_gid))
    return config


def keeper_log(orders: str) -> str:
    """``attempt-N.keeper.log`` beside ``attempt-N.json``."""
    return orders.removesuffix(".json") + ".keeper.log"


def spare(private: bool, outbound: bool) -> int:
    """Prepare the namespace, wait for the orders' path on stdin, then keep them."""
    network, slirp = make_network(private, outbound)
    orders = sys.stdin.readline().strip()
    if not orders:
        return 0  # discarded before any orders
    fd = os.open(keeper_log(orders), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (fd, 1), (fd, 2)):
        os.dup2(source, target)
    os.close(fd)
    os.close(null)
    keeper = Keeper(read_orders(orders))
    if (keeper.config.get("private_network", True), keeper.config.get("outbound", True)) != \
            (private, outbound):
        keeper.error = "the spare keeper's network does not match the orders"
        keeper.save(done=True)
        return 1
    keeper.network, keeper.slirp = network, slirp
    return keeper.run()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if args[0] == "--spare":
        # Until it has orders, a spare ends on SIGTERM as any process does.
        return spare(args[1] == "1", args[2] == "1")
    keeper = Keeper(read_orders(args[0]))
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main())
