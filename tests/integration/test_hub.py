"""The foundation against a real hub and proxy: login, spawn options, isolation, limits."""

from __future__ import annotations

import os
import pwd
import stat
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.hubtools import Hub, User


def server_state(hub: Hub, user: User) -> dict:
    """The spawner state the hub keeps (admin:server_state scope)."""
    model = hub.api("GET", f"/users/{user.name}").json()
    return dict(model["servers"][""]["state"])


def server_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_login_form_refuses_a_wrong_password(hub: Hub) -> None:
    _, response = hub.login_response("mallory", "not-the-password")
    assert response.status_code == 403
    assert "Invalid username or password" in response.text


def test_login_form_then_api_token(hub: Hub) -> None:
    user = hub.new_user("login")
    me = user.api("GET", "/user")
    assert me.status_code == 200
    assert me.json()["name"] == user.name
    assert user.session.get(f"{hub.url}/hub/spawn/{user.name}").status_code == 200


def test_spawn_page_offers_only_what_the_domain_allows(hub: Hub) -> None:
    everyone = hub.new_user("pick")
    page = everyone.session.get(f"{hub.url}/hub/spawn/{everyone.name}").content.decode()
    assert "PyTorch 2.13 · CPU" in page and "1 vCPU + 512 MiB" in page
    assert "PyTorch 2.13 · GPU" not in page
    team = hub.new_user("team", groups=("team-a",))
    page = team.session.get(f"{hub.url}/hub/spawn/{team.name}").content.decode()
    assert "Base Python" in page
    assert "PyTorch" not in page
    assert "2 vCPU + 4 GiB" not in page


def test_rest_user_options_are_validated_against_the_catalog(hub: Hub) -> None:
    user = hub.new_user("opts", groups=("team-a",))
    cases = [
        ({"image": "nope"}, "unknown image 'nope': allowed values are base"),
        ({"image": "base", "colour": "red"}, "unknown option(s) 'colour'"),
        ({"image": "pytorch"},
         "image 'pytorch' is not allowed in your domains (team-a): allowed images are base"),
        ({"size": "medium"},
         "size 'medium' is not allowed in your domains (team-a): allowed sizes are half, tiny"),
    ]
    for options, message in cases:
        r = user.api("POST", f"/users/{user.name}/server", json=options)
        assert r.status_code == 400, (options, r.status_code, r.text)
        assert message in r.json()["message"], r.json()
    assert user.api("GET", f"/users/{user.name}").json()["servers"] == {}


def test_two_users_are_separate_unix_accounts_that_cannot_reach_each_other(hub: Hub) -> None:
    alice, bob = hub.new_user("alice"), hub.new_user("bob")
    alice.spawn(image="base", size="tiny")
    bob.spawn(image="base", size="tiny")
    who = alice.run(textwrap.dedent("""
        import os, pathlib
        p = pathlib.Path.home() / "secret.txt"
        p.write_text("alice's data")
        print(os.getuid(), pathlib.Path.home(), oct(pathlib.Path.home().stat().st_mode & 0o777))
    """))
    assert who.status == "ok", who
    uid, home, mode = who.stdout.split()
    assert int(uid) != 0 and mode == "0o700"
    assert pwd.getpwuid(int(uid)).pw_dir == home

    alice_state = server_state(hub, alice)
    alice_port = urlsplit(server_env(alice_state["pid"])["JUPYTERHUB_SERVICE_URL"]).port
    probe = bob.run(textwrap.dedent(f"""
        import os, urllib.request, urllib.error
        try:
            open({home!r} + "/secret.txt").read(); print("READ")
        except PermissionError:
            print("file-denied")
        try:
            urllib.request.urlopen("http://127.0.0.1:{alice_port}/user/{alice.name}/api/contents")
            print("SERVER-OPEN")
        except urllib.error.HTTPError as e:
            print("server-denied", e.code)
        print(os.getuid())
    """))
    assert probe.status == "ok", probe
    lines = probe.stdout.split()
    assert lines[:3] == ["file-denied", "server-denied", "403"], probe.stdout
    assert int(lines[3]) not in (0, int(uid))

    through_proxy = requests.get(f"{hub.url}/user/{alice.name}/api/contents",
                                 headers={"Authorization": f"token {bob.token}"}, timeout=10)
    assert through_proxy.status_code == 403
    assert requests.get(f"{hub.url}/user/{alice.name}/api/contents",
                        headers={"Authorization": f"token {alice.token}"},
                        timeout=10).status_code == 200
    alice.stop()
    bob.stop()


def test_kernel_past_its_memory_limit_is_stopped_and_the_user_told_why(hub: Hub) -> None:
    user = hub.new_user("oom")
    user.spawn(image="base", size="tiny")
    kernel = user.start_kernel()
    result = user.run("big = b'x' * (900 * 1024 * 1024)\nprint('survived')", kernel, timeout=60)
    assert result.status == "died" and "survived" not in result.stdout
    deadline = time.monotonic() + 20
    report: dict = {}
    while time.monotonic() < deadline:
        report = user.lab_api("GET", f"/kernels/{kernel}").json()
        if report.get("last_exit"):
            break
        time.sleep(0.5)
    assert report["last_exit"]["reason"] == "oom", report
    assert "512 MiB" in report["last_exit"]["message"]
    assert "1 vCPU + 512 MiB" in report["last_exit"]["message"]
    # The kernel is restarted automatically: running the cell again works once it is back.
    deadline = time.monotonic() + 90
    again = user.run("print(1 + 1)", kernel, timeout=10)
    while again.stdout.strip() != "2" and time.monotonic() < deadline:
        time.sleep(1)
        again = user.run("print(1 + 1)", kernel, timeout=10)
    assert again.stdout.strip() == "2", again
    user.stop()


def test_cpu_limit_is_observed_inside_a_kernel(hub: Hub) -> None:
    user = hub.new_user("cpu")
    user.spawn(image="base", size="half")
    result = user.run(textwrap.dedent("""
        import multiprocessing, os, resource, time
        def burn(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        start = time.monotonic()
        procs = [multiprocessing.Process(target=burn, args=(3,)) for _ in range(2)]
        [p.start() for p in procs]; [p.join() for p in procs]
        wall = time.monotonic() - start
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(round((used.ru_utime + used.ru_stime) / wall, 3))
        print(os.environ.get("STUDIOHUB_CPU_LIMIT"))
    """), timeout=60)
    assert result.status == "ok", result
    cpus_used, limit = result.stdout.split()
    # Two busy processes would use ~2 CPUs unconstrained; the size allows 0.5.
    assert float(cpus_used) <= 0.65, result.stdout
    assert float(limit) == 0.5
    user.stop()


def test_running_servers_survive_a_hub_restart(hub: Hub) -> None:
    user = hub.new_user("keep")
    user.spawn(image="base", size="tiny")
    kernel = user.start_kernel()
    assert user.run("x = 41", kernel).status == "ok"
    pid = server_state(hub, user)["pid"]
    hub.stop()
    os.kill(pid, 0)  # still running without the hub
    hub.start()
    assert server_state(hub, user)["pid"] == pid
    assert user.api("GET", f"/users/{user.name}").json()["servers"][""]["ready"] is True
    assert user.run("print(x + 1)", kernel).stdout.strip() == "42"
    user.stop()


def test_state_directory_is_private(hub: Hub) -> None:
    assert stat.S_IMODE(hub.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((hub.state_dir / "password").stat().st_mode) == 0o600


def test_unix_account_exists_from_the_first_login(hub: Hub) -> None:
    """Like The Littlest JupyterHub: logging in (no server yet) creates the account."""
    from studiohub.slugs import unix_name

    user = hub.new_user("first")
    entry = pwd.getpwnam(unix_name(user.name))
    assert stat.S_IMODE(os.stat(entry.pw_dir).st_mode) == 0o700
    assert not user.api("GET", f"/users/{user.name}").json()["servers"]
