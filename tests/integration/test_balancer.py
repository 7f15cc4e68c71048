"""The model endpoints' load balancer with a real HAProxy in front of real replica
processes (tiny tornado servers on unix sockets, one process each, so that one can be
killed with SIGKILL): canary weights, a rollout under load, a dead replica, a refused
state, and a balancer that outlives the process that started it."""

from __future__ import annotations

import collections
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from studiohub.serving.balancer import (
    REPLICA_HEADER,
    Balancer,
    BalancerError,
    BalancerState,
    EndpointRoute,
    InvalidState,
    VersionRoute,
    find_haproxy,
)

#: A stand-in for the modelserver: answers readiness and every other path with its own
#: name, after ``?sleep=`` seconds (so that requests are in flight when things change).
REPLICA_PROGRAM = """
import asyncio, json, sys
from tornado import httpserver, netutil, web

sock, name = sys.argv[1], sys.argv[2]

class Handler(web.RequestHandler):
    async def get(self, path):
        delay = float(self.get_argument("sleep", "0"))
        if delay:
            await asyncio.sleep(delay)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"replica": name, "path": "/" + path}))
    post = delete = get

async def main():
    server = httpserver.HTTPServer(web.Application([(r"/(.*)", Handler)]))
    server.add_socket(netutil.bind_unix_socket(sock, mode=0o600))
    await asyncio.Event().wait()

asyncio.run(main())
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket (keep-alive: one connection, many requests)."""

    def __init__(self, path: str | Path, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def slow_request(path: str, token: str, body: bytes, sent: int, endpoint: str = "iris"
                 ) -> socket.socket:
    """A prediction whose headers and first ``sent`` bytes of body are sent, the rest not
    yet (the caller sends it, or never does)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    sock.sendall(f"POST /services/models/{endpoint}/v1/models/{endpoint}:predict HTTP/1.1\r\n"
                 f"Host: localhost\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body[:sent])
    return sock


def answer_of(sock: socket.socket) -> tuple[int, Any]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    data = response.read()
    sock.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data


def call(conn: UnixHTTPConnection, backend: str | None, path: str = "/v2/models/m"
         ) -> tuple[int, str | None, bytes]:
    headers = {"X-Studiohub-Backend": backend} if backend else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader(REPLICA_HEADER), response.read()


class Replica:
    def __init__(self, directory: Path, name: str, program: Path) -> None:
        self.name = name
        self.socket = directory / f"{name}.sock"
        self.program = program
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Replica:
        self.process = subprocess.Popen(
            [sys.executable, str(self.program), str(self.socket), self.name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if call(UnixHTTPConnection(self.socket, 2), None, "/v2/health/ready")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.process.poll() is None, f"replica {self.name} exited"
            time.sleep(0.05)
        raise AssertionError(f"replica {self.name} did not answer in {timeout} s")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def route(self) -> tuple[str, str]:
        return (self.name, str(self.socket))


class Load(threading.Thread):
    """Requests one after another until stopped, on one keep-alive connection (as the
    models service's pool does) or a fresh connection each; every exception and every
    status but 200 is a failure. ``answered`` lists who answered, in order."""

    def __init__(self, socket_path: Path, backend: str, keep_alive: bool,
                 path: str = "/v2/models/m?sleep=0.005") -> None:
        super().__init__(daemon=True)
        self.socket_path, self.backend, self.keep_alive, self.path = (
            socket_path, backend, keep_alive, path)
        self.answered: list[str | None] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn: UnixHTTPConnection | None = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = UnixHTTPConnection(self.socket_path)
                status, replica, body = call(conn, self.backend, self.path)
                if status != 200:
                    self.failures.append(f"{status} {body[:200]!r}")
                self.answered.append(replica)
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(repr(e))
                conn = None
            if not self.keep_alive and conn is not None:
                conn.close()
                conn = None

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Short paths: a unix socket's path holds 108 bytes."""
    if not Path(find_haproxy()).exists():
        pytest.skip("HAProxy is not installed (make system-deps installs Debian's haproxy)")
    path = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def replicas(workdir: Path) -> Iterator[Callable[[str], Replica]]:
    program = workdir / "replica.py"
    program.write_text(REPLICA_PROGRAM)
    started: list[Replica] = []

    def start(name: str) -> Replica:
        replica = Replica(workdir, name, program).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


@pytest.fixture
def balancer(workdir: Path) -> Iterator[Balancer]:
    lb = Balancer(workdir / "lb")
    yield lb
    Balancer(workdir / "lb").stop()  # also one a test's subprocess started


def endpoint(*versions: tuple[int, float, list[Replica]], name: str = "iris"
             ) -> BalancerState:
    return BalancerState([EndpointRoute(name, [
        VersionRoute(v, share, [r.route for r in rs]) for v, share, rs in versions])])


def wait_for(check: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def server_status(lb: Balancer, backend: str, server: str) -> str:
    return next(s.status for s in lb.stats() if s.backend == backend and s.server == server)


def test_canary_weights_split_the_traffic(balancer: Balancer, replicas: Callable) -> None:
    v1 = [replicas("a0"), replicas("a1")]
    v2 = [replicas("b0")]
    balancer.start(endpoint((1, 90, v1), (2, 10, v2)))
    conn = UnixHTTPConnection(balancer.socket)
    versions: collections.Counter[str] = collections.Counter()
    for _ in range(400):
        status, replica, body = call(conn, "iris")
        assert status == 200, body
        assert replica is not None
        versions[replica.split("-")[0]] += 1
        assert json.loads(body)["replica"] == replica.split("-", 1)[1]
    assert abs(versions["v2"] / 400 - 0.10) <= 0.05, versions
    # Version-pinned requests reach only that version; an unknown name is a JSON 404.
    assert {call(conn, "iris.v2")[1] for _ in range(10)} == {"v2-b0"}
    assert {call(conn, "iris.v1")[1] for _ in range(10)} == {"v1-a0", "v1-a1"}
    for backend in ("nope", "iris.v3", None):
        status, replica, body = call(conn, backend)
        assert status == 404 and json.loads(body) == {"error": "no such endpoint"}
    # Weights alone change through the runtime API: same worker, no reload.
    worker = balancer.command("show info")
    assert balancer.apply(endpoint((1, 50, v1), (2, 50, v2))) is False
    assert balancer.command("show info").split("Pid: ")[1].split()[0] == \
        worker.split("Pid: ")[1].split()[0]
    versions.clear()
    for _ in range(200):
        versions[(call(conn, "iris")[1] or "").split("-")[0]] += 1
    assert abs(versions["v2"] / 200 - 0.5) <= 0.05, versions


def test_rollout_under_load_drops_nothing(balancer: Balancer, replicas: Callable) -> None:
    v1 = [replicas("a0"), replicas("a1")]
    balancer.start(endpoint((1, 100, v1)))
    loads = [Load(balancer.socket, "iris", keep_alive=True),
             Load(balancer.socket, "iris", keep_alive=False)]
    for load in loads:
        load.start()
    time.sleep(0.5)
    v2 = [replicas("b0"), replicas("b1")]
    reloads = []
    started = time.monotonic()
    assert balancer.apply(endpoint((1, 100, v1), (2, 0, v2))) is True  # v2's servers added
    reloads.append(time.monotonic() - started)
    time.sleep(0.5)
    assert balancer.apply(endpoint((1, 0, v1), (2, 100, v2))) is False  # weights only
    time.sleep(0.5)
    started = time.monotonic()
    assert balancer.apply(endpoint((2, 100, v2))) is True  # v1 retired
    reloads.append(time.monotonic() - started)
    for replica in v1:
        replica.stop()
    time.sleep(0.5)
    for load in loads:
        load.stop()
    answered = [a for load in loads for a in load.answered]
    print(f"rollout: {len(answered)} requests, reloads took "
          f"{', '.join(f'{r * 1000:.0f} ms' for r in reloads)}")
    assert [f for load in loads for f in load.failures] == []
    assert len(answered) > 100
    assert {a for load in loads for a in load.answered[-20:]} <= {"v2-b0", "v2-b1"}


def test_a_killed_replica_costs_no_request(balancer: Balancer, replicas: Callable) -> None:
    v1 = [replicas("a0"), replicas("a1"), replicas("a2")]
    balancer.start(endpoint((1, 100, v1)))
    loads = [Load(balancer.socket, "iris", keep_alive=True),
             Load(balancer.socket, "iris", keep_alive=False)]
    for load in loads:
        load.start()
    time.sleep(0.5)
    v1[1].kill()
    wait_for(lambda: server_status(balancer, "iris", "v1-a1").startswith("DOWN"), 5,
             "the killed replica marked DOWN")
    assert server_status(balancer, "iris.v1", "v1-a1").startswith("DOWN")  # tracked
    time.sleep(0.5)
    v1[1].start()  # on the same socket
    wait_for(lambda: server_status(balancer, "iris", "v1-a1") == "UP", 5, "back UP")
    count = len(loads[0].answered)
    wait_for(lambda: "v1-a1" in loads[0].answered[count:], 5, "traffic to it again")
    for load in loads:
        load.stop()
    assert [f for load in loads for f in load.failures] == []
    stats = {s.server: s for s in balancer.stats() if s.backend == "iris"}
    print("after the kill:", {n: (s.status, s.requests, s.retries, s.redispatches)
                              for n, s in stats.items()})
    assert all(s.up for s in stats.values())


def test_a_broken_state_is_refused_and_the_old_one_keeps_serving(
        balancer: Balancer, replicas: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = [replicas("a0")]
    good = endpoint((1, 100, v1))
    balancer.start(good)
    config = balancer.config_path.read_text()
    broken = [
        BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [
            ("a0", f"{v1[0].socket}\n    server evil /tmp/evil.sock")])])]),
        BalancerState([EndpointRoute("Iris Prod", [VersionRoute(1, 100, [v1[0].route])])]),
        BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("a 0", "/tmp/a.sock")])])]),
        BalancerState([EndpointRoute("iris", [VersionRoute(1, 150, [v1[0].route])])]),
    ]
    for state in broken:
        with pytest.raises(InvalidState):
            balancer.apply(state)
    with pytest.raises(InvalidState, match="not an absolute path"):
        balancer.apply(broken[0])
    # A configuration HAProxy itself refuses (haproxy -c) never replaces the good one.
    monkeypatch.setattr(balancer, "config_text",
                        lambda state: config + "\nbackend x\n    bogus-directive 1\n")
    with pytest.raises(BalancerError, match="bogus-directive"):
        balancer.apply(endpoint((1, 100, v1), name="other"))
    monkeypatch.undo()
    assert balancer.config_path.read_text() == config
    assert balancer.state == good
    conn = UnixHTTPConnection(balancer.socket)
    assert call(conn, "iris")[:2] == (200, "v1-a0")
    assert call(conn, "other")[0] == 404


def test_the_balancer_outlives_the_process_that_started_it(
        balancer: Balancer, replicas: Callable) -> None:
    v1 = [replicas("a0")]
    state = endpoint((1, 100, v1))
    starter = ("import sys; from studiohub.serving.balancer import Balancer, BalancerState; "
               "Balancer(sys.argv[1]).start(BalancerState.from_json(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", starter, str(balancer.state_dir), state.to_json()],
                   check=True, timeout=60)
    adopted = Balancer(balancer.state_dir)
    assert adopted.adopt() is True
    assert adopted.pid is not None and os.getsid(adopted.pid) == adopted.pid
    assert adopted.state == state
    with pytest.raises(BalancerError, match="adopt"):
        Balancer(balancer.state_dir).start(state)
    conn = UnixHTTPConnection(adopted.socket)
    assert call(conn, "iris")[:2] == (200, "v1-a0")
    v2 = [replicas("b0")]
    assert adopted.apply(endpoint((1, 0, v1), (2, 100, v2))) is True
    assert call(UnixHTTPConnection(adopted.socket), "iris")[:2] == (200, "v2-b0")
    # Dropping the object stops nothing; the next one adopts what runs.
    pid = adopted.pid
    del adopted
    again = Balancer(balancer.state_dir)
    assert again.adopt() and again.pid == pid
    again.stop()
    assert not Balancer(balancer.state_dir).adopt()
    assert not balancer.socket.exists()


def test_the_fast_lane_opens_each_token_on_its_own_endpoint_only(
        workdir: Path, replicas: Callable) -> None:
    """HAProxy's fast lane (what the hub's proxy targets for /services/models/<name>/):
    an endpoint token of *that* endpoint goes straight to its replicas, the prefix
    removed and the token not passed on; everything else goes to the gateway; a revoked
    token goes to the gateway from its next request, without a reload; each answer of
    the lane is one datagram to the meter."""
    from studiohub.serving.balancer import FastLane
    from studiohub.serving.store import digest

    iris, other = replicas("a0"), replicas("b0")
    gateway = replicas("gateway")  # a stand-in: answers with its name and the full path
    meter = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    meter.bind(str(workdir / "meter.sock"))
    meter.settimeout(5)
    lane = FastLane(direct=str(workdir / "direct.sock"), gateway=str(gateway.socket),
                    meter=str(workdir / "meter.sock"),
                    tokens_map=str(workdir / "lb" / "tokens.map"), max_body_bytes=1000,
                    request_timeout=2)
    lb = Balancer(workdir / "lb", lane=lane)
    iris_token, other_token = "shm_" + "i" * 43, "shm_" + "o" * 43
    try:
        lb.start(BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [iris.route])]),
                                EndpointRoute("other", [VersionRoute(1, 100, [other.route])])]))
        lb.set_tokens({digest(iris_token): "iris", digest(other_token): "other"})
        worker = lb._worker_pid()

        def ask(authorization: str | None, path: str = "v1/models/iris:predict",
                body: bytes = b'{"instances": [[1]]}') -> tuple[dict[str, str], dict[str, str]]:
            conn = UnixHTTPConnection(lane.direct)
            headers = {"Content-Type": "application/json", "Cookie": "c=1"}
            if authorization:
                headers["Authorization"] = authorization
            conn.request("POST", f"/services/models/iris/{path}", body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, answer
            return answer, {k.lower(): v for k, v in response.getheaders()}

        answer, headers = ask(f"Bearer {iris_token}")
        assert answer == {"replica": "a0", "path": "/v1/models/iris:predict"}
        assert headers["x-studiohub-version"] == "1" and REPLICA_HEADER.lower() not in headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        line = meter.recv(4096).decode().split()
        assert line[:3] == ["iris", "v1-a0", "200"] and line[3].isdigit()
        assert ask(f"token {iris_token}", "v2/models/iris/infer")[0]["replica"] == "a0"
        full = "/services/models/iris/v1/models/iris:predict"
        for refused in (f"Bearer {other_token}", "Bearer shm_" + "x" * 43, "token hub-token",
                        None, f"Bearer {iris_token}x", f"Bearer {iris_token} {iris_token}"):
            assert ask(refused)[0] == {"replica": "gateway", "path": full}, refused
        # Pinned versions and bodies over the lane's limit are the gateway's too.
        assert ask(f"Bearer {iris_token}", "v1/models/iris/versions/1:predict")[0][
            "replica"] == "gateway"
        assert ask(f"Bearer {iris_token}", body=b"x" * 1001)[0]["replica"] == "gateway"
        # So are other methods, and a path whose %2F the replica would read as a pin.
        assert ask(f"Bearer {iris_token}", "v1/models/iris%2Fversions%2F1:predict")[0][
            "replica"] == "gateway"
        conn = UnixHTTPConnection(lane.direct)
        conn.request("DELETE", "/services/models/iris/v1/models/iris",
                     headers={"Authorization": f"Bearer {iris_token}"})
        assert json.loads(conn.getresponse().read())["replica"] == "gateway"
        conn.close()

        # The lane decides once the whole body is there: a token revoked while a body
        # arrives is refused for that request too, and a body that never ends is a 408
        # after request_timeout, never a replica's open slot.
        body = b'{"instances": [[1]]}'
        slow = slow_request(lane.direct, iris_token, body, sent=5)
        time.sleep(0.3)
        lb.set_tokens({digest(other_token): "other"})  # iris's token revoked
        slow.sendall(body[5:])
        assert answer_of(slow) == (200, {"replica": "gateway", "path": full})
        assert ask(f"Bearer {iris_token}")[0]["replica"] == "gateway"
        stuck = slow_request(lane.direct, other_token, body, sent=5, endpoint="other")
        started = time.monotonic()
        status, answer = answer_of(stuck)
        assert status == 408 and "send its whole body at once" in answer["error"], answer
        assert 1.5 < time.monotonic() - started < 6
        assert lb._worker_pid() == worker  # at once, without a reload
        # A reload (a new replica) reads the map file: still revoked, the other still open.
        lb.apply(BalancerState([
            EndpointRoute("iris", [VersionRoute(1, 100, [iris.route, replicas("a1").route])]),
            EndpointRoute("other", [VersionRoute(1, 100, [other.route])])]))
        assert lb._worker_pid() != worker
        assert ask(f"Bearer {iris_token}")[0]["replica"] == "gateway"
        held = UnixHTTPConnection(lane.direct)  # kept alive, as the hub's proxy does

        def other_answer() -> str:
            held.request("GET", "/services/models/other/v1/models/other",
                         headers={"Authorization": f"Bearer {other_token}"})
            replica: str = json.loads(held.getresponse().read())["replica"]
            return replica

        assert other_answer() == "b0"
        # After a reload the old worker keeps that idle connection until its next
        # request: a token revoked meanwhile is revoked there too.
        lb.apply(BalancerState([
            EndpointRoute("iris", [VersionRoute(1, 100, [iris.route])]),
            EndpointRoute("other", [VersionRoute(1, 100, [other.route])])]))
        assert lb.old_workers()
        lb.set_tokens({})
        assert other_answer() == "gateway"
        wait_for(lambda: not lb.old_workers(), what="the old workers to finish")
    finally:
        lb.stop()
        meter.close()
    assert not Path(lane.direct).exists()
