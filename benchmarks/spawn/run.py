"""Login-to-JupyterLab-ready latency and 10-at-once wall time: stock JupyterHub vs StudioHub.

Both hubs run in this same process's run, on this machine, from the same environment
and the same configurable-http-proxy. Stock is JupyterHub with SimpleLocalProcessSpawner
(servers run as root with --allow-root) and DummyAuthenticator. StudioHub is
``studiohub up`` with its spawner (unix user per login, cgroup limits, base image).

A "spawn" is what a user does: POST the login form, POST the spawn form, then load
/user/NAME/lab until it answers 200. Prints medians and the ratios StudioHub/stock.

    sudo /opt/studiohub/hub/bin/python benchmarks/spawn/run.py [--single 5] [--concurrent 10]
"""

from __future__ import annotations

import argparse
import os
import signal
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

from studiohub.configurer import proxy_command
from tests.hubtools import Hub, free_port

STOCK_CONFIG = """
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {port} + 81
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "benchmark-password"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = {notebooks!r}
c.Spawner.default_url = "/lab"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
"""


class StockHub:
    """JupyterHub as shipped, with SimpleLocalProcessSpawner."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://localhost:{self.port}"
        self.password = "benchmark-password"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        state = self.workdir / "state"
        state.mkdir(parents=True)
        (self.workdir / "notebooks").mkdir()
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(STOCK_CONFIG.format(
            port=self.port, proxy_api=self.port + 1, proxy=proxy_command(), state=state,
            notebooks=str(self.workdir / "notebooks")))
        log = (self.workdir / "hub.log").open("wb")
        # As a stock install would have it: the hub environment's bin on PATH.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=state, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, env=env)
        wait_for(f"{self.url}/hub/api/")

    def stop(self) -> None:
        if self.process:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5, help="sequential spawns (median)")
    parser.add_argument("--concurrent", type=int, default=10, help="users spawning at once")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: StudioHub creates a unix user per login")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stock = StockHub(Path(tmp) / "stock")
        stock.start()
        try:
            results["stock"] = measure(stock.url, stock.password, {}, args.single,
                                       args.concurrent, [])
        finally:
            stock.stop()
            subprocess.run(["pkill", "-f", f"{tmp}/stock"], check=False)
        workdir = Path(tmp) / "studiohub"
        workdir.mkdir()
        workdir.chmod(0o755)
        Path(tmp).chmod(0o755)
        hub = Hub(workdir)
        hub.start()
        names: list[str] = []
        try:
            results["studiohub"] = measure(hub.url, hub.password,
                                           {"image": "base", "size": "small"}, args.single,
                                           args.concurrent, names)
        finally:
            for user in hub.api("GET", "/users").json():
                stop_server(hub.url, hub.admin_token, user["name"])
            hub.stop()
            from studiohub.slugs import unix_name

            for user_name in names:
                subprocess.run(["userdel", "-r", unix_name(user_name)], capture_output=True,
                               check=False)
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
