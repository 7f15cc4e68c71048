"""A jobs hub that runs the framework environments the test suite builds.

:class:`JobsHub` (StudioHub's own config with the jobs service on) and the calls the jobs
tests and benchmarks make through it; :class:`FrameworkHub`, a JobsHub started
with ``STUDIOHUB_PREFIX`` = ``$STUDIOHUB_TEST_ENVS`` (default /var/tmp/studiohub-test-envs,
where tests/integration/test_frameworks.py builds pytorch, tensorflow, mxnet and base), so
the jobs service runs those environments; and with the service's poll interval chosen
(the tests' 0.2 s, or the production default for benchmarks). Used by
tests/integration/test_jobs_frameworks.py and benchmarks/training/run.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from studiohub import contract
from studiohub.catalog import merge
from studiohub.installer import JUPYTERHUB_CONFIG
from studiohub.paths import paths
from studiohub.users import ensure_user
from tests import ports
from tests.hubtools import TEST_CATALOG, Hub, User

CATALOG = merge(TEST_CATALOG, {"domains": {
    "team-q": {"display_name": "Team Q", "images": ["base"], "sizes": ["tiny"],
               "jobs": {"max_running": 2}},
}})
FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class JobsHub(Hub):
    """A hub from StudioHub's own config with the jobs service on (sharing off)."""

    jobs_port: int = 0

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/jobs/"

    def start(self, timeout: float = 240) -> None:
        self.jobs_port = ports.free_port()
        self.settings = {**self.settings, "sharing": {"enabled": False},
                         "jobs": {"enabled": True, "port": self.jobs_port,
                                  "poll_interval": 0.2, "auth_cache_seconds": 1}}
        env = {**os.environ, "STUDIOHUB_CONFIG": str(self.write_config())}
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(JUPYTERHUB_CONFIG)], env=env,
                cwd=self.state_dir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.wait_service(timeout)

    def wait_service(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.service_url}api/jobs", timeout=2).status_code == 403:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"jobs service not up after {timeout}s:\n{self.log_tail()}")

    def service_process(self) -> psutil.Process:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.jobs_port \
                    and conn.pid:
                return psutil.Process(conn.pid)
        raise LookupError("the jobs service does not listen")


def call(hub: JobsHub, user: User | None, method: str, path: str,
         **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {user.token}"} if user else {}
    return requests.request(method, f"{hub.service_url}api/{path}", headers=headers,
                            timeout=kwargs.pop("timeout", 60), **kwargs)


def write_script(user: User, name: str, text: str) -> None:
    """A file in the user's home, owned by the user (as the file browser would save it)."""
    account = ensure_user(user.name)
    path = Path(account.pw_dir) / name
    path.write_text(text)
    os.chown(path, account.pw_uid, account.pw_gid)


def submit(hub: JobsHub, user: User, **spec: Any) -> dict[str, Any]:
    r = call(hub, user, "POST", "jobs", json={"image": "base", "size": "tiny", **spec})
    assert r.status_code == 201, r.text
    return dict(r.json())


def wait_for(hub: JobsHub, user: User, job_id: str, done: Callable[[dict[str, Any]], bool],
             timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = call(hub, user, "GET", f"jobs/{job_id}")
        if r.status_code == 200:
            job = r.json()
            if done(job):
                return job
        time.sleep(0.3)
    events = call(hub, user, "GET", f"jobs/{job_id}/events").text
    raise TimeoutError(f"job {job_id}: {job}\n{events}\n{hub.log_tail(3000)}")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in FINAL


def logs(hub: JobsHub, user: User, job_id: str, **params: Any) -> str:
    r = call(hub, user, "GET", f"jobs/{job_id}/logs", params=params)
    assert r.status_code == 200, r.text
    return r.text

ENVS_PREFIX = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs"))


def env_python(image: str) -> Path:
    """An image's interpreter in the test environments."""
    return ENVS_PREFIX / "envs" / image / "bin" / "python"


@dataclass
class FrameworkHub(JobsHub):
    """A :class:`JobsHub` whose jobs run the test environments."""

    poll_interval: float = 0.2

    def write_config(self) -> Path:
        jobs: dict[str, Any] = self.settings.get("jobs", {})
        self.settings = {**self.settings, "jobs": {**jobs, "poll_interval": self.poll_interval}}
        return super().write_config()

    def start(self, timeout: float = 240) -> None:
        with pytest.MonkeyPatch.context() as mp:
            # The hub finds its proxy under its prefix: keep finding the installed one.
            proxy = paths().prefix / "npm" / "node_modules" / ".bin"
            mp.setenv("PATH", f"{proxy}{os.pathsep}{os.environ['PATH']}")
            mp.setenv(contract.PREFIX, str(ENVS_PREFIX))
            super().start(timeout)
