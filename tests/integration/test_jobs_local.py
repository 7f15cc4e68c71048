"""The local executor with real processes: a real unix account, the job's own network
namespace, logs, stop, and a 2-worker PyTorch DDP job whose workers all-reduce.

The PyTorch environment is the one tests/integration/test_frameworks.py builds into
``$STUDIOHUB_TEST_ENVS`` (or the host's /opt/studiohub/envs/pytorch); the DDP test is
skipped, saying so, when neither exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from studiohub import users
from studiohub.jobs import logfiles
from studiohub.jobs import replicas as rp
from studiohub.jobs.local import LocalExecutor
from studiohub.jobs.model import AttemptPlan, ReplicaPlan

ENVS = [Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs")) / "envs",
        Path("/opt/studiohub/envs")]
PORT = 29500

if os.geteuid() != 0:
    pytest.skip("the local executor runs jobs as other accounts: run as root",
                allow_module_level=True)


def env_python(image: str) -> Path:
    for root in ENVS:
        if (root / image / "bin" / "python").exists():
            return root / image / "bin" / "python"
    return Path(sys.executable)  # "base" stand-in for plain jobs: any python works


def new_account(stem: str) -> pwd.struct_passwd:
    """A fresh account; retried while another process holds /etc/passwd's lock."""
    for _ in range(20):
        try:
            return users.ensure_user(f"{stem}{secrets.token_hex(3)}")
        except users.UserError as e:
            if "cannot lock" not in str(e):
                raise
            time.sleep(0.5)
    raise AssertionError("/etc/passwd stayed locked")


@pytest.fixture
def account() -> Iterator[pwd.struct_passwd]:
    entry = new_account("jb")
    yield entry
    subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
    subprocess.run(["userdel", "-r", entry.pw_name], capture_output=True, check=False)


@pytest.fixture
def other() -> Iterator[pwd.struct_passwd]:
    entry = new_account("jbo")
    yield entry
    subprocess.run(["userdel", "-r", entry.pw_name], capture_output=True, check=False)


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return LocalExecutor(state, env_python=env_python, stop_grace=2.0)


def write_code(account: pwd.struct_passwd, name: str, text: str) -> Path:
    code = Path(account.pw_dir) / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(text)
    os.chown(code, account.pw_uid, account.pw_gid)
    os.chown(code / name, account.pw_uid, account.pw_gid)
    return code


def make_plan(account: pwd.struct_passwd, code: Path, argv: Sequence[str], *,
              kind: str = rp.PLAIN, workers: int = 1, image: str = "base",
              gpus: Sequence[Sequence[str]] = ()) -> AttemptPlan:
    job_id = secrets.token_hex(6)
    replicas = rp.make_replicas(kind, workers)
    addresses = [f"127.0.0.1:{PORT + r.rank}" for r in replicas]
    plans = []
    for r in replicas:
        env = rp.make_replica_env(kind, replicas, addresses, r, job_id=job_id, attempt=1,
                                  checkpoint_dir=str(code), output_dir=str(code),
                                  tensorboard_dir=str(code))
        held = tuple(gpus[r.rank]) if gpus else ()
        env["CUDA_VISIBLE_DEVICES"] = ",".join(held)
        plans.append(ReplicaPlan(r.name, r.rank, env, held))
    return AttemptPlan(job_id=job_id, attempt=1, user=account.pw_name,
                       unix_user=account.pw_name, command=list(argv), workdir=str(code),
                       job_dir="", replicas=plans, image=image, size="tiny")


async def wait_done(executor: LocalExecutor, plan: AttemptPlan, timeout: float = 60
                    ) -> list[int | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = await executor.poll(plan)
        if not any(s.running for s in states):
            return [s.exit_code for s in states]
        await asyncio.sleep(0.1)
    await executor.stop(plan)
    raise AssertionError(f"the job did not end in {timeout} s")


def read_log(executor: LocalExecutor, plan: AttemptPlan, replica: str = "worker-0") -> str:
    return executor.log_path(plan.job_id, 1, replica).read_text()


PLAIN = """
import os, sys
print("hello from", os.getuid(), os.environ["STUDIOHUB_REPLICA"], os.getcwd())
print("gpus", repr(os.environ["CUDA_VISIBLE_DEVICES"]))
print("oops", file=sys.stderr)
"""


def test_one_replica_runs_as_the_user_and_its_output_is_kept(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    code = write_code(account, "hello.py", PLAIN)
    plan = make_plan(account, code, [sys.executable, "hello.py"], gpus=[["GPU-a", "GPU-b"]])

    async def run() -> list[int | None]:
        await executor.start(plan)
        assert await executor.running() == [(plan.job_id, 1)]
        return await wait_done(executor, plan)

    assert asyncio.run(run()) == [0]
    log = read_log(executor, plan)
    assert f"hello from {account.pw_uid} worker-0 {code}\n" in log
    assert "gpus 'GPU-a,GPU-b'\n" in log and "oops\n" in log
    path = executor.log_path(plan.job_id, 1, "worker-0")
    assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (0, 0o600)
    assert executor.job_dir(plan.job_id).stat().st_mode & 0o777 == 0o700
    assert asyncio.run(executor.running()) == []


def test_exit_codes_and_the_log_bound(executor: LocalExecutor,
                                      account: pwd.struct_passwd) -> None:
    executor.max_log_bytes = 2000
    code = write_code(account, "fail.py", "print('x' * 5000, flush=True)\n"
                      "print('the end')\nraise SystemExit(2)\n")
    plan = make_plan(account, code, [sys.executable, "fail.py"])

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan)

    assert asyncio.run(run()) == [2]
    state = asyncio.run(executor.poll(plan))[0]
    assert (state.running, state.reason) == (False, "exit code 2 (worker-0)")
    text = logs_answer(executor, plan)
    assert text.startswith("[studiohub: the first 4000 bytes of this replica's output were "
                           "not kept (jobs.max_log_bytes)"), text[:300]
    # 5009 bytes in parts of 1000: the last two parts kept (from byte 4000 on).
    assert text[logfiles.MARKER_BYTES:] == "x" * 1000 + "\nthe end\n"


def logs_answer(executor: LocalExecutor, plan: AttemptPlan, offset: int = 0,
                limit: int = 1 << 30) -> str:
    """What the logs endpoint answers from ``offset`` (its own two calls)."""
    path = executor.log_path(plan.job_id, 1, "worker-0")
    position, marker = logfiles.to_logical(logfiles.parts(path), offset)
    return (marker + logfiles.read(path, position, limit)[0]).decode()


FLOOD = """
for i in range(3000):
    print(f"line {i:05d} " + "x" * 60)
print("last line")
raise SystemExit(2)
"""


def test_a_replica_printing_without_end_keeps_its_newest_output_within_the_bound(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """~3.3 × max_log_bytes of output: on disk, the two parts hold at most the bound (plus
    a header line); the logs answer is the marker (how much was dropped), then the newest
    output, whole lines in order up to the last; polling it by offset reads the same."""
    cap = 64 * 1024
    executor.max_log_bytes = cap
    plan = make_plan(account, write_code(account, "flood.py", FLOOD),
                     [sys.executable, "flood.py"])

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan)

    assert asyncio.run(run()) == [2]
    path = executor.log_path(plan.job_id, 1, "worker-0")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["worker-0.log", "worker-0.log.1"]
    assert sum(p.stat().st_size for p in path.parent.iterdir()) <= cap + 200
    status = executor.status(plan.job_id, 1)
    assert status is not None
    dropped = status["replicas"]["worker-0"]["dropped_bytes"]
    assert status["replicas"]["worker-0"]["output_bytes"] == 3000 * 72 + 10
    assert dropped >= 3000 * 72 + 10 - cap
    text = logs_answer(executor, plan)
    first, rest = text.split("\n", 1)
    assert first.startswith(f"[studiohub: the first {dropped} bytes of this replica's output "
                            "were not kept (jobs.max_log_bytes); its newest output follows]")
    assert len(first) + 1 == logfiles.MARKER_BYTES
    lines = rest.splitlines()[1:]  # the first may be cut mid-line
    numbers = [int(line.split()[1]) for line in lines[:-1]]
    assert numbers == list(range(numbers[0], 3000)) and lines[-1] == "last line"
    assert numbers[0] > 2000  # only the newest output
    polled, offset = "", 0
    while chunk := logs_answer(executor, plan, offset, limit=10_000):
        polled += chunk
        offset += len(chunk.encode())
    assert polled == text


LISTEN = """
import os, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["STUDIOHUB_TEST_PORT"])))
s.listen()
c = socket.create_connection(("127.0.0.1", int(os.environ["STUDIOHUB_TEST_PORT"])))
print("LISTENING, reachable from inside", flush=True)
time.sleep(120)
"""


def listening_job(executor: LocalExecutor, account: pwd.struct_passwd, port: int
                  ) -> AttemptPlan:
    code = write_code(account, "listen.py", LISTEN)
    plan = make_plan(account, code, [sys.executable, "listen.py"])
    return AttemptPlan(**{**plan.__dict__, "env": {"STUDIOHUB_TEST_PORT": str(port)}})


def connect_as(account: pwd.struct_passwd, port: int) -> str:
    """Connect to 127.0.0.1:port from the host's network, as ``account``."""
    probe = (f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), 2)\n"
             " print('connected')\nexcept OSError as e:\n print(type(e).__name__)")
    return subprocess.run([sys.executable, "-c", probe], user=account.pw_uid,
                          group=account.pw_gid, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("private", [True, False], ids=["namespace", "host-network"])
def test_another_account_cannot_connect_to_a_replicas_port(
        executor: LocalExecutor, account: pwd.struct_passwd, other: pwd.struct_passwd,
        private: bool) -> None:
    """The same job on the host's network (``private_network=False``) is reachable by the
    other account: the namespace is what refuses it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor.private_network = private
    plan = listening_job(executor, account, port)

    async def run() -> tuple[str, list[int | None]]:
        await executor.start(plan)
        deadline = time.monotonic() + 30
        while "LISTENING" not in read_log(executor, plan) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "LISTENING, reachable from inside" in read_log(executor, plan)
        seen = connect_as(other, port)
        started = time.monotonic()
        await executor.stop(plan)
        assert time.monotonic() - started < 10  # SIGTERM is enough: no wait for SIGKILL
        return seen, [s.exit_code for s in await executor.poll(plan)]

    seen, codes = asyncio.run(run())
    assert seen == ("ConnectionRefusedError" if private else "connected")
    assert codes == [-15]  # stop ended the replica (SIGTERM)
    status = executor.status(plan.job_id, 1)
    assert status is not None
    for replica in status["replicas"].values():
        assert not Path(f"/proc/{replica['pid']}").exists()
    if private:
        assert status["network"] == "outbound through slirp4netns"


def test_stop_kills_every_replica_and_is_idempotent(executor: LocalExecutor,
                                                    account: pwd.struct_passwd) -> None:
    code = write_code(account, "sleep.py", "import signal, time\n"
                      "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\n"
                      "time.sleep(300)\n")
    plan = make_plan(account, code, [sys.executable, "sleep.py"], workers=2)

    async def run() -> None:
        await executor.start(plan)
        await asyncio.sleep(0.5)
        assert all(s.running for s in await executor.poll(plan))
        await executor.stop(plan)  # SIGTERM ignored: SIGKILL after the grace
        await executor.stop(plan)
        assert [s.exit_code for s in await executor.poll(plan)] == [-9, -9]
        assert await executor.running() == []

    asyncio.run(run())


def test_stop_ends_a_replica_its_owner_stopped_with_sigterm(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """A user who SIGSTOPs their own replica cannot make a stop wait out the grace
    period (the models service stops versions under its lock)."""
    code = write_code(account, "sleep.py", "import time\nprint('up', flush=True)\n"
                      "time.sleep(300)\n")
    plan = make_plan(account, code, [sys.executable, "sleep.py"], workers=1)

    async def run() -> None:
        await executor.start(plan)
        deadline = time.monotonic() + 30
        while "up" not in read_log(executor, plan) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        status = executor.status(plan.job_id, 1)
        assert status is not None
        (replica,) = status["replicas"].values()
        os.kill(replica["pid"], signal.SIGSTOP)
        started = time.monotonic()
        await executor.stop(plan)
        assert time.monotonic() - started < executor.stop_grace
        assert [s.exit_code for s in await executor.poll(plan)] == [-15]

    asyncio.run(run())


DDP = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("ALLREDUCE", dist.get_rank(), dist.get_world_size(), t.item(), flush=True)
dist.destroy_process_group()
"""


def test_two_pytorch_workers_all_reduce(executor: LocalExecutor,
                                        account: pwd.struct_passwd) -> None:
    python = env_python("pytorch")
    if python == Path(sys.executable):
        pytest.skip("no PyTorch environment: run tests/integration/test_frameworks.py "
                    "or `studiohub env build pytorch` first")
    code = write_code(account, "ddp.py", DDP)
    plan = make_plan(account, code, [str(python), "ddp.py"], kind=rp.PYTORCH, workers=2,
                     image="pytorch")

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan, timeout=90)

    codes = asyncio.run(run())
    logs = {r: read_log(executor, plan, r) for r in ("worker-0", "worker-1")}
    assert codes == [0, 0], json.dumps(logs)
    assert "ALLREDUCE 0 2 3.0" in logs["worker-0"]
    assert "ALLREDUCE 1 2 3.0" in logs["worker-1"]


@pytest.fixture
def leaf() -> Iterator[list[str]]:
    """A replica's cgroup leaf with 256 MiB, made as the hub's placement owner makes them."""
    from studiohub import cgroups

    caps = cgroups.detect(root="studiohub-jobtest")
    if not caps.memory:
        pytest.skip(f"no memory cgroup here: {caps.reason}")
    tree = cgroups.Cgroups(caps, "studiohub-jobtest")
    name = f"job-{secrets.token_hex(4)}"
    settings = cgroups.make_settings(caps, 1, 256 * 2**20)
    tree.ensure_cgroup(name, settings)
    tree.ensure_leaf(name, "worker-0", settings)
    yield tree.procs_files(name, "worker-0")
    tree.remove(name)
    for mount in caps.mounts.values():
        with contextlib.suppress(OSError):  # busy: another test's leaf is still there
            (mount / "studiohub-jobtest").rmdir()


HOG = """
import os
print("in", open("/proc/self/cgroup").read().replace("\\n", " "), flush=True)
block = []
while True:
    block.append(bytearray(32 * 2**20))
"""


def test_a_replica_runs_in_its_leaf_and_an_oom_kill_is_reported(
        executor: LocalExecutor, account: pwd.struct_passwd, leaf: list[str]) -> None:
    code = write_code(account, "hog.py", HOG)
    plan = make_plan(account, code, [sys.executable, "hog.py"])
    plan = AttemptPlan(**{**plan.__dict__, "replicas": [
        ReplicaPlan(**{**plan.replicas[0].__dict__, "cgroup_procs": tuple(leaf)})]})

    async def run() -> None:
        await executor.start(plan)
        await wait_done(executor, plan)

    asyncio.run(run())
    state = asyncio.run(executor.poll(plan))[0]
    assert (state.exit_code, state.oom_killed, state.reason) == \
        (-9, True, "OOMKilled: worker-0 used more than 256 MiB"), read_log(executor, plan)
    # Joined before the user's code ran: /proc/self/cgroup names the leaf.
    leaf_dir = Path(leaf[0]).parent
    assert f"/studiohub-jobtest/{leaf_dir.parent.name}/worker-0 " in read_log(executor, plan)


CHILD_HOG = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "b = bytearray(2**31)"])
sys.exit(3)
"""


def test_a_child_oom_kill_is_reported_though_the_replica_exits_with_its_own_code(
        executor: LocalExecutor, account: pwd.struct_passwd, leaf: list[str]) -> None:
    """As in a notebook job: papermill's kernel is killed and papermill exits with its own
    code; the reason still names the OOM kill and the memory (issue 13)."""
    code = write_code(account, "parent.py", CHILD_HOG)
    plan = make_plan(account, code, [sys.executable, "parent.py"])
    plan = AttemptPlan(**{**plan.__dict__, "replicas": [
        ReplicaPlan(**{**plan.replicas[0].__dict__, "cgroup_procs": tuple(leaf)})]})

    async def run() -> None:
        await executor.start(plan)
        await wait_done(executor, plan)

    asyncio.run(run())
    state = asyncio.run(executor.poll(plan))[0]
    assert (state.exit_code, state.oom_killed, state.reason) == \
        (3, True, "OOMKilled: worker-0 used more than 256 MiB"), read_log(executor, plan)


def test_the_job_reaches_the_network_outside_its_namespace(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """Outbound through slirp4netns: a TCP server on the host's own address answers."""
    host = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    address = next((a for a in host if "." in a), None)
    if not address:
        pytest.skip("this host has no IPv4 address besides loopback")
    server = socket.create_server((address, 0))
    port = server.getsockname()[1]
    code = write_code(account, "out.py", f"""
import socket
c = socket.create_connection(({address!r}, {port}), 5)
print("got", c.recv(100).decode(), flush=True)
""")
    plan = make_plan(account, code, [sys.executable, "out.py"])

    async def run() -> list[int | None]:
        await executor.start(plan)
        conn, _ = await asyncio.to_thread(server.accept)
        conn.sendall(b"hello-outside")
        conn.close()
        return await wait_done(executor, plan)

    try:
        assert asyncio.run(run()) == [0], read_log(executor, plan)
    finally:
        server.close()
    assert "got hello-outside" in read_log(executor, plan)


SERVICE = """
import asyncio, pickle, sys
from studiohub.jobs.local import LocalExecutor
executor, plan = pickle.loads(sys.stdin.buffer.read())
asyncio.run(executor.start(plan))
print("started", flush=True)
"""
TICKS = """
import os, time
i = 0
while not os.path.exists("stop-now"):
    print("tick", i, flush=True)
    i += 1
    time.sleep(0.05)
print("last", i, flush=True)
raise SystemExit(3)
"""


def test_the_attempt_outlives_the_service_that_started_it(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """A service process starts the attempt and exits; a new executor (the restarted
    service) finds it running, its log still growing, and its exit code once it ends."""
    import pickle

    code = write_code(account, "ticks.py", TICKS)
    plan = make_plan(account, code, [sys.executable, "ticks.py"], workers=2)
    service = subprocess.run([sys.executable, "-c", SERVICE], capture_output=True,
                             input=pickle.dumps((executor, plan)), check=False)
    assert service.stdout == b"started\n", service.stderr.decode()[-2000:]
    restarted = LocalExecutor(executor.state_dir, env_python=env_python)

    async def run() -> list[int | None]:
        assert await restarted.running() == [(plan.job_id, 1)]
        assert all(s.running for s in await restarted.poll(plan))
        before = read_log(restarted, plan).count("tick")
        await asyncio.sleep(1)  # the logs still grow: their copier outlived the service
        assert read_log(restarted, plan).count("tick") > before
        (code / "stop-now").touch()
        return await wait_done(restarted, plan)

    assert asyncio.run(run()) == [3, 3]
    for replica in ("worker-0", "worker-1"):
        assert read_log(restarted, plan, replica).splitlines()[-1].startswith("last")
    assert asyncio.run(restarted.running()) == []


def test_a_notebook_job_from_snapshot_to_executed_notebook(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """The whole local path: snapshot as the user, papermill with the image's kernel and
    the parameters, the executed notebook with its outputs in outputs/, cells in the log."""
    import nbformat

    from studiohub.jobs.runner import make_command
    from studiohub.jobs.snapshot import snapshot
    from studiohub.jobs.spec import parse_spec

    kernels = ENVS[0].parent / "share" / "jupyter"
    if not (kernels / "kernels" / "studiohub-base" / "kernel.json").exists():
        pytest.skip("no base environment kernel: run tests/integration/test_frameworks.py")
    executor.jupyter_data = str(kernels)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1\nname = 'x'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os\nprint('lr', lr, 'name', name, os.environ['STUDIOHUB_REPLICA'])")]
    write_code(account, "nb.ipynb", nbformat.writes(nb))
    spec = parse_spec({"image": "base", "notebook": "code/nb.ipynb",
                       "parameters": {"lr": 0.5, "name": "007"}})
    plan = make_plan(account, Path(account.pw_dir), [])
    dirs = asyncio.run(snapshot(plan.job_id, spec, account.pw_name))
    argv = make_command(spec, str(env_python("base")), code_dir=str(dirs.code),
                        output_dir=str(dirs.outputs), hub_python=sys.executable)
    plan = AttemptPlan(**{**plan.__dict__, "command": argv, "workdir": str(dirs.code)})

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan, timeout=120)

    assert asyncio.run(run()) == [0], read_log(executor, plan)
    executed = nbformat.read(dirs.outputs / "nb.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("text") == "lr 0.5 name 007 worker-0\n" for o in outputs), outputs
    assert (dirs.outputs / "nb.ipynb").stat().st_uid == account.pw_uid
    assert "lr 0.5 name 007 worker-0" in read_log(executor, plan)


MXNET = """
import mxnet as mx  # a scheduler or server serves here, then exits
kv = mx.kv.create("dist_sync")
kv.init(3, mx.nd.ones((2,)))
kv.push(3, mx.nd.ones((2,)) * (kv.rank + 1))
out = mx.nd.zeros((2,))
kv.pull(3, out=out)
print("PULLED", kv.rank, kv.num_workers, out.asnumpy().tolist(), flush=True)
"""


def test_mxnet_dist_sync_scheduler_server_and_two_workers(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    python = env_python("mxnet")
    if python == Path(sys.executable):
        pytest.skip("no MXNet environment: run tests/integration/test_frameworks.py")
    # Loopback only: ps-lite must be told to use 127.0.0.1 (without DMLC_NODE_HOST it
    # finds no interface and every replica waits forever).
    executor.outbound = False
    code = write_code(account, "kv.py", MXNET)
    plan = make_plan(account, code, [str(python), "kv.py"], kind=rp.MXNET, workers=2,
                     image="mxnet")
    assert [r.name for r in plan.replicas] == ["scheduler-0", "server-0", "worker-0",
                                               "worker-1"]

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan, timeout=90)

    codes = asyncio.run(run())
    logs = {r.name: read_log(executor, plan, r.name) for r in plan.replicas}
    assert codes == [0, 0, 0, 0], json.dumps(logs)
    pulled = sorted(line for log in logs.values() for line in log.splitlines()
                    if line.startswith("PULLED"))
    # Both workers pushed (1 and 2): the server's merged value is their sum.
    assert pulled == ["PULLED 0 2 [3.0, 3.0]", "PULLED 1 2 [3.0, 3.0]"]


TF_MWMS = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

@tf.function
def step():
    context = tf.distribute.get_replica_context()
    return context.all_reduce("sum", tf.constant(float(index + 1)))

value = strategy.experimental_local_results(strategy.run(step))[0]
print("REDUCED", index, strategy.num_replicas_in_sync, float(value), flush=True)
"""


def test_tensorflow_multi_worker_mirrored_two_workers(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """TF_CONFIG's gRPC servers on 127.0.0.1 inside the namespace: both workers all-reduce
    (a custom step; Keras 3's ``fit`` under this strategy needs tf-keras, see the docs)."""
    python = env_python("tensorflow")
    if python == Path(sys.executable):
        pytest.skip("no TensorFlow environment: run tests/integration/test_frameworks.py")
    code = write_code(account, "mwms.py", TF_MWMS)
    plan = make_plan(account, code, [str(python), "mwms.py"], kind=rp.TENSORFLOW, workers=2,
                     image="tensorflow")

    async def run() -> list[int | None]:
        await executor.start(plan)
        return await wait_done(executor, plan, timeout=120)

    codes = asyncio.run(run())
    logs = {r.name: read_log(executor, plan, r.name) for r in plan.replicas}
    assert codes == [0, 0], json.dumps(logs)[-3000:]
    assert "REDUCED 0 2 3.0" in logs["worker-0"] and "REDUCED 1 2 3.0" in logs["worker-1"]


def test_a_replica_that_cannot_start_fails_the_start_and_leaves_nothing(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    from studiohub.jobs.local import ExecutorError

    code = write_code(account, "sleep.py", "import time\ntime.sleep(300)\n")
    plan = make_plan(account, code, [sys.executable, "sleep.py"], workers=2)
    plan = AttemptPlan(**{**plan.__dict__, "replicas": [
        plan.replicas[0], ReplicaPlan(**{**plan.replicas[1].__dict__,
                                         "cgroup_procs": ("/nonexistent/cgroup.procs",)})]})

    async def run() -> None:
        with pytest.raises(ExecutorError, match="worker-1 could not start"):
            await executor.start(plan)
        assert await executor.running() == []
        assert not any(s.running for s in await executor.poll(plan))

    asyncio.run(run())
    status = executor.status(plan.job_id, 1)
    assert status is not None and status["done"]
    assert status["error"] == "worker-1 could not start: see its log"
    assert "[studiohub: the replica could not start: [Errno 2] No such file or directory: " \
        "'/nonexistent/cgroup.procs']" in read_log(executor, plan, "worker-1")
    pid = status["replicas"]["worker-0"]["pid"]
    assert keeper_gone(pid)


def keeper_gone(pid: int) -> bool:
    from studiohub.jobs.keeper import start_ticks

    return start_ticks(pid) is None


PERSONAL = """
import asyncio, json, pickle, sys, time
from studiohub.jobs.local import LocalExecutor
executor, plan = pickle.loads(sys.stdin.buffer.read())

async def run():
    await executor.start(plan)
    while any(s.running for s in await executor.poll(plan)):
        await asyncio.sleep(0.1)
    return [s.exit_code for s in await executor.poll(plan)]

codes = asyncio.run(run())
print(json.dumps({"codes": codes, "status": executor.status(plan.job_id, 1),
                  "log": executor.log_path(plan.job_id, 1, "worker-0").read_text()}))
"""


def test_a_personal_hub_runs_jobs_in_a_namespace_without_root(
        account: pwd.struct_passwd) -> None:
    """Not root (``studiohub up`` as a user): the keeper makes a user + network namespace
    of its own, and the replicas run as that same account."""
    import pickle

    code = write_code(account, "hello.py", "import os, socket\nprint('uid', os.getuid())\n"
                      "s = socket.create_server(('127.0.0.1', 29500))\nprint('bound')\n")
    state = Path(account.pw_dir) / "state"
    executor = LocalExecutor(state, jupyter_data="")  # pickled: no function of this module
    plan = make_plan(account, code, [sys.executable, "hello.py"])
    result = subprocess.run([sys.executable, "-c", PERSONAL], user=account.pw_uid,
                            group=account.pw_gid, cwd=account.pw_dir, capture_output=True,
                            input=pickle.dumps((executor, plan)), check=False, timeout=60,
                            env={"HOME": account.pw_dir, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout)
    assert out["codes"] == [0], out
    assert out["log"] == f"uid {account.pw_uid}\nbound\n"
    # Unprivileged slirp4netns opens /dev/net/tun as the account: 0666 on usual hosts,
    # 0600 in some containers (this one), where a personal hub's jobs have loopback only.
    tun_for_all = os.stat("/dev/net/tun").st_mode & 0o006 == 0o006
    assert out["status"]["network"] == ("outbound through slirp4netns" if tun_for_all else
                                        "loopback only: slirp4netns did not start")


def test_a_start_that_times_out_leaves_no_keeper_behind(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    from studiohub.jobs.local import ExecutorError

    executor.start_timeout = 0.0  # the keeper has no time to report: the start is given up
    code = write_code(account, "sleep.py", "import time\ntime.sleep(300)\n")
    plan = make_plan(account, code, [sys.executable, "sleep.py"])

    async def run() -> None:
        with pytest.raises(ExecutorError, match="did not start"):
            await executor.start(plan)
        await asyncio.sleep(1.5)  # a keeper left behind would have started by now
        assert await executor.running() == []

    asyncio.run(run())
    owned = subprocess.run(["pgrep", "-u", account.pw_name], capture_output=True, text=True)
    assert owned.stdout == ""


NAMESPACE = """
import os, time
print("net", os.readlink("/proc/self/ns/net"), flush=True)
"""


def test_a_spare_keeper_starts_the_next_attempt_in_a_namespace_of_its_own(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """With a spare ready (the service's way), a start hands it the orders; the next
    spare is prepared after it, so each attempt has a keeper, and a namespace, of its
    own; close() ends the one left ready."""
    from studiohub.jobs import local

    code = write_code(account, "ns.py", NAMESPACE)
    plans = [make_plan(account, code, [sys.executable, "ns.py"]) for _ in range(2)]

    async def run() -> list[tuple[int | None, int]]:
        executor.warm()
        keepers = []
        for plan in plans:
            spare = executor.spare_pid
            assert spare is not None
            await executor.start(plan)
            status = executor.status(plan.job_id, 1)
            assert status is not None
            keepers.append((spare, status["keeper"]["pid"]))
            assert await wait_done(executor, plan) == [0]
            await asyncio.sleep(local.REFILL_DELAY + 0.5)  # the next spare is prepared
        return keepers

    keepers = asyncio.run(run())
    assert all(spare == keeper for spare, keeper in keepers), keepers
    assert len({keeper for _, keeper in keepers}) == 2
    nets = [read_log(executor, plan).split()[1] for plan in plans]
    assert os.readlink("/proc/self/ns/net") not in nets, nets
    last = executor.spare_pid
    assert last is not None and last not in {k for _, k in keepers}
    executor.close()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{last}").exists() and time.monotonic() < deadline:
        subprocess.run(["true"])  # reaps nothing of ours; just lets time pass
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(last, os.WNOHANG)
    assert not Path(f"/proc/{last}").exists(), "the discarded spare keeper still runs"


HOST_LOOPBACK = """
import errno, os, socket, time
port = int(os.environ["STUDIOHUB_TEST_PORT"])
for host in ("10.0.2.2", "127.0.0.1"):  # slirp4netns's gateway to the host; our own lo
    try:
        socket.create_connection((host, port), 3).close()
        print(host, "connected", flush=True)
    except OSError as e:
        print(host, errno.errorcode.get(e.errno or 0, type(e).__name__), flush=True)
print("probed", flush=True)
while not os.path.exists("stop-now"):
    time.sleep(0.05)
"""


def test_the_job_cannot_reach_the_hosts_loopback_and_slirp4netns_is_sandboxed(
        executor: LocalExecutor, account: pwd.struct_passwd) -> None:
    """A service on the host's 127.0.0.1 (the hub's API, another user's server) is out
    of the job's reach through slirp4netns's gateway; slirp4netns itself runs under a
    seccomp filter in a mount namespace of its own (it parses every packet a job sends).
    Reaching the host's other addresses: test_the_job_reaches_the_network_outside_…"""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = write_code(account, "loop.py", HOST_LOOPBACK)
    plan = AttemptPlan(**{**make_plan(account, code, [sys.executable, "loop.py"]).__dict__,
                          "env": {"STUDIOHUB_TEST_PORT": str(port)}})

    async def run() -> dict[str, str]:
        await executor.start(plan)
        deadline = time.monotonic() + 30
        while "probed" not in read_log(executor, plan) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        status = executor.status(plan.job_id, 1)
        assert status is not None and status["slirp"], status
        pid = status["slirp"]["pid"]
        seen = {"seccomp": next(line.split()[1] for line in
                                Path(f"/proc/{pid}/status").read_text().splitlines()
                                if line.startswith("Seccomp:")),
                "mnt": os.readlink(f"/proc/{pid}/ns/mnt")}
        (code / "stop-now").touch()
        assert await wait_done(executor, plan) == [0]
        return seen

    try:
        seen = asyncio.run(run())
    finally:
        server.close()
    log = read_log(executor, plan)
    # Without --disable-host-loopback, 10.0.2.2 is the host's 127.0.0.1: "connected".
    gateway, own = log.splitlines()[:2]
    assert gateway in ("10.0.2.2 EHOSTUNREACH", "10.0.2.2 ENETUNREACH"), log
    assert own == "127.0.0.1 ECONNREFUSED", log
    assert seen["seccomp"] == "2"  # a filter is on
    assert seen["mnt"] != os.readlink("/proc/self/ns/mnt")  # --enable-sandbox
