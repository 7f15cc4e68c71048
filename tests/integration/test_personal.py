"""A personal hub: ``studiohub up`` run by an ordinary account, as that account.

The account's own prefix (``~/.local/share/studiohub``), its environments built there,
only that account may log in, its server and kernels run as it, kernels listen on unix
sockets in a 0700 directory of its own, and the hub says the host cannot enforce sizes.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hubtools import HUB_BIN, execute, free_port

PROXY_BIN = Path("/opt/studiohub/npm/node_modules/.bin")  # installed by the system hub


@pytest.fixture(scope="module")
def account() -> Iterator[pwd.struct_passwd]:
    name = f"shp{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def test_a_personal_hub_serves_only_its_account(account: pwd.struct_passwd) -> None:
    port = free_port()
    url = f"http://localhost:{port}"
    home = Path(account.pw_dir)
    log = home / "studiohub-up.log"
    # The proxy the system install put on disk (npm would fetch the same package).
    path = f"{HUB_BIN}:{PROXY_BIN}:/usr/bin:/bin"
    # A clean environment, as a login gives (make test exports STUDIOHUB_PREFIX, which
    # would point the account at the system install).
    command = (f"cd && env -i HOME={home} USER={account.pw_name} LOGNAME={account.pw_name} "
               f"LANG=C.UTF-8 PATH={path} {HUB_BIN / 'studiohub'} up --port {port} "
               f"> {log} 2>&1")
    hub = subprocess.Popen(["su", "-s", "/bin/bash", account.pw_name, "-c", command],
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # builds the base and TensorBoard environments
        while time.monotonic() < deadline:
            assert hub.poll() is None, log.read_text()
            try:
                if requests.get(f"{url}/hub/api/", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError(log.read_text())
        output = log.read_text()
        prefix = home / ".local" / "share" / "studiohub"
        assert f"setting up personal hub in {prefix}" in output
        assert f"only {account.pw_name} can log in" in output
        password = (prefix / "state" / "password").read_text().strip()

        intruder = requests.Session()
        intruder.get(f"{url}/hub/login", timeout=10)
        refused = intruder.post(f"{url}/hub/login", allow_redirects=False, timeout=30, data={
            "username": "someoneelse", "password": password,
            "_xsrf": intruder.cookies.get("_xsrf", "")})
        assert refused.status_code == 403, refused.status_code

        session = requests.Session()
        session.get(f"{url}/hub/login", timeout=10)
        session.post(f"{url}/hub/login", allow_redirects=False, timeout=30, data={
            "username": account.pw_name, "password": password,
            "_xsrf": session.cookies.get("_xsrf", "")})
        xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf", "")
        token = session.post(f"{url}/hub/api/users/{account.pw_name}/tokens", json={},
                             headers={"X-XSRFToken": xsrf}, timeout=10).json()["token"]
        auth = {"Authorization": f"token {token}"}
        spawned = requests.post(f"{url}/hub/api/users/{account.pw_name}/server", timeout=60,
                                headers=auth, json={"image": "base", "size": "small"})
        assert spawned.status_code in (201, 202), spawned.text
        deadline = time.monotonic() + 90
        while not requests.get(f"{url}/hub/api/users/{account.pw_name}", headers=auth,
                               timeout=10).json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        kernel = requests.post(f"{url}/user/{account.pw_name}/api/kernels", headers=auth,
                               json={}, timeout=60).json()["id"]
        code = ("import os, json\nprint(json.dumps([os.getuid(), "
                "os.environ['STUDIOHUB_KERNEL_SOCKETS'], os.environ['STUDIOHUB_LIMITS']]))")
        result = asyncio.run(execute(url, account.pw_name, token, kernel, code, 60))
        uid, sockets, limits = json.loads(result.stdout)
        assert uid == account.pw_uid  # the account's own processes, not root's
        assert limits == "none"  # a non-root account cannot make cgroups: said, not faked
        directory = Path(sockets)
        assert directory == prefix / "run"
        info = directory.stat()
        assert info.st_uid == account.pw_uid and stat.S_IMODE(info.st_mode) == 0o700
        assert any(stat.S_ISSOCK(p.stat().st_mode) for p in directory.iterdir())
        requests.delete(f"{url}/hub/api/users/{account.pw_name}/server", headers=auth,
                        timeout=60)
    finally:  # su starts the command in a session of its own: signal the account's
        subprocess.run(["pkill", "-TERM", "-u", account.pw_name], check=False)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:  # never hides the test's own failure
            subprocess.run(["pkill", "-KILL", "-u", account.pw_name], check=False)
            hub.wait(10)


def test_a_prefix_that_is_not_the_account_s_is_a_clear_error(account: pwd.struct_passwd
                                                            ) -> None:
    command = (f"env -i HOME={account.pw_dir} USER={account.pw_name} PATH=/usr/bin:/bin "
               f"STUDIOHUB_PREFIX=/opt/studiohub {HUB_BIN / 'studiohub'} up --no-start")
    result = subprocess.run(["su", "-s", "/bin/bash", account.pw_name, "-c", command],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "error: /opt/studiohub is not yours to write: run as root" in result.stderr
    assert "Traceback" not in result.stderr
