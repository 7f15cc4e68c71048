"""A Jupyter server run as a real unix user, outside any hub (TensorBoard's tests and
benchmark): the account, the server under a hub-style prefix ``/user/<name>/`` with a
token, and the process groups it leaves.

A tools module, not a test module: tests and benchmarks both import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.ports import free_port

HUB_BIN = Path(sys.executable).parent


@dataclass
class UnixUser:
    name: str
    uid: int
    gid: int
    home: Path

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, user=self.uid, group=self.gid, extra_groups=[],
                              env=self.env(), cwd=self.home, text=True, capture_output=True,
                              **kwargs)

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "USER": self.name, "LANG": "C.UTF-8",
                "PATH": f"{HUB_BIN}:/usr/local/bin:/usr/bin:/bin"}

    def processes(self) -> list[str]:
        out = subprocess.run(["pgrep", "-a", "-u", str(self.uid)], capture_output=True,
                             text=True).stdout
        return [line for line in out.splitlines() if line.strip()]


def make_user(prefix: str) -> UnixUser:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    home.chmod(0o700)
    return UnixUser(name, entry.pw_uid, entry.pw_gid, home)


def remove_user(user: UnixUser) -> None:
    subprocess.run(["pkill", "-KILL", "-u", str(user.uid)], capture_output=True)
    subprocess.run(["userdel", "-r", user.name], capture_output=True)


@dataclass
class UserServer:
    """``jupyter server`` as ``user`` at ``/user/<name>/``, token-authenticated."""

    user: UnixUser
    config: dict[str, Any]
    app: str = "server"  # or "lab"
    port: int = 0
    token: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/user/{self.user.name}/"

    def start(self, log: Path) -> UserServer:
        self.port, self.token = free_port(), secrets.token_hex(16)
        args = [str(HUB_BIN / "jupyter"), self.app, "--no-browser", f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.base_url=/user/{self.user.name}/",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.user.home}"]
        config: dict[str, dict[str, Any]] = {}
        for key, value in self.config.items():
            section, trait = key.split(".")
            config.setdefault(section, {})[trait] = value
        config_file = self.user.home / f".server-{self.port}.json"  # readable by the user
        config_file.write_text(json.dumps(config))
        os.chown(config_file, self.user.uid, self.user.gid)
        args.append(f"--config={config_file}")
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args, user=self.user.uid, group=self.user.gid, extra_groups=[],
                env={**self.user.env(), "JUPYTER_PLATFORM_DIRS": "1"}, cwd=self.user.home,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if self.get("api/status").status_code == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(log.read_text()[-3000:])

    def request(self, method: str, path: str, token: str | None = None,
                **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token if token is None else token}"}
        kwargs.setdefault("timeout", 90)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def open(self, *folders: str, wait: bool = True) -> dict[str, Any]:
        query = "?wait=ready" if wait else ""
        response = self.request("POST", f"studiohub/api/v1/tensorboards{query}",
                                json={"folders": list(folders)})
        assert response.status_code in (200, 202), response.text
        return dict(response.json())

    def board(self, tb_id: str) -> dict[str, Any]:
        return dict(self.get(f"studiohub/api/v1/tensorboards/{tb_id}").json())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def group(pgid: int) -> list[int]:
    """The live processes of a process group (a TensorBoard and its data server)."""
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if pid_alive(int(p))]
