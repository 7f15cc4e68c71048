"""Model endpoints through StudioHub against the same model in-process and behind a bare
single-process server of the same framework, in one run.

    sudo /opt/studiohub/hub/bin/python -m benchmarks.serving.run [--requests 1000]
        [--seconds 10] [--clients 4,8] [--deploys 3] [--json FILE]

One test hub (StudioHub's own config, the models service with its production settings:
poll interval 1 s, auth cache 10 s; tests/endpointtools.py's :class:`ModelsHub`) runs the
``pytorch`` image environment that tests/integration/test_frameworks.py builds. One user
(domain ``bench``) owns the models, made in the run by the environment's Python as that
user: ``mlp`` (TorchScript, 64 → 2048 ×4 → 10, ~51 MB, one row per request: inference
is most of a request's cost) and ``big`` (64 → 2880 ×4 → 10, ~100 MB, for deploy times).

* **in-process** (the floor): the environment's Python times ``--requests`` calls of
  ``mlp`` (tensor → forward → list), with torch's default threads and with one; and
  ``import torch`` alone in a fresh process.
* **bare server** (the baseline): :mod:`benchmarks.serving.bare` started by hand as the
  user (``runuser``) on 127.0.0.1: tornado, JSON in, the model, JSON out, nothing else.
* **StudioHub**: the same file deployed as an endpoint and called through the hub's
  proxy at ``/services/models/<ep>/v1/models/<ep>:predict`` with an endpoint token
  (``POST api/endpoints/<ep>/tokens``): the hub's proxy → HAProxy's fast lane (which
  checks the token against its map, docs/endpoints.md) → replica (as the user, in its
  cgroup and network namespace, on a unix socket). Without the lane a request would pass
  the models service's gateway between the proxy and HAProxy: that hop is timed too.

Measurements, baseline and StudioHub alternating in the same run:

* **added latency**: sequential requests on a keep-alive ``requests.Session``, blocks of
  100 alternating between the bare server and the endpoint (1 replica, 2 vCPUs: the
  bare server's torch threads), ``--requests`` each. Goal: p50 ≤ bare + 2 ms, p99 ≤
  bare + 5 ms. Then, to show where it goes, the same request with ``http.client`` (one
  kept-alive connection each, alternating) to the bare server and to each hop from the
  inside out: the replica's unix socket, HAProxy's gateway frontend (kept alive, and a
  new connection per request), HAProxy's fast lane with the token, the models service's
  gateway on its port (the path without the lane), the hub's proxy.
* **throughput**: for each number in ``--clients``, that many threads of this process,
  each with its own session, for ``--seconds`` per turn, two turns each: the bare server
  (one process, torch's default threads) against the endpoint with 2 replicas of 1 vCPU.
  Goal: ≥ 90 % of the bare server. The client shares the 2 cores: the cores each
  process used (the client, the bare server; the hub's proxy, the models service,
  HAProxy, the replicas) are printed. No request batching: the replica program has
  ``--batch-max`` but the models service does not pass it. Apart, clearly labelled, at
  the largest number of clients: the bare server against the replica program started by
  hand on a TCP port with ``--batch-max 0`` and ``8``, no StudioHub in between.
* **deploy → first prediction** of ``big``: ``POST api/endpoints`` → the first 200 of
  the predict URL (with a token made after the 201), against the bare server started
  by hand → its first answer (both import torch and load the file; the endpoint also
  copies the model, places the replica and waits for readiness). Goal: ≤ 10 s +
  ``import torch``.

Every measurement prints the machine's load average (the 2 cores are shared).
Needs root (creates unix users, cgroups, network namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests

from studiohub.catalog import merge
from studiohub.users import ensure_user
from tests import ports
from tests.endpointtools import (
    ModelsHub,
    api,
    in_process_close,
    remove_endpoints,
    serving,
    wait_for,
)
from tests.hubtools import User, shut_down
from tests.jobtools import CATALOG, FrameworkHub, env_python

BARE = Path(__file__).with_name("bare.py")
CATALOG_BENCH = merge(CATALOG, {
    "sizes": {"bench-1": {"display_name": "1 vCPU + 2 GiB", "cpus": 1, "memory": "2G"},
              "bench-2": {"display_name": "2 vCPU + 3 GiB", "cpus": 2, "memory": "3G"}},
    "domains": {"bench": {"display_name": "Bench", "images": ["pytorch"],
                          "sizes": ["bench-1", "bench-2"]}}})
FEATURES = 64
#: One request: one row of FEATURES numbers.
ROW = [[round(((i * 37) % 101) / 50.0 - 1.0, 3) for i in range(FEATURES)]]
MODELS = {"mlp": (2048, 4), "big": (2880, 4)}  # name: (width, hidden layers)

MAKE = """
import json, os, sys, torch
features, width, depth = (int(a) for a in sys.argv[2:5])
torch.manual_seed(0)
layers = [torch.nn.Linear(features, width), torch.nn.ReLU()]
for _ in range(depth - 1):
    layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).eval()
torch.jit.script(net).save(sys.argv[1])
print(json.dumps({"bytes": os.path.getsize(sys.argv[1]),
                  "params": sum(p.numel() for p in net.parameters())}))
"""
IN_PROCESS = """
import json, sys, time, torch
model = torch.jit.load(sys.argv[1], map_location="cpu").eval()
row, n = json.loads(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"instances": row})
found = {"default_threads": torch.get_num_threads()}
for threads in (torch.get_num_threads(), 1):
    torch.set_num_threads(threads)
    calls, with_json = [], []
    with torch.inference_mode():
        for _ in range(20):
            model(torch.tensor(row))
        for i in range(n):
            t = time.perf_counter()
            model(torch.tensor(row)).tolist()
            calls.append(time.perf_counter() - t)
        for i in range(n):
            t = time.perf_counter()
            json.dumps({"predictions": model(torch.tensor(json.loads(body)["instances"])).tolist()})
            with_json.append(time.perf_counter() - t)
    found[str(threads)] = {"calls": calls, "with_json": with_json}
print(json.dumps(found))
"""
IMPORT = "import time\nt = time.perf_counter()\nimport torch\nprint(time.perf_counter() - t)\n"

LOADS: list[tuple[str, float]] = []


def load(label: str) -> float:
    """The 1-minute load average now, printed and kept with ``label``."""
    value = round(os.getloadavg()[0], 2)
    LOADS.append((label, value))
    print(f"  [load {value:.2f} at {label}]", flush=True)
    return value


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``, in ms."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class BenchHub(ModelsHub):
    """A :class:`ModelsHub` with the models service's production settings (the tests'
    hub polls every 0.2 s, which would flatter the deploy time)."""

    def write_config(self) -> Path:
        if not self.models_port:
            self.models_port = ports.free_port()
        self.settings = {**self.settings, "models": {"port": self.models_port}}
        return FrameworkHub.write_config(self)


# --- processes as the user ------------------------------------------------------------

def user_env(home: str) -> dict[str, str]:
    return {"HOME": home, "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}


def as_user(user: User, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """``runuser -u ACCOUNT -- argv`` in the home, as typed in a root shell."""
    account = ensure_user(user.name)
    return subprocess.Popen(["/usr/sbin/runuser", "-u", account.pw_name, "--", *argv],
                            cwd=account.pw_dir, env=user_env(account.pw_dir), text=True,
                            start_new_session=True, **kwargs)


def run_as_user(user: User, argv: list[str], timeout: float = 600) -> str:
    process = as_user(user, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:3]}: exit {process.returncode}: {err[-3000:]}")
    return out


def stop(process: subprocess.Popen[str] | None) -> None:
    """Stop a process started by :func:`as_user`: what runs under ``runuser`` first (so
    that runuser exits by itself), then runuser if it is still there."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(process.pid).children(recursive=True)
        for p in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(children, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def first_answer(url: str, headers: dict[str, str], started: float,
                 process: subprocess.Popen[str] | None = None, timeout: float = 300
                 ) -> tuple[float, Any]:
    """Seconds from ``started`` (time.monotonic) to the first 200 of a prediction at
    ``url``, polled every 20 ms on fresh connections; and that answer."""
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            r = requests.post(url, json={"instances": ROW}, headers=headers, timeout=30)
            if r.status_code == 200:
                return time.monotonic() - started, r.json()["predictions"]
        time.sleep(0.02)
    raise TimeoutError(f"{url}: no answer after {timeout} s")


def logged(user: User, argv: list[str], log: Path) -> subprocess.Popen[str]:
    """:func:`as_user` with its output (and runuser's) appended to ``log``."""
    with log.open("a") as out:
        return as_user(user, argv, stdout=out, stderr=subprocess.STDOUT)


def start_bare(user: User, model: str, port: int, log: Path
               ) -> tuple[subprocess.Popen[str], str]:
    process = logged(user, [str(env_python("pytorch")), "-c", BARE.read_text(), model,
                            str(port)], log)
    return process, f"http://127.0.0.1:{port}/v1/models/bare:predict"


def start_replica(user: User, model: str, port: int, batch_max: int, log: Path
                  ) -> tuple[subprocess.Popen[str], str]:
    """The replica program started by hand on a TCP port (no StudioHub in between)."""
    process = logged(user, [str(env_python("pytorch")), "-s", "-m", "studiohub.modelserver",
                            "--model", model, "--format", "torchscript", "--name", "mlp",
                            "--version", "1", "--port", str(port),
                            "--batch-max", str(batch_max)], log)
    return process, f"http://127.0.0.1:{port}/v1/models/mlp:predict"


# --- the endpoint ------------------------------------------------------------------------

def endpoint_url(hub: ModelsHub, name: str) -> str:
    return f"{hub.models_url}{name}/v1/models/{name}:predict".replace(
        "//localhost:", "//127.0.0.1:")


def token(hub: ModelsHub, user: User, name: str) -> dict[str, str]:
    r = api(hub, user, "POST", f"endpoints/{name}/tokens")
    if r.status_code != 201:
        raise RuntimeError(f"token for {name}: {r.status_code} {r.text}")
    return {"Authorization": f"Bearer {r.json()['token']}"}


def deploy(hub: ModelsHub, user: User, name: str, model: str, replicas: int,
           size: str) -> None:
    r = api(hub, user, "POST", "endpoints", json={"name": name, "model": model,
                                                  "image": "pytorch", "size": size,
                                                  "replicas": replicas})
    if r.status_code != 201:
        raise RuntimeError(f"deploy {name}: {r.status_code} {r.text}")


def delete(hub: ModelsHub, user: User, name: str) -> None:
    """Delete the endpoint and wait until its replicas are gone (their CPU and memory
    free for what comes next)."""
    api(hub, user, "DELETE", f"endpoints/{name}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
            f"--name {name} " in " ".join(p.info["cmdline"] or [])
            for p in psutil.process_iter(["cmdline"])):
        time.sleep(0.2)


# --- measurements ------------------------------------------------------------------------

#: One prediction; returns when the attempt that succeeded started (time.perf_counter).
Call = Callable[[], float]


def session_call(url: str, headers: dict[str, str]) -> Call:
    """One prediction on a keep-alive ``requests.Session`` (what a client program does)."""
    session, body = requests.Session(), json.dumps({"instances": ROW}).encode()
    headers = {**headers, "Content-Type": "application/json"}

    def call() -> float:
        started = time.perf_counter()
        r = session.post(url, data=body, headers=headers, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
        return started
    return call


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 keep-alive over a unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(self.unix_path)
        self.sock = sock


def raw_call(where: str, path: str, headers: dict[str, str], fresh: bool = False) -> Call:
    """One prediction on one kept-alive ``http.client`` connection to ``where`` (a TCP
    port on 127.0.0.1, or a unix socket's path): the lightest client, for the hops.
    ``fresh``: a new connection for each request, ``Connection: close`` (what the
    models service's tornado client does towards HAProxy)."""
    def connect() -> http.client.HTTPConnection:
        return UnixConnection(where) if where.startswith("/") else \
            http.client.HTTPConnection("127.0.0.1", int(where), timeout=30)

    connection = connect()
    body = json.dumps({"instances": ROW}).encode()
    headers = {**headers, "Content-Type": "application/json",
               **({"Connection": "close"} if fresh else {})}

    def call() -> float:
        for attempt in (1, 2):
            started = time.perf_counter()
            c = connect() if fresh else connection
            try:
                c.request("POST", path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # A kept-alive connection the server closed while idle (node's
                # keepAliveTimeout is 5 s): reconnect, and time only the retry.
                c.close()
                if attempt == 2:
                    raise
        if fresh:
            c.close()
        if r.status != 200:
            raise RuntimeError(f"{where}{path}: {r.status} {data[:300]!r}")
        return started
    return call


def latency(arms: dict[str, Call], n: int, block: int = 100) -> dict[str, list[float]]:
    """Sequential predictions of each arm in alternating blocks of ``block`` (the order
    reversed every other round), after 20 each not counted: seconds per request."""
    times: dict[str, list[float]] = {label: [] for label in arms}

    def one(label: str) -> float:
        started = arms[label]()
        return time.perf_counter() - started

    for label in arms:  # connections opened, TorchScript's first calls profiled
        for _ in range(20):
            one(label)
    labels = list(arms)
    for i in range(-(-n // block)):
        for label in labels if i % 2 == 0 else labels[::-1]:
            times[label] += [one(label) for _ in range(min(block, n - i * block))]
    return times


Watched = dict[str, list[psutil.Process]]


def cpu_seconds(watched: Watched) -> dict[str, float]:
    """User + system CPU seconds so far of each group of processes."""
    found = {}
    for label, processes in watched.items():
        total = 0.0
        for p in processes:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
        found[label] = total
    return found


def throughput(url: str, headers: dict[str, str], clients: int, seconds: float,
               watched: Watched) -> dict[str, Any]:
    """``clients`` threads, each posting on its own keep-alive session for ``seconds``;
    the cores each group of ``watched`` processes used meanwhile."""
    body = json.dumps({"instances": ROW}).encode()
    headers = {**headers, "Content-Type": "application/json"}
    done, failed = [0] * clients, [0] * clients
    gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(k: int) -> None:
        session = requests.Session()
        session.post(url, data=body, headers=headers, timeout=30)  # connected
        gate.wait()
        while time.monotonic() < stop_at[0]:
            try:
                ok = session.post(url, data=body, headers=headers, timeout=30).status_code \
                    == 200
            except requests.RequestException:
                ok = False
            done[k] += ok
            failed[k] += not ok

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + 3600
    watched = {**watched, "client (this process)": [psutil.Process()]}
    gate.wait()
    cpu, started = cpu_seconds(watched), time.monotonic()
    stop_at[0] = started + seconds
    for t in threads:
        t.join(seconds + 60)
    wall = time.monotonic() - started
    used = cpu_seconds(watched)
    return {"rps": sum(done) / wall, "requests": sum(done), "failed": sum(failed),
            "cpu_cores": {k: round((used[k] - cpu[k]) / wall, 2) for k in used}}


Arm = tuple[str, dict[str, str], Callable[[], Watched]]


def compare_throughput(arms: dict[str, Arm], clients: int, seconds: float, turns: int
                       ) -> dict[str, list[dict[str, Any]]]:
    """Each arm ``turns`` times, alternating (the order reversed every other turn)."""
    found: dict[str, list[dict[str, Any]]] = {label: [] for label in arms}
    labels = list(arms)
    for i in range(turns):
        for label in labels if i % 2 == 0 else labels[::-1]:
            load(f"throughput, {label}, turn {i + 1}")
            url, headers, watch = arms[label]
            r = throughput(url, headers, clients, seconds, watch())
            found[label].append(r)
            cores = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_cores"].items())
            print(f"    {label}: {r['rps']:.1f} req/s ({r['requests']} answered, "
                  f"{r['failed']} failed); cores used: {cores}", flush=True)
    return found


def under(process: subprocess.Popen[str]) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(process.pid).children(recursive=True)
    return []


def watch_one(label: str, process: subprocess.Popen[str]) -> Watched:
    return {label: under(process)}


def listening(port: int) -> list[psutil.Process]:
    return [psutil.Process(c.pid) for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid]


def endpoint_processes(hub: ModelsHub, name: str) -> Watched:
    """The processes a request to endpoint ``name`` passes through, by role."""
    state = str(hub.state_dir)
    found: Watched = {"hub proxy": listening(hub.port),
                      "models service": listening(hub.models_port),
                      "models manager": [], "HAProxy": [], "replicas": []}
    front = {p.pid for p in found["models service"]}
    for p in psutil.process_iter(["cmdline", "name"]):
        command = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "haproxy" and state in command:
            found["HAProxy"].append(p)
        elif "studiohub.modelserver" in command and f"--name {name} " in command:
            found["replicas"].append(p)
        elif f"-m studiohub.serving --state-dir={state}" in command and \
                "servicewrap" not in command and p.pid not in front:
            found["models manager"].append(p)  # the gateway's manager, where there is one
    if hub.process is not None:
        found["hub"] = [psutil.Process(hub.process.pid)]
    return found


def mean_rps(turns: list[dict[str, Any]]) -> float:
    return statistics.fmean(t["rps"] for t in turns)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# --- the run -------------------------------------------------------------------------------

@dataclass
class Run:
    hub: ModelsHub
    user: User
    args: argparse.Namespace
    models: dict[str, str]
    results: list[dict[str, Any]]
    processes: list[subprocess.Popen[str]]

    def make_models(self) -> None:
        home = Path(ensure_user(self.user.name).pw_dir)
        for name, (width, depth) in MODELS.items():
            run_as_user(self.user, ["mkdir", "-p", str(home / "models" / name)])
            path = home / "models" / name / "net.pt"
            made = json.loads(run_as_user(self.user, [
                str(env_python("pytorch")), "-c", MAKE, str(path), str(FEATURES), str(width),
                str(depth)]).strip().splitlines()[-1])
            self.models[name] = str(path)
            print(f"model {name}: TorchScript MLP {FEATURES} → {width} ×{depth} → 10, "
                  f"{made['params'] / 1e6:.1f} M parameters, {made['bytes'] / 1e6:.1f} MB",
                  flush=True)

    def log(self, name: str) -> Path:
        """Where a process started by hand writes (printed at its end on a failure)."""
        return self.hub.workdir / f"{name}.log"

    def relative(self, name: str) -> str:
        return str(Path(self.models[name]).relative_to(ensure_user(self.user.name).pw_dir))

    def in_process(self) -> dict[str, Any]:
        load("in-process")
        found = json.loads(run_as_user(self.user, [
            str(env_python("pytorch")), "-c", IN_PROCESS, self.models["mlp"], json.dumps(ROW),
            str(self.args.requests)]).strip().splitlines()[-1])
        result: dict[str, Any] = {"name": "in-process (the floor), mlp, one row",
                                  "default_threads": found["default_threads"], "met": None}
        for threads in sorted({str(found["default_threads"]), "1"}, reverse=True):
            calls, with_json = found[threads]["calls"], found[threads]["with_json"]
            result[f"threads_{threads}"] = {
                "p50_ms": pct(calls, 0.5), "p99_ms": pct(calls, 0.99),
                "with_json_p50_ms": pct(with_json, 0.5), "with_json_p99_ms": pct(with_json, 0.99)}
            print(f"in-process, {threads} torch thread(s): a call p50 {pct(calls, 0.5):.2f} ms,"
                  f" p99 {pct(calls, 0.99):.2f} ms; with JSON decode/encode p50 "
                  f"{pct(with_json, 0.5):.2f} ms, p99 {pct(with_json, 0.99):.2f} ms", flush=True)
        return result

    def import_torch(self) -> list[float]:
        seconds = [float(run_as_user(self.user, [str(env_python("pytorch")), "-c", IMPORT]))
                   for _ in range(3)]
        print(f"import torch alone (fresh processes): {', '.join(f'{s:.2f}' for s in seconds)}"
              f" s", flush=True)
        return seconds

    def start(self, started: tuple[subprocess.Popen[str], str]) -> str:
        process, url = started
        self.processes.append(process)
        first_answer(url, {}, time.monotonic(), process, timeout=120)
        return url

    def added_latency(self, bare: str, expected: Any) -> dict[str, Any]:
        deploy(self.hub, self.user, "lat", self.relative("mlp"), 1, "bench-2")
        wait_for(self.hub, self.user, "lat", serving(1))
        headers = token(self.hub, self.user, "lat")
        url = endpoint_url(self.hub, "lat")
        _, got = first_answer(url, headers, time.monotonic())
        if not in_process_close(got, expected):  # threads may change the last bits
            gap = max(abs(g - e) for g, e in zip(got[0], expected[0], strict=True))
            print(f"  the endpoint's answer differs from the bare server's by {gap:.2g}")
            if gap > 1e-3 * max(abs(e) for e in expected[0]):
                raise RuntimeError(f"the endpoint answers {got}, the bare server {expected}")
        before = load("latency")
        times = latency({"bare": session_call(bare, {}), "studiohub": session_call(
            url, headers)}, self.args.requests)
        after = load("latency done")
        hops = self.hops(bare, headers) if not self.args.no_hops else {}
        delete(self.hub, self.user, "lat")
        result: dict[str, Any] = {"name": "added latency (sequential, keep-alive)",
                                  "requests_each": self.args.requests, "load": [before, after]}
        for label, values in times.items():
            result[label] = {"p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99),
                             "mean_ms": 1000 * statistics.fmean(values)}
        result["added_p50_ms"] = result["studiohub"]["p50_ms"] - result["bare"]["p50_ms"]
        result["added_p99_ms"] = result["studiohub"]["p99_ms"] - result["bare"]["p99_ms"]
        result["goal"] = "added p50 <= 2 ms, added p99 <= 5 ms"
        result["met"] = result["added_p50_ms"] <= 2 and result["added_p99_ms"] <= 5
        b, s = result["bare"], result["studiohub"]
        print(f"latency, {self.args.requests} each: bare p50 {b['p50_ms']:.2f} ms, p99 "
              f"{b['p99_ms']:.2f} ms; StudioHub (1 replica, 2 vCPU) p50 {s['p50_ms']:.2f} ms, "
              f"p99 {s['p99_ms']:.2f} ms; added p50 {result['added_p50_ms']:+.2f} ms, p99 "
              f"{result['added_p99_ms']:+.2f} ms (goal ≤ 2 / ≤ 5 ms: "
              f"{verdict(result['met'])})", flush=True)
        result["hops"] = hops
        return result

    def hops(self, bare: str, headers: dict[str, str]) -> dict[str, Any]:
        """Where the added latency goes: the same requests (``http.client``, one kept-alive
        connection each) to the bare server and to each hop of endpoint ``lat``, from
        the replica's socket outwards; medians and p99 in ms."""
        state = json.loads((self.hub.state_dir / "endpoints" / "balancer" / "state.json")
                           .read_text())
        (endpoint,) = [e for e in state["endpoints"] if e["name"] == "lat"]
        replica_socket = endpoint["versions"][0]["replicas"][0][1]
        frontend = str(self.hub.state_dir / "endpoints" / "balancer" / "frontend.sock")
        lane = str(self.hub.state_dir / "endpoints" / "balancer" / "direct.sock")
        route = "/v1/models/lat:predict"
        public = f"/services/models/lat{route}"
        arms = {"bare server (TCP)": raw_call(str(urlsplit(bare).port), urlsplit(bare).path, {}),
                "replica (its unix socket)": raw_call(replica_socket, route, {}),
                "HAProxy (its unix socket)": raw_call(frontend, route, {
                    "X-Studiohub-Backend": "lat"}),
                "HAProxy, a new connection per request": raw_call(frontend, route, {
                    "X-Studiohub-Backend": "lat"}, fresh=True),
                "HAProxy's fast lane (its unix socket, the token)": raw_call(
                    lane, public, headers),
                "models service's gateway (its port: the path without the lane)": raw_call(
                    str(self.hub.models_port), public, headers),
                "hub proxy (what clients call)": raw_call(str(self.hub.port), public, headers)}
        n = max(100, self.args.requests // 2)
        load("hops")
        times = latency(arms, n)
        load("hops done")
        found: dict[str, Any] = {}
        print(f"  where the time goes ({n} requests each, http.client, alternating):",
              flush=True)
        for label, values in times.items():
            found[label] = {"p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99)}
            print(f"    {label}: p50 {pct(values, 0.5):.2f} ms, p99 {pct(values, 0.99):.2f} ms",
                  flush=True)
        return found

    def throughput(self, bare: str) -> list[dict[str, Any]]:
        """For each number of clients: bare against 2 replicas, alternating."""
        deploy(self.hub, self.user, "tput", self.relative("mlp"), 2, "bench-1")
        wait_for(self.hub, self.user, "tput", serving(1))
        headers = token(self.hub, self.user, "tput")
        url = endpoint_url(self.hub, "tput")
        first_answer(url, headers, time.monotonic())
        bare_server = self.processes[0]
        results = []
        for clients in self.args.clients:
            print(f"throughput, {clients} clients, {self.args.seconds:g} s a turn, no "
                  "batching:", flush=True)
            found = compare_throughput({
                "bare": (bare, {}, lambda: {"bare server": under(bare_server)}),
                "studiohub": (url, headers, lambda: endpoint_processes(self.hub, "tput"))},
                clients, self.args.seconds, 2)
            ratio = mean_rps(found["studiohub"]) / mean_rps(found["bare"])
            result = {"name": f"throughput, {clients} clients, bare (1 process) vs StudioHub "
                              "(2 replicas × 1 vCPU), no batching", "clients": clients,
                      "seconds": self.args.seconds, "bare": found["bare"],
                      "studiohub": found["studiohub"], "bare_rps": mean_rps(found["bare"]),
                      "studiohub_rps": mean_rps(found["studiohub"]), "ratio": ratio,
                      "goal": "StudioHub >= 90 % of bare", "met": ratio >= 0.9}
            print(f"throughput, {clients} clients: bare {result['bare_rps']:.1f} req/s, "
                  f"StudioHub {result['studiohub_rps']:.1f} req/s: {100 * ratio:.0f} % "
                  f"(goal ≥ 90 %: {verdict(result['met'])})", flush=True)
            results.append(result)
        delete(self.hub, self.user, "tput")
        return results

    def batching(self, bare: str) -> dict[str, Any]:
        bare_server = self.processes[0]
        arms: dict[str, Arm] = {"bare": (bare, {}, lambda: {"bare server": under(bare_server)})}
        for batch_max in (0, 8):
            url = self.start(start_replica(self.user, self.models["mlp"], ports.free_port(),
                                           batch_max, self.log(f"replica-b{batch_max}")))
            arms[f"replica by hand, --batch-max {batch_max}"] = (
                url, {}, functools.partial(watch_one, "replica", self.processes[-1]))
        print("NOT StudioHub: the replica program started by hand on a TCP port, one process"
              ", no proxy, no service, no balancer:", flush=True)
        clients = max(self.args.clients)
        found = compare_throughput(arms, clients, self.args.seconds, 2)
        for process in self.processes[-2:]:
            stop(process)
        bare_rps = mean_rps(found["bare"])
        result: dict[str, Any] = {
            "name": "batching (NOT StudioHub: the replica program by hand vs bare)",
            "clients": clients, "turns": found, "bare_rps": bare_rps,
            "goal": "informational: the models service does not pass --batch-max yet",
            "met": None}
        for label, turns in found.items():
            result[f"{label} rps"] = mean_rps(turns)
            print(f"  {label}: {mean_rps(turns):.1f} req/s ({100 * mean_rps(turns) / bare_rps:.0f}"
                  f" % of bare)", flush=True)
        return result

    def deploy_times(self, import_s: list[float]) -> dict[str, Any]:
        bare_s: list[float] = []
        ours_s: list[float] = []

        def by_hand() -> None:
            load("deploy, bare")
            started = time.monotonic()
            process, url = start_bare(self.user, self.models["big"], ports.free_port(),
                                         self.log("bare-big"))
            try:
                bare_s.append(first_answer(url, {}, started, process)[0])
            finally:
                stop(process)
            print(f"    bare server started by hand → first answer: {bare_s[-1]:.2f} s",
                  flush=True)

        def studiohub() -> None:
            name = f"big-{len(ours_s) + 1}"
            load("deploy, StudioHub")
            started = time.monotonic()
            deploy(self.hub, self.user, name, self.relative("big"), 1, "bench-1")
            headers = token(self.hub, self.user, name)
            ours_s.append(first_answer(endpoint_url(self.hub, name), headers, started)[0])
            print(f"    StudioHub POST api/endpoints → first prediction: {ours_s[-1]:.2f} s",
                  flush=True)
            delete(self.hub, self.user, name)

        for i in range(self.args.deploys):
            for step in (studiohub, by_hand) if i % 2 == 0 else (by_hand, studiohub):
                step()
        imported = statistics.median(import_s)
        ours, bare = statistics.median(ours_s), statistics.median(bare_s)
        result: dict[str, Any] = {
            "name": "deploy → first prediction, 100 MB TorchScript", "bare_s": bare_s,
                  "studiohub_s": ours_s, "bare_median_s": bare, "studiohub_median_s": ours,
                  "import_torch_s": import_s, "goal": "StudioHub <= 10 s + import torch",
                  "met": ours <= 10 + imported}
        print(f"deploy → first prediction (100 MB): bare server by hand {bare:.2f} s, StudioHub "
              f"{ours:.2f} s (medians of {self.args.deploys}); import torch {imported:.2f} s "
              f"(goal ≤ 10 s + import = {10 + imported:.2f} s: {verdict(result['met'])})",
              flush=True)
        return result

    def all(self) -> None:
        self.make_models()
        self.results.append(self.in_process())
        import_s = self.import_torch()
        bare = self.start(start_bare(self.user, self.models["mlp"], ports.free_port(),
                                         self.log("bare-mlp")))
        _, expected = first_answer(bare, {}, time.monotonic())
        self.results.append(self.added_latency(bare, expected))
        self.results += self.throughput(bare)
        if not self.args.no_batching:
            self.results.append(self.batching(bare))
        stop(self.processes[0])
        import_s += self.import_torch()
        self.results.append(self.deploy_times(import_s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="sequential requests each for latency (and in-process calls)")
    parser.add_argument("--seconds", type=float, default=10, help="one throughput turn")
    parser.add_argument("--clients", type=lambda text: [int(c) for c in text.split(",")],
                        default=[4, 8], help="concurrent connections: one throughput "
                        "measurement for each number in this list (default 4,8)")
    parser.add_argument("--deploys", type=int, default=3, help="deploy rounds each")
    parser.add_argument("--no-batching", action="store_true",
                        help="skip the by-hand replica with --batch-max")
    parser.add_argument("--no-hops", action="store_true",
                        help="skip timing each hop of the endpoint")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: endpoints run as other unix accounts", file=sys.stderr)
        return 2
    if not env_python("pytorch").exists():
        print(f"no pytorch environment at {env_python('pytorch')}: build it with "
              "tests/integration/test_frameworks.py", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    workdir.chmod(0o755)
    hub = BenchHub(workdir, catalog=CATALOG_BENCH, poll_interval=1.0)
    run: Run | None = None
    print(f"work folder (the hub's state and log, the servers' logs): {workdir}")
    load("start")
    # The hub's admin gets a unix account too: removed with the user's at the end.
    hub.created_users.append(hub.admin)
    try:
        hub.start()
        user = hub.new_user("sv", groups=("bench",))
        run = Run(hub, user, args, {}, [], [])
        run.all()
    finally:
        try:
            for process in run.processes if run else []:
                stop(process)
        finally:
            try:
                remove_endpoints(hub, [run.user] if run else [])
            finally:
                shut_down(hub)
    load("end")
    assert run is not None
    results = run.results
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "load": LOADS}, indent=1))
    return 0 if all(r["met"] is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
