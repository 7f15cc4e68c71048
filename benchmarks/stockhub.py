"""Stock JupyterHub for baselines: SimpleLocalProcessSpawner and DummyAuthenticator.

What a JupyterHub user gets today, on this machine: servers run as root with
``--allow-root``, from the same environment and configurable-http-proxy as StudioHub.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from studiohub.configurer import proxy_command
from tests.hubtools import free_port

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


def login_token(url: str, name: str, password: str) -> str:
    """Log ``name`` in through the form and make an API token, as the Token page does."""
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=10)
    session.post(f"{url}/hub/login", timeout=60, allow_redirects=False, data={
        "username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", "")})
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf", "")
    r = session.post(f"{url}/hub/api/users/{name}/tokens", json={"note": "benchmark"},
                     headers={"X-XSRFToken": xsrf}, timeout=10)
    r.raise_for_status()
    return str(r.json()["token"])
