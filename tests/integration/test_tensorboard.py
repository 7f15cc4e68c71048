"""TensorBoard through a real user's Jupyter server, with real TensorBoard and real event
files from PyTorch, tensorboardX and TF2's summary layout.

Each user server is ``jupyter server`` from the hub environment, run as a real unix
user (created here, removed after) under the hub-style prefix ``/user/<name>/``, with
the StudioHub server extension enabled as ``pip install studiohub`` enables it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.tensorboard.environments import (
    EVENTS_SCRIPT,
    ensure_tensorboard_env,
    ensure_writers_env,
)
from tests.labservers import (
    UnixUser,
    UserServer,
    group,
    make_user,
    pid_alive,
    remove_user,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="creates unix users: run the integration tests as root")


def scalar_runs(server: UserServer, board: dict[str, Any], expected: int,
                timeout: float = 30) -> dict[str, Any]:
    """TensorBoard's scalar tags once ``expected`` runs have ``loss`` (data loads async)."""
    deadline = time.monotonic() + timeout
    tags: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = server.get(board_path(board, server.user) + "data/plugin/scalars/tags")
        assert response.status_code == 200, response.text
        tags = response.json()
        if sum(1 for run in tags.values() if "loss" in run) >= expected:
            return tags
        time.sleep(0.2)
    raise AssertionError(f"only {sorted(tags)} after {timeout}s")


def loss_points(server: UserServer, board: dict[str, Any], run: str, expected: int,
                timeout: float = 30) -> list[list[float]]:
    """A run's ``loss`` points once all ``expected`` are loaded (a run shows while it loads)."""
    deadline = time.monotonic() + timeout
    points: list[list[float]] = []
    while time.monotonic() < deadline:
        points = server.get(board_path(board, server.user) + "data/plugin/scalars/scalars",
                            params={"run": run, "tag": "loss"}).json()
        if len(points) >= expected:
            return points
        time.sleep(0.2)
    raise AssertionError(f"{run}: {len(points)} of {expected} points after {timeout}s")


def board_path(board: dict[str, Any], user: UnixUser) -> str:
    """The board's URL relative to the server's base URL."""
    prefix = f"/user/{user.name}/"
    assert board["url"].startswith(prefix)
    return str(board["url"][len(prefix):])


def wait_until(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tb_python() -> Path:
    return ensure_tensorboard_env()


@pytest.fixture(scope="module")
def owner(tb_python: Path) -> Iterator[UnixUser]:
    user = make_user("tbown")
    writers = ensure_writers_env()
    for framework in ("torch", "tensorboardx"):
        done = user.run([str(writers), str(EVENTS_SCRIPT), str(user.home / "runs" / framework),
                         "--framework", framework, "--runs", "2", "--steps", "50"])
        assert done.returncode == 0, done.stderr
    done = user.run([str(tb_python), str(EVENTS_SCRIPT), str(user.home / "runs" / "tf2"),
                     "--framework", "tf-summary", "--runs", "2", "--steps", "50"])
    assert done.returncode == 0, done.stderr
    yield user
    remove_user(user)


@pytest.fixture(scope="module")
def other(tb_python: Path) -> Iterator[UnixUser]:
    user = make_user("tboth")
    yield user
    remove_user(user)


@pytest.fixture(scope="module")
def server(owner: UnixUser, tb_python: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[UserServer]:
    log = tmp_path_factory.mktemp("tb") / "server.log"
    running = UserServer(owner, {"TensorBoardManager.python": str(tb_python)}).start(log)
    yield running
    running.stop()


# --- tests ------------------------------------------------------------------------------

def test_board_shows_scalars_from_three_writers(server: UserServer, owner: UnixUser) -> None:
    board = server.open("runs")
    assert board["status"] == "running", board
    assert board["folders"] == ["~/runs"]
    tags = scalar_runs(server, board, expected=6)
    assert sorted(tags) == [
        "tensorboardx/tensorboardx-000", "tensorboardx/tensorboardx-001",
        "tf2/tf-summary-000", "tf2/tf-summary-001", "torch/torch-000", "torch/torch-001"]
    for run in tags:
        points = loss_points(server, board, run, expected=50)
        assert len(points) == 50, run
        assert points[0][1] == 0 and points[-1][1] == 49  # [wall_time, step, value]
    page = server.get(board_path(board, owner))
    assert page.status_code == 200 and "<title>TensorBoard" in page.text


def test_same_folders_reuse_the_running_tensorboard(server: UserServer) -> None:
    first = server.open("runs/torch", "runs/tensorboardx")
    again = server.open("~/runs/tensorboardx/", "./runs/torch")
    assert again["id"] == first["id"] and again["pid"] == first["pid"]
    listed = server.get("studiohub/api/v1/tensorboards").json()["tensorboards"]
    assert [b["id"] for b in listed].count(first["id"]) == 1
    assert {r["name"] for r in first["runs"]} == {"torch", "tensorboardx"}


def test_several_folders_compare_as_named_runs(server: UserServer, owner: UnixUser) -> None:
    board = server.open("runs/torch", "runs/tf2")
    tags = scalar_runs(server, board, expected=4)
    assert sorted(tags) == ["tf2/tf-summary-000", "tf2/tf-summary-001",
                            "torch/torch-000", "torch/torch-001"]


def test_folders_outside_home_are_refused(server: UserServer, other: UnixUser) -> None:
    for folder in ("/tmp", "/etc", str(other.home), "../"):
        response = server.request("POST", "studiohub/api/v1/tensorboards",
                                  json={"folders": [folder]})
        assert response.status_code == 403, (folder, response.text)
        assert "is outside your home folder" in response.json()["message"]


def test_another_user_cannot_reach_the_board_over_http(server: UserServer, owner: UnixUser,
                                                       other: UnixUser) -> None:
    board = server.open("runs")
    path = board_path(board, owner) + "data/plugin/scalars/tags"
    for token in ("", "not-the-owners-token"):
        response = server.request("GET", path, token=token, allow_redirects=False)
        assert response.status_code in (302, 403), response.status_code
        assert "loss" not in response.text
    listing = server.request("GET", "studiohub/api/v1/tensorboards", token="nope")
    assert listing.status_code == 403


def test_another_user_cannot_connect_to_tensorboard_directly(
        server: UserServer, owner: UnixUser, other: UnixUser) -> None:
    board = server.open("runs")
    pid = board["pid"]
    # The socket is private: connecting as another user is refused by the kernel.
    sockets = [Path(line.split()[-1]) for line in Path(f"/proc/{pid}/net/unix").read_text()
               .splitlines() if line.split()[-1].endswith(f"/{board['id']}/tb.sock")]
    assert sockets, "no TensorBoard socket found"
    probe = ("import socket, sys\n"
             "for path in sys.argv[1:]:\n"
             "    s = socket.socket(socket.AF_UNIX)\n"
             "    try:\n"
             "        s.connect(path); print('CONNECTED', path)\n"
             "    except OSError as e:\n"
             "        print('refused', path, e.errno)\n")
    result = other.run([sys.executable, "-c", probe, *map(str, sockets)])
    assert "CONNECTED" not in result.stdout and "refused" in result.stdout, result
    # No TCP port is open on the host's network for TensorBoard or its data server.
    tb_pids = {pid, *group(pid)}
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    for tb_pid in tb_pids:
        assert f"pid={tb_pid}," not in listening, listening
    if board["isolation"] == "namespace":
        ours = os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/net") != ours
    # …so another user scanning 127.0.0.1 finds nothing of the owner's listening.
    owner_ports = [line for line in listening.splitlines()
                   if any(f"pid={p}," in line for p in tb_pids)]
    assert owner_ports == []


def test_failure_shows_tensorboards_own_error(owner: UnixUser, tb_python: Path,
                                              tmp_path: Path) -> None:
    server = UserServer(owner, {"TensorBoardManager.python": str(tb_python),
                                "TensorBoardManager.extra_args": ["--no_such_flag"]})
    server.start(tmp_path / "server.log")
    try:
        board = server.open("runs")
        assert board["status"] == "failed"
        assert "unrecognized arguments: --no_such_flag" in board["error"]
        response = server.get(board_path(board, owner))
        assert response.status_code == 502
        assert "unrecognized arguments" in response.json()["message"]
    finally:
        server.stop()


def test_idle_tensorboards_stop_and_restart_on_demand(owner: UnixUser, tb_python: Path,
                                                      tmp_path: Path) -> None:
    server = UserServer(owner, {"TensorBoardManager.python": str(tb_python),
                                "TensorBoardManager.idle_timeout": 5,
                                "TensorBoardManager.cull_interval": 1})
    server.start(tmp_path / "server.log")
    try:
        board = server.open("runs/torch")
        pid = board["pid"]
        assert pid_alive(pid)
        wait_until(lambda: server.board(board["id"])["status"] == "stopped", 30,
                   "idle TensorBoard was not stopped")
        wait_until(lambda: not pid_alive(pid), 15, "idle TensorBoard's process is still there")
        assert group(pid) == [], "the data server of an idle TensorBoard is still there"
        # Opening its page again starts it again.
        response = server.get(board_path(board, owner) + "data/plugin/scalars/tags")
        assert response.status_code == 200
        again = server.board(board["id"])
        assert again["status"] in ("running", "starting") and again["pid"] != pid, again
    finally:
        server.stop()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_no_tensorboard_outlives_its_server(owner: UnixUser, tb_python: Path, tmp_path: Path,
                                            how: int) -> None:
    server = UserServer(owner, {"TensorBoardManager.python": str(tb_python)})
    server.start(tmp_path / "server.log")
    boards = [server.open("runs/torch"), server.open("runs/tf2", "runs/tensorboardx")]
    assert all(b["status"] == "running" for b in boards)
    processes = [p for b in boards for p in group(b["pid"])]
    assert len(processes) >= 4, processes  # launcher + data server, twice
    server.stop(how)
    wait_until(lambda: not any(pid_alive(p) for p in processes), 10,
               f"left behind after {how!r}: {[p for p in processes if pid_alive(p)]}")


def kernel_environment(server: UserServer) -> dict[str, str]:
    """The environment of a real kernel started through the server's REST API."""
    kernel = server.request("POST", "api/kernels", json={"name": "python3"}).json()
    try:
        assert server.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = subprocess.run(["pgrep", "-P", str(server.process.pid), "-f", kernel["id"]],
                                      capture_output=True, text=True).stdout.split()
            if children:
                raw = Path(f"/proc/{children[0]}/environ").read_bytes()
                return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
            time.sleep(0.2)
        raise AssertionError("kernel process not found")
    finally:
        server.request("DELETE", f"api/kernels/{kernel['id']}")


def test_tensorboard_magic_opens_the_managed_board(server: UserServer, owner: UnixUser,
                                                   tb_python: Path) -> None:
    env = kernel_environment(server)
    assert env["TENSORBOARD_PROXY_URL"] == f"/user/{owner.name}/studiohub/tensorboard/%PORT%/"
    # What `%tensorboard --logdir runs/torch` does in that kernel: tensorboard.notebook
    # calls tensorboard.manager.start, which runs $TENSORBOARD_BINARY.
    magic = ("import sys\n"
             "from tensorboard import manager\n"
             "result = manager.start(['--logdir', 'runs/torch'])\n"
             "print(type(result).__name__, getattr(getattr(result, 'info', None), 'port', None),"
             " getattr(getattr(result, 'info', None), 'pid', None))\n"
             "print(getattr(result, 'stderr', ''), file=sys.stderr)\n")
    # A private temporary folder, as StudioHub's servers give their kernels ($TMPDIR):
    # TensorBoard's info files go there, never in a /tmp other accounts can write.
    private_tmp = owner.home / ".cache" / "tmp-tb"
    private_tmp.mkdir(parents=True, exist_ok=True)
    for path in (private_tmp.parent, private_tmp):
        os.chown(path, owner.uid, owner.gid)
        path.chmod(0o700)
    kernel_env = {**owner.env(), "TMPDIR": str(private_tmp), **{
        k: v for k, v in env.items() if k.startswith(("TENSORBOARD_", "STUDIOHUB_"))}}

    def run_magic() -> list[str]:
        done = subprocess.run([str(tb_python), "-c", magic], user=owner.uid, group=owner.gid,
                              extra_groups=[], env=kernel_env, cwd=owner.home, text=True,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return [*done.stdout.split(), done.stderr]

    kind, port, shim_pid, stderr = run_magic()
    assert kind == "StartLaunched", (kind, port, stderr)
    board = server.board(port)
    assert board["status"] == "running" and board["folders"] == ["~/runs/torch"]
    # The iframe the notebook shows: the proxy URL with %PORT% replaced.
    url = env["TENSORBOARD_PROXY_URL"].replace("%PORT%", port)
    assert server.get(url.removeprefix(f"/user/{owner.name}/")).status_code == 200
    assert run_magic()[0] == "StartReused"
    # `!kill <pid>`, as the magic suggests, stops that TensorBoard.
    os.kill(int(shim_pid), signal.SIGTERM)
    wait_until(lambda: server.board(port)["status"] == "stopped", 30,
               "killing the %tensorboard process did not stop its TensorBoard")
