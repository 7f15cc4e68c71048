"""Switching one notebook's size vs restarting the server on new options, in the same run.

One StudioHub (``studiohub up``, its own state directory, a catalog with two small
sizes) runs on this machine, with one user whose server runs the base image on ``tiny``
and one notebook with an open session. Each round, both in turn, every one changing size
(``tiny`` 1 vCPU + 512 MiB ↔ ``half`` 0.5 vCPU + 1 GiB):

* **switch** (StudioHub, what the toolbar picker does): ``POST studiohub/api/v1/
  kernel-choices`` {path, image, size, replaces}, ``PATCH /api/sessions/ID`` with the
  image's kernel name, then an ``execute_request`` (``1 + 1``) on the new kernel over its
  websocket; the clock stops at its ``execute_reply``.
* **restart** (StudioHub's own "Change Server Image and Size"): ``DELETE /hub/api/users/
  NAME/server``, wait until stopped, ``POST`` it again with ``{"image", "size"}``, wait
  until ready, ``POST /user/NAME/api/sessions`` for the notebook, the same execute.

Then the baseline of the issue, what JupyterHub users do today: the same restart on
stock JupyterHub 6 (SimpleLocalProcessSpawner, the ``python3`` kernel), in the same run.

One warm-up of each is not counted. Prints medians, every sample, the ratios and whether
the targets are met (switch median ≤ 1.0 s, ≥ 4× faster than the restart): against
stock JupyterHub's restart (the issue's baseline) and against StudioHub's own, which
starts servers faster (``StudioSpawner`` answers as soon as the server listens).

Then, where the PyTorch and TensorFlow kernels are registered (environments the tests
build under ``$STUDIOHUB_TEST_ENVS``, default /var/tmp/studiohub-test-envs), the wait a
user has after a switch before the framework is usable: ``import torch`` / ``import
tensorflow`` in a freshly switched kernel (size ``medium``), median of ``--imports``.

Then the same two, clicked in JupyterLab in Debian's Chromium (``lab.py``): from the
picker's button to the notebook's new kernel idle, median of ``--lab-rounds``.

    sudo /opt/studiohub/hub/bin/python benchmarks/switch/run.py [--rounds 7] [--imports 3]
        [--lab-rounds 5]

With ``--compare BIN`` (another installation's ``bin`` directory, e.g. a venv with an
older commit installed: ``/usr/bin/python3 -m venv V && V/bin/pip install "OLD[test]"``)
it measures instead the switch on both installations in the same run: one hub each, one
user each, the switches alternating between the two (the order swapped every round, so
neither always goes first), then ``--lab-rounds`` switches clicked in JupyterLab on
each, back to back. It prints both medians, their steps and the ratio this/other, and
the CPU time each switch took (the hub with its proxy, the user's server and kernels),
which a busy machine inflates far less than the wall-clock time.

    sudo /opt/studiohub/hub/bin/python benchmarks/switch/run.py --compare V/bin \
        [--rounds 15] [--lab-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.stockhub import StockHub, login_token
from benchmarks.switch.lab import measure_in_lab
from studiohub.slugs import unix_name
from tests.browsertools import CHROMIUM
from tests.hubtools import HUB_BIN, Execution, Hub, User, execute

ENVS_PREFIX = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs"))
FRAMEWORKS = {"pytorch": "torch", "tensorflow": "tensorflow"}
SIZES = ("tiny", "half")
CATALOG = {
    "sizes": {
        "tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
        "half": {"display_name": "0.5 vCPU + 1 GiB", "cpus": 0.5, "memory": "1G"},
    },
    "domains": {"everyone": {"images": ["base", *FRAMEWORKS], "sizes": [*SIZES, "medium"]}},
}
NOTEBOOK = "bench.ipynb"
TRIVIAL = "1 + 1"
POLL = 0.02
SWITCH_TARGET_S = 1.0
SPEEDUP_TARGET = 4.0


def other(size: str) -> str:
    return SIZES[1] if size == SIZES[0] else SIZES[0]


class Bench:
    """A user's hub, server and lab APIs on one keep-alive connection pool."""

    def __init__(self, url: str, name: str, token: str, log_tail: Callable[[], str],
                 kernel: str = "studiohub-base") -> None:
        self.url, self.name, self.token, self.log_tail = url, name, token, log_tail
        self.kernel = kernel  # what a new session starts
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"
        self.server = f"{url}/user/{name}"

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.url}/hub/api{path}", timeout=120, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.server}{path}", timeout=120, **kwargs)

    def server_model(self) -> dict[str, Any]:
        return dict(self.hub_api("GET", f"/users/{self.name}").json())

    def open_session(self) -> dict[str, Any]:
        r = self.call("POST", "/api/sessions", json={
            "path": NOTEBOOK, "name": NOTEBOOK, "type": "notebook",
            "kernel": {"name": self.kernel}})
        if r.status_code != 201:
            raise RuntimeError(f"session refused: {r.status_code} {r.text}")
        return dict(r.json())

    def run(self, kernel_id: str, code: str = TRIVIAL, timeout: float = 120) -> Execution:
        """``code`` on the kernel; retried while its websocket is not there yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = asyncio.run(execute(self.url, self.name, self.token, kernel_id, code,
                                             deadline - time.monotonic()))
            except Exception:  # the websocket refused: the kernel is not registered yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL)
                continue
            if result.status != "ok":
                raise RuntimeError(f"execute on {kernel_id} answered {result}")
            return result

    # --- StudioHub: switch one notebook's kernel ------------------------------------------

    def switch(self, session: dict[str, Any], image: str, size: str
               ) -> tuple[dict[str, Any], dict[str, float]]:
        """Picker → new kernel answering; the new session and the time of each step."""
        start = time.monotonic()
        r = self.call("POST", "/studiohub/api/v1/kernel-choices", json={
            "path": session["path"], "image": image, "size": size,
            "replaces": session["kernel"]["id"]})
        if r.status_code != 200:
            raise RuntimeError(f"choice refused: {r.status_code} {r.text}")
        chosen = time.monotonic()
        r = self.call("PATCH", f"/api/sessions/{session['id']}",
                      json={"kernel": {"name": r.json()["kernel_name"]}})
        if r.status_code != 200:
            raise RuntimeError(f"kernel change refused: {r.status_code} {r.text}")
        patched = time.monotonic()
        new = dict(r.json())
        self.run(new["kernel"]["id"])
        done = time.monotonic()
        return new, {"total": done - start, "choice": chosen - start,
                     "patch": patched - chosen, "first reply": done - patched}

    # --- baseline: restart the server on new options --------------------------------------

    def restart(self, options: dict[str, str]) -> tuple[dict[str, Any], dict[str, float]]:
        """Stop the server, start it with ``options``, open the notebook, run a cell."""
        start = time.monotonic()
        r = self.hub_api("DELETE", f"/users/{self.name}/server")
        if r.status_code not in (202, 204):
            raise RuntimeError(f"stop refused: {r.status_code} {r.text}")
        self.wait(lambda m: not m.get("servers") and not m.get("pending"), "stopped")
        stopped = time.monotonic()
        r = self.hub_api("POST", f"/users/{self.name}/server", json=options)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn refused: {r.status_code} {r.text}")
        self.wait(lambda m: bool(m.get("servers", {}).get("", {}).get("ready")), "ready")
        ready = time.monotonic()
        session = self.open_session()
        self.run(session["kernel"]["id"])
        done = time.monotonic()
        return session, {"total": done - start, "stop": stopped - start,
                         "spawn": ready - stopped, "kernel": done - ready}

    def wait(self, done: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.server_model()):
                return
            time.sleep(POLL)
        raise TimeoutError(f"server of {self.name} not {what}:\n{self.log_tail()}")

    # --- framework import after a switch ---------------------------------------------------

    def import_after_switch(self, session: dict[str, Any], image: str
                            ) -> tuple[dict[str, Any], float, float]:
        """Switch to ``image`` on ``medium``; the switch's time and the import's."""
        session, steps = self.switch(session, image, "medium")
        module = FRAMEWORKS[image]
        code = ("import os, time\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\n"
                f"_t = time.perf_counter()\nimport {module}\n"
                "print(time.perf_counter() - _t)")
        result = self.run(session["kernel"]["id"], code)
        return session, steps["total"], float(result.stdout.split()[-1])


def frameworks_registered() -> list[str]:
    kernels = ENVS_PREFIX / "share" / "jupyter" / "kernels"
    return [image for image in FRAMEWORKS
            if (kernels / f"studiohub-{image}" / "kernel.json").exists()]


def measure(bench: Bench, rounds: int, imports: int) -> dict[str, Any]:
    assert bench.call("PUT", f"/api/contents/{NOTEBOOK}", json={
        "type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                        "nbformat_minor": 5}}).ok
    session = bench.open_session()
    bench.run(session["kernel"]["id"])
    size = "tiny"  # the server's size, which the first session's kernel shares
    switches: list[dict[str, float]] = []
    restarts: list[dict[str, float]] = []
    for round_ in range(rounds + 1):  # round 0 warms both up
        size = other(size)
        session, switched = bench.switch(session, "base", size)
        size = other(size)
        session, restarted = bench.restart({"image": "base", "size": size})
        if round_:
            switches.append(switched)
            restarts.append(restarted)
        print(f"round {round_ or 'warm-up'}: switch {switched['total']:.2f} s, "
              f"restart {restarted['total']:.2f} s")
    results: dict[str, Any] = {"switch": switches, "restart": restarts, "imports": {}}
    for image in frameworks_registered() if imports else []:
        samples = []
        for _ in range(imports):
            session, switch_s, import_s = bench.import_after_switch(session, image)
            samples.append((switch_s, import_s))
            print(f"{image}: switch {switch_s:.2f} s, import {import_s:.2f} s")
        results["imports"][image] = samples
    return results


def measure_stock(workdir: Path, rounds: int) -> list[dict[str, float]]:
    """The same restart on stock JupyterHub (SimpleLocalProcessSpawner), as users do today."""
    stock = StockHub(workdir)
    stock.start()
    try:
        name = "stockbench"
        token = login_token(stock.url, name, stock.password)
        bench = Bench(stock.url, name, token, lambda: (workdir / "hub.log").read_text()[-4000:],
                      kernel="python3")
        bench.hub_api("POST", f"/users/{name}/server")
        bench.wait(lambda m: bool(m.get("servers", {}).get("", {}).get("ready")), "ready")
        restarts = []
        for round_ in range(rounds + 1):  # round 0 warms up
            _, restarted = bench.restart({})
            if round_:
                restarts.append(restarted)
            print(f"stock round {round_ or 'warm-up'}: restart {restarted['total']:.2f} s")
        bench.hub_api("DELETE", f"/users/{name}/server")
        return restarts
    finally:
        stock.stop()


def median(samples: list[dict[str, float]], key: str = "total") -> float:
    return statistics.median(s[key] for s in samples)


def report(results: dict[str, Any], rounds: int, load: tuple[float, float]) -> None:
    switches, restarts = results["switch"], results["restart"]
    ours, theirs = median(switches), median(restarts)
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start, "
          f"{load[1]:.2f} at the end")
    print(f"click-to-idle-kernel, median of {rounds} (s): switch {ours:.2f}  "
          f"server restart {theirs:.2f}  ratio switch/restart {ours / theirs:.2f} "
          f"({theirs / ours:.1f}x faster)")
    print("  switch runs:  " + " ".join(f"{s['total']:.2f}" for s in switches))
    print("    median steps: " + ", ".join(f"{k} {median(switches, k):.3f}"
                                          for k in ("choice", "patch", "first reply")))
    print("  restart runs: " + " ".join(f"{s['total']:.2f}" for s in restarts))
    print("    median steps: " + ", ".join(f"{k} {median(restarts, k):.3f}"
                                          for k in ("stop", "spawn", "kernel")))
    stock = median(results["stock"])
    print(f"stock JupyterHub server restart, median of {rounds} (s): {stock:.2f}  "
          f"ratio switch/stock restart {ours / stock:.2f} ({stock / ours:.1f}x faster)")
    print("  stock runs:   " + " ".join(f"{s['total']:.2f}" for s in results["stock"]))
    print("    median steps: " + ", ".join(f"{k} {median(results['stock'], k):.3f}"
                                          for k in ("stop", "spawn", "kernel")))
    met = {True: "met", False: "NOT met"}
    print(f"target switch median <= {SWITCH_TARGET_S:.1f} s: {met[ours <= SWITCH_TARGET_S]}")
    print(f"target >= {SPEEDUP_TARGET:.0f}x faster than restarting the server on stock "
          f"JupyterHub: {met[stock >= SPEEDUP_TARGET * ours]}; than StudioHub's own "
          f"server restart: {met[theirs >= SPEEDUP_TARGET * ours]}")
    if not results["imports"]:
        print(f"framework imports: skipped (--imports 0, or no PyTorch/TensorFlow kernels under "
              f"{ENVS_PREFIX}; build them with `make test` or tests/integration/"
              "test_frameworks.py)")
    lab = results.get("lab")
    if lab:
        switch_s, restart_s = median(lab["switch"]), median(lab["restart"])
        print(f"in JupyterLab (Chromium), click to idle kernel, median of "
              f"{len(lab['switch'])} (s): switch {switch_s:.2f}  server restart "
              f"{restart_s:.2f}  ratio {switch_s / restart_s:.2f} "
              f"({restart_s / switch_s:.1f}x faster)")
        print("  switch runs:  " + " ".join(f"{s['total']:.2f}" for s in lab["switch"]))
        print("  restart runs: " + " ".join(f"{s['total']:.2f}" for s in lab["restart"]))
        print("    median steps: " + ", ".join(
            f"{k} {median(lab['restart'], k):.3f}"
            for k in ("to progress page", "server up", "Lab and kernel")))
    else:
        print("in JupyterLab: skipped (--lab-rounds 0, or no /usr/bin/chromium)")
    for image, samples in results["imports"].items():
        switch_s = statistics.median(s for s, _ in samples)
        import_s = statistics.median(i for _, i in samples)
        print(f"after a switch to {image} (medium), median of {len(samples)}: switch "
              f"{switch_s:.2f} s, then `import {FRAMEWORKS[image]}` {import_s:.2f} s  "
              f"(imports: {' '.join(f'{i:.2f}' for _, i in samples)})")


def compare(args: argparse.Namespace, env: dict[str, str]) -> int:
    """This installation's switch against ``args.compare``'s, alternating in one run."""
    installs = {"this": HUB_BIN, "other": Path(args.compare).resolve()}
    if not (installs["other"] / "studiohub").exists():
        sys.exit(f"no studiohub in {installs['other']}: give an installation's bin directory")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        hubs: dict[str, Hub] = {}
        try:
            for label, bin_dir in installs.items():
                workdir = Path(tmp) / label
                workdir.mkdir(mode=0o755)
                hubs[label] = Hub(workdir, catalog=CATALOG, env=env, bin_dir=bin_dir)
                hubs[label].start()
            results = measure_both(hubs, args.rounds, args.lab_rounds)
        finally:
            stop_hubs(list(hubs.values()))
    report_both(results, installs, (load_start, os.getloadavg()[0]))
    return 0


def cpu_seconds(root: int, uid: int) -> tuple[float, float]:
    """CPU time (user + system) so far of process ``root`` with its descendants (the hub,
    its proxy and services) and of account ``uid``'s processes (the user's server and
    kernels), each including their exited children's."""
    import psutil

    def used(procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    user = [p for p in psutil.process_iter(["uids"])
            if p.info["uids"] and p.info["uids"].real == uid]
    theirs = {p.pid for p in user}
    hub: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        hub = [p for p in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
               if p.pid not in theirs]
    return used(hub), used(user)


def measure_both(hubs: dict[str, Hub], rounds: int, lab_rounds: int
                 ) -> dict[str, dict[str, list[dict[str, float]]]]:
    """``rounds`` switches on each hub, alternating (one warm-up each not counted);
    then ``lab_rounds`` clicked in JupyterLab on each, the other hub's first."""
    users = {label: hub.new_user(f"swbench{label}") for label, hub in hubs.items()}
    benches, sessions, sizes, cpu = {}, {}, {}, {}
    for label, user in users.items():
        user.spawn(image="base", size="tiny")
        benches[label] = Bench(hubs[label].url, user.name, user.token, hubs[label].log_tail)
        assert benches[label].call("PUT", f"/api/contents/{NOTEBOOK}", json={
            "type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                            "nbformat_minor": 5}}).ok
        sessions[label] = benches[label].open_session()
        benches[label].run(sessions[label]["kernel"]["id"])
        sizes[label] = "tiny"
        uid = pwd.getpwnam(unix_name(user.name)).pw_uid
        process = hubs[label].process
        assert process is not None, "the hub was started"
        cpu[label] = functools.partial(cpu_seconds, process.pid, uid)
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        label: {"switch": [], "lab": []} for label in hubs}
    for round_ in range(rounds + 1):  # round 0 warms both up
        order = list(hubs) if round_ % 2 else list(reversed(hubs))
        line = []
        for label in order:
            sizes[label] = other(sizes[label])
            hub_cpu, user_cpu = cpu[label]()
            sessions[label], steps = benches[label].switch(sessions[label], "base",
                                                           sizes[label])
            hub_after, user_after = cpu[label]()
            steps["cpu hub"], steps["cpu server"] = hub_after - hub_cpu, user_after - user_cpu
            steps["cpu"] = steps["cpu hub"] + steps["cpu server"]
            if round_:
                results[label]["switch"].append(steps)
            line.append(f"{label} {steps['total']:.2f} s")
        print(f"round {round_ or 'warm-up'}: " + ", ".join(line))
    if lab_rounds and CHROMIUM.exists():
        for label in reversed(hubs):  # the other first: a later run on a warmer machine
            lab = measure_in_lab(hubs[label], users[label], SIZES, sizes[label], lab_rounds,
                                 restarts=False)
            results[label]["lab"] = lab["switch"]
    return results


def stop_hubs(hubs: list[Hub]) -> None:
    """Stop the hubs and their users' servers; remove the users' accounts."""
    for hub in hubs:
        for name in hub.created_users:
            User(hub, name, requests.Session(), hub.admin_token).stop()
        hub.stop()
        for name in hub.created_users:
            subprocess.run(["userdel", "-r", unix_name(name)], capture_output=True,
                           check=False)


def report_both(results: dict[str, dict[str, list[dict[str, float]]]],
                installs: dict[str, Path], load: tuple[float, float]) -> None:
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start, "
          f"{load[1]:.2f} at the end")
    for label, bin_dir in installs.items():
        switches = results[label]["switch"]
        print(f"{label} ({bin_dir}): switch through the APIs, median of {len(switches)}: "
              f"{median(switches):.3f} s")
        print("  runs: " + " ".join(f"{s['total']:.2f}" for s in switches))
        print("  median steps: " + ", ".join(f"{k} {median(switches, k):.3f}"
                                            for k in ("choice", "patch", "first reply")))
        print(f"  CPU time per switch, median: {median(switches, 'cpu'):.3f} s (hub and "
              f"proxy {median(switches, 'cpu hub'):.3f}, the user's server and kernels "
              f"{median(switches, 'cpu server'):.3f}; runs: "
              + " ".join(f"{s['cpu']:.2f}" for s in switches) + ")")
        if results[label]["lab"]:
            print(f"  clicked in JupyterLab, median of {len(results[label]['lab'])}: "
                  f"{median(results[label]['lab']):.3f} s  (runs: "
                  + " ".join(f"{s['total']:.2f}" for s in results[label]["lab"]) + ")")
    this, theirs = results["this"], results["other"]
    for key in ("total", "choice", "patch", "first reply", "cpu", "cpu hub", "cpu server"):
        if median(theirs["switch"], key):
            print(f"ratio this/other, {key}: "
                  f"{median(this['switch'], key) / median(theirs['switch'], key):.2f}")
    if this["lab"] and theirs["lab"]:
        print(f"ratio this/other, clicked in JupyterLab: "
              f"{median(this['lab']) / median(theirs['lab']):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="switches and restarts (median)")
    parser.add_argument("--imports", type=int, default=3, help="framework imports (median)")
    parser.add_argument("--lab-rounds", type=int, default=5,
                        help="switches and restarts clicked in JupyterLab (0: none)")
    parser.add_argument("--compare", metavar="BIN",
                        help="another installation's bin directory: compare switches only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: StudioHub creates a unix user and cgroups")
    env = {}
    if frameworks_registered() or (ENVS_PREFIX / "share" / "jupyter" / "kernels" /
                                   "studiohub-base" / "kernel.json").exists():
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(ENVS_PREFIX / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
        ).strip(os.pathsep)
    if args.compare:
        return compare(args, env)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        workdir = Path(tmp) / "hub"
        workdir.mkdir()
        workdir.chmod(0o755)
        hub = Hub(workdir, catalog=CATALOG, env=env)
        hub.start()
        try:
            user = hub.new_user("swbench")
            user.spawn(image="base", size="tiny")
            results = measure(Bench(hub.url, user.name, user.token, hub.log_tail),
                              args.rounds, args.imports)
            if args.lab_rounds and CHROMIUM.exists():
                server = user.api("GET", f"/users/{user.name}").json()["servers"][""]
                results["lab"] = measure_in_lab(hub, user, SIZES,
                                                server["user_options"]["size"],
                                                args.lab_rounds)
        finally:
            stop_hubs([hub])
        results["stock"] = measure_stock(Path(tmp) / "stock", args.rounds)
    report(results, args.rounds, (load_start, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
