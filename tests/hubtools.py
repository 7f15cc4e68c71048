"""Drive a real StudioHub from tests and benchmarks: start it, log in, spawn, run code.

Everything goes through what a user or operator has: the ``studiohub up`` command,
the login form, the hub's REST API, and a kernel's websocket through the proxy.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import requests
import yaml

from tests import ports, processes

HUB_BIN = Path(sys.executable).parent
#: Every test hub's admin (each has its own, whose unix account the hub makes at its
#: start): their accounts are removed when the test session or benchmark exits.
ADMINS: list[str] = []

# Small sizes so limits can be hit quickly on a 2-core CI machine.
TEST_CATALOG = {
    "sizes": {
        "tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
        "half": {"display_name": "0.5 vCPU + 1 GiB", "cpus": 0.5, "memory": "1G"},
        # More memory than any test machine has: refused for capacity, with the reason.
        "giant": {"display_name": "1 vCPU + 4 TiB", "cpus": 1, "memory": "4T"},
    },
    "domains": {
        "everyone": {"sizes": ["tiny", "half", "small", "medium", "giant"]},
        "team-a": {"display_name": "Team A", "images": ["base"], "sizes": ["tiny", "half"]},
    },
}


def free_port() -> int:
    """A hub's port P, with P+1 (proxy API), P+81 (hub API), P+82 (sharing), P+83
    (training jobs) and P+84 (model endpoints) free too."""
    return ports.free_port(1, 81, 82, 83, 84)


@dataclass
class Hub:
    """A StudioHub started with ``studiohub up`` in its own state directory."""

    workdir: Path
    catalog: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin: str = field(default_factory=lambda: f"adm{uuid.uuid4().hex[:6]}")
    _admin_token: str | None = None
    created_users: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the hub
    #: When this hub was made: its processes are created after it.
    created: float = field(default_factory=processes.clock)
    #: The installation whose ``studiohub up`` runs (benchmarks compare another one).
    bin_dir: Path = HUB_BIN

    def __post_init__(self) -> None:
        ADMINS.append(self.admin)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Tests log in with the shared password unless they choose another auth.type.
        config: dict[str, Any] = {"port": self.port, "state_dir": str(self.state_dir),
                                  "auth": {"type": "shared-password",
                                           "admin_users": [self.admin]}, **self.settings}
        if self.catalog is not None:
            catalog_path = self.workdir / "catalog.yaml"
            catalog_path.write_text(yaml.safe_dump(self.catalog))
            config["catalog_path"] = str(catalog_path)
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def own_ports(self) -> set[int]:
        """The hub's port, its proxy's API, its own API, its sharing, jobs and models
        services'."""
        own = [self.settings.get(s, {}).get("port") for s in ("sharing", "jobs", "models")]
        return {self.port, self.port + 1, self.port + 81, self.port + 82, self.port + 83,
                self.port + 84, *(p for p in own if p)}

    def start(self, timeout: float = 240) -> None:
        """``studiohub up``; if the hub does not come up, whatever it started is stopped
        before the error is raised (a fixture that fails here never reaches its teardown)."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        env = {**os.environ, **self.env, "STUDIOHUB_CONFIG": str(self.write_config())}
        # The API answers before services start and users' routes are back in the proxy:
        # up means the hub's own "is now running" line, in this start's part of the log.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(self.bin_dir / "studiohub"), "up"], env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"studiohub up exited {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=1).status_code == 200 and \
                        "JupyterHub is now running" in self._log_since(offset):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"hub not up after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        """Stop the hub with its proxy and services (users' servers keep running, by
        design: a restarted hub finds them again).

        SIGTERM first, so the hub stops its proxy and managed services itself; after
        ``timeout`` its process group is killed. Its services run in sessions of their
        own, so a killed hub (or one that exited without stopping them) leaves them
        running with its configuration: those leftovers, found by this hub's ports, are
        stopped too, and named on stderr so a hub that leaks them is seen.
        """
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:  # its whole group: the proxy must go too
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        left = processes.wait_gone(lambda: processes.started_by(
            self.created, self.own_ports(), commands=processes.HUB_OWN_COMMANDS), timeout=10)
        if left:
            print(f"hub {self.url} left running after its stop (now stopped):\n"
                  f"{processes.describe(left)}", file=sys.stderr)
            processes.kill(left)

    def stop_server(self, name: str, timeout: float = 90) -> None:
        """Stop ``name``'s server and wait until the hub has none running or pending."""
        self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{name}").json()
            if not model.get("servers") and not model.get("pending"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"server of {name} not stopped:\n{self.log_tail()}")

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() \
            else ""

    @property
    def password(self) -> str:
        return (self.state_dir / "password").read_text().strip()

    # --- users -----------------------------------------------------------------------------

    def login(self, name: str, password: str | None = None) -> requests.Session:
        """Log in through the form, as a browser would; raise if refused."""
        session = self.login_response(name, password)[0]
        if "jupyterhub-session-id" not in session.cookies and not any(
                c.name.startswith("jupyterhub-hub-login") for c in session.cookies):
            raise PermissionError(f"login as {name} refused")
        return session

    def login_response(self, name: str, password: str | None = None
                       ) -> tuple[requests.Session, requests.Response]:
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=10)
        pw = password if password is not None else (
            (self.state_dir / "admin-password").read_text().strip() if name == self.admin
            else self.password)
        response = session.post(f"{self.url}/hub/login", timeout=30, allow_redirects=False,
                                data={"username": name, "password": pw,
                                      "_xsrf": session.cookies.get("_xsrf", "")})
        return session, response

    def token_for(self, session: requests.Session, name: str) -> str:
        """Create an API token the way the hub's Token page does."""
        r = session.post(f"{self.url}/hub/api/users/{name}/tokens", json={"note": "tests"},
                         headers={"X-XSRFToken": session.cookies.get("_xsrf", "")}, timeout=10)
        r.raise_for_status()
        return str(r.json()["token"])

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.token_for(self.login(self.admin), self.admin)
        return self._admin_token

    def api(self, method: str, path: str, token: str | None = None,
            **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers,
                                timeout=kwargs.pop("timeout", 30), **kwargs)

    def new_user(self, stem: str = "u", groups: tuple[str, ...] = ()) -> User:
        name = f"{stem}{uuid.uuid4().hex[:6]}"
        self.created_users.append(name)
        session = self.login(name)
        for group in groups:
            r = self.api("POST", f"/groups/{group}/users", json={"users": [name]})
            r.raise_for_status()
        return User(self, name, session, self.token_for(session, name))


@dataclass
class User:
    hub: Hub
    name: str
    session: requests.Session
    token: str

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.hub.api(method, path, token=self.token, **kwargs)

    def spawn(self, timeout: float = 90, **options: str) -> dict[str, Any]:
        """Start the server with user_options through the REST API and wait until ready."""
        r = self.api("POST", f"/users/{self.name}/server", json=options)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn refused: {r.status_code} {r.text}")
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return dict(server)
            if not server and not model.get("pending"):
                raise RuntimeError(f"server of {self.name} stopped:\n{self.hub.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"server of {self.name} not ready:\n{self.hub.log_tail()}")

    def stop(self, timeout: float = 90) -> None:
        self.hub.stop_server(self.name, timeout)

    def server_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.hub.url}/user/{self.name}/api{path}",
                                headers={"Authorization": f"token {self.token}"},
                                timeout=kwargs.pop("timeout", 30), **kwargs)

    def lab_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """StudioHub's server extension API in this user's server."""
        return requests.request(method, f"{self.hub.url}/user/{self.name}/studiohub/api/v1{path}",
                                headers={"Authorization": f"token {self.token}"},
                                timeout=kwargs.pop("timeout", 30), **kwargs)

    def start_kernel(self, name: str | None = None) -> str:
        r = self.server_api("POST", "/kernels", json={"name": name} if name else {})
        r.raise_for_status()
        return str(r.json()["id"])

    def run(self, code: str, kernel_id: str | None = None, timeout: float = 60) -> Execution:
        kernel_id = kernel_id or self.start_kernel()
        return asyncio.run(execute(self.hub.url, self.name, self.token, kernel_id, code, timeout))


@dataclass
class Execution:
    kernel_id: str
    stdout: str
    status: str  # "ok", "error", or "died" when the kernel went away mid-cell
    error: str = ""


async def execute(url: str, user: str, token: str, kernel_id: str, code: str,
                  timeout: float) -> Execution:
    """Run ``code`` over the kernel's websocket through the proxy; collect stdout."""
    ws_url = f"{url.replace('http', 'ws', 1)}/user/{user}/api/kernels/{kernel_id}/channels"
    msg_id = uuid.uuid4().hex
    request = {"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                          "session": uuid.uuid4().hex, "version": "5.3"},
               "parent_header": {}, "metadata": {}, "channel": "shell",
               "content": {"code": code, "silent": False, "store_history": False,
                           "user_expressions": {}, "allow_stdin": False}}
    out: list[str] = []
    status, error = "died", ""
    replied = idle = False  # shell and iopub are not ordered: wait for both ends
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as http, \
            http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
        await ws.send_str(json.dumps(request))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = await ws.receive(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(message.data)
            kind = msg.get("msg_type") or msg["header"]["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] in ("restarting", "dead"):
                status = "died"
                break
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "execute_reply":
                status, replied = msg["content"]["status"], True
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            if replied and idle:
                break
    return Execution(kernel_id, "".join(out), status, error)


# --- teardown ---------------------------------------------------------------------------


def shut_down(hub: Hub) -> None:
    """Stop the servers, then the hub, then remove the accounts: each step even when one
    before it failed, so one broken teardown does not leave a hub loading later modules."""
    try:
        stop_all_servers(hub)
    finally:
        try:
            hub.stop()
        finally:
            remove_test_accounts(hub)


def stop_all_servers(hub: Hub, timeout: float = 90) -> None:
    """Stop every server and wait until they are gone (the hub does not stop them on its
    own exit), so no test's servers load the next module's machine or keep its accounts."""
    if hub.process is None or hub.process.poll() is not None:
        return
    for user in hub.api("GET", "/users").json():
        if user.get("servers"):
            hub.api("DELETE", f"/users/{user['name']}/server")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        users = hub.api("GET", "/users").json()
        if not any(u.get("servers") or u.get("pending") for u in users):
            return
        time.sleep(0.3)


def remove_test_accounts(hub: Hub) -> None:
    """Remove the unix accounts the spawner created for this session's users."""
    from studiohub.slugs import unix_name  # the hub side, imported where it is used

    for name in hub.created_users:
        account = unix_name(name)
        # Whatever a server that did not stop in time left running goes first.
        subprocess.run(["pkill", "-KILL", "-u", account], capture_output=True, check=False)
        subprocess.run(["userdel", "-r", account], capture_output=True, check=False)


def remove_admin_accounts() -> None:
    """The accounts of this session's hubs' admins, once nothing of theirs runs."""
    from studiohub.slugs import unix_name  # the hub side, imported where it is used

    for name in ADMINS:
        account = unix_name(name)
        subprocess.run(["pkill", "-KILL", "-u", account], capture_output=True, check=False)
        subprocess.run(["userdel", "-r", account], capture_output=True, check=False)
    ADMINS.clear()


atexit.register(remove_admin_accounts)
