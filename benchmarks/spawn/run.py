"""Login-to-JupyterLab-ready latency and 10-at-once wall time: stock JupyterHub vs StudioHub.

Both hubs run in this same process's run, on this machine, from the same environment
and the same configurable-http-proxy. Stock is JupyterHub with SimpleLocalProcessSpawner
(servers run as root with --allow-root) and DummyAuthenticator. StudioHub is
``studiohub up`` with its spawner (unix user per login, cgroup limits, base image).

A "spawn" is what a user does: POST the login form, POST the spawn form, then load
/user/NAME/lab until it answers 200. StudioHub runs first, so a warm file cache can
only help the baseline. Prints medians and the ratios StudioHub/stock.

    sudo /opt/studiohub/hub/bin/python benchmarks/spawn/run.py [--single 5] [--concurrent 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.stockhub import StockHub
from tests.hubtools import Hub


def login_to_lab(url: str, name: str, password: str, form: dict[str, str]) -> float:
    """Seconds from POSTing the login form to /user/NAME/lab answering 200."""
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=10)
    xsrf = session.cookies.get("_xsrf", "")
    start = time.monotonic()
    session.post(f"{url}/hub/login", data={"username": name, "password": password,
                                           "_xsrf": xsrf}, timeout=60, allow_redirects=False)
    if form:
        # Login sets a new per-user xsrf cookie: the spawn form must carry that one.
        xsrf = session.cookies.get("_xsrf", path="/hub/") or xsrf
        spawn = session.post(f"{url}/hub/spawn/{name}", data={**form, "_xsrf": xsrf},
                             timeout=120, allow_redirects=False)
    else:
        # No options form (stock): the browser's GET of the spawn page starts the server.
        spawn = session.get(f"{url}/hub/spawn/{name}", timeout=120, allow_redirects=False)
    if spawn.status_code >= 400:
        raise RuntimeError(f"spawn refused for {name}: {spawn.status_code}")
    deadline = start + 120
    while time.monotonic() < deadline:
        r = session.get(f"{url}/user/{name}/lab", timeout=30)
        if r.status_code == 200 and "jupyter-config-data" in r.text:
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"{name} never reached JupyterLab on {url}")


def stop_server(url: str, token: str, name: str) -> None:
    requests.delete(f"{url}/hub/api/users/{name}/server",
                    headers={"Authorization": f"token {token}"}, timeout=60)


def measure(url: str, password: str, form: dict[str, str], single: int, concurrent: int,
            names: list[str]) -> tuple[list[float], float]:
    """Sequential spawns, then ``concurrent`` at once; every user name goes into ``names``."""
    names += [f"s{uuid.uuid4().hex[:6]}" for _ in range(single)]
    singles = [login_to_lab(url, name, password, form) for name in names[-single:]]
    names += [f"c{uuid.uuid4().hex[:6]}" for _ in range(concurrent)]
    start = time.monotonic()
    with ThreadPoolExecutor(concurrent) as pool:
        list(pool.map(lambda n: login_to_lab(url, n, password, form), names[-concurrent:]))
    return singles, time.monotonic() - start


def run_stock(tmp: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    stock = StockHub(tmp / "stock")
    stock.start()
    try:
        return measure(stock.url, stock.password, {}, args.single, args.concurrent, [])
    finally:
        stock.stop()
        subprocess.run(["pkill", "-f", f"{tmp}/stock"], check=False)


def run_studiohub(tmp: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    workdir = tmp / "studiohub"
    workdir.mkdir()
    workdir.chmod(0o755)
    hub = Hub(workdir)
    hub.start()
    names: list[str] = []
    try:
        return measure(hub.url, hub.password, {"image": "base", "size": "small"},
                       args.single, args.concurrent, names)
    finally:
        for user in hub.api("GET", "/users").json():
            stop_server(hub.url, hub.admin_token, user["name"])
        hub.stop()
        from studiohub.slugs import unix_name

        for user_name in names:
            subprocess.run(["userdel", "-r", unix_name(user_name)], capture_output=True,
                           check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5, help="sequential spawns (median)")
    parser.add_argument("--concurrent", type=int, default=10, help="users spawning at once")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: StudioHub creates a unix user per login")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        # StudioHub first: whatever a warm file cache gives goes to the baseline.
        results["studiohub"] = run_studiohub(Path(tmp), args)
        results["stock"] = run_stock(Path(tmp), args)
    report(results, args)
    return 0


def report(results: dict[str, tuple[list[float], float]], args: argparse.Namespace) -> None:
    (stock_single, stock_wall), (ours_single, ours_wall) = results["stock"], results["studiohub"]
    s_med, o_med = statistics.median(stock_single), statistics.median(ours_single)
    print(f"login-to-JupyterLab, median of {args.single} (s): stock {s_med:.2f}  "
          f"studiohub {o_med:.2f}  ratio {o_med / s_med:.2f}")
    print(f"  stock runs:     {' '.join(f'{t:.2f}' for t in stock_single)}")
    print(f"  studiohub runs: {' '.join(f'{t:.2f}' for t in ours_single)}")
    print(f"{args.concurrent} users at once, wall (s): stock {stock_wall:.2f}  "
          f"studiohub {ours_wall:.2f}  ratio {ours_wall / stock_wall:.2f}")


if __name__ == "__main__":
    sys.exit(main())
