"""Per-notebook image and size, through the APIs the Lab front end uses (real hub, kernels).

A notebook's kernel is switched the way the front end does it: record the choice with
``POST studiohub/api/v1/kernel-choices``, then change the session's kernel. Limits are
read from inside the kernel, from the cgroup files the kernel really runs under.
"""

from __future__ import annotations

import json
import stat
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.hubtools import Hub, User
from tests.integration.conftest import MAX_PLACED_KERNELS

GIB = 1024**3
MIB = 1024**2

# What the kernel really has: its cgroup's memory limit and CPU quota.
LIMITS_CODE = textwrap.dedent("""
    def _limits():
        mounts = [l.split() for l in open("/proc/self/mounts") if " cgroup" in l]
        mine = {}
        for line in open("/proc/self/cgroup"):
            _, ctrls, path = line.strip().split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                mine[c] = path
        def where(ctrl):
            for m in mounts:
                opts = m[3].split(",")
                if m[2] == "cgroup" and ctrl in opts:
                    return m[1] + mine[ctrl]
            return None
        mem_dir, cpu_dir = where("memory"), where("cpu")
        if mem_dir:
            memory = int(open(mem_dir + "/memory.limit_in_bytes").read())
            quota = int(open(cpu_dir + "/cpu.cfs_quota_us").read())
            period = int(open(cpu_dir + "/cpu.cfs_period_us").read())
        else:
            base = [m[1] for m in mounts if m[2] == "cgroup2"][0] + mine["unified"]
            memory = int(open(base + "/memory.max").read())
            q, p = open(base + "/cpu.max").read().split()
            quota, period = int(q), int(p)
        return quota / period, memory
    _cpus, _memory = _limits()
    print(_cpus, _memory)
""")


def notebook(metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "notebook", "content": {
        "cells": [], "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}}


def open_session(user: User, path: str, kernel: str = "studiohub-base") -> dict[str, Any]:
    r = user.server_api("POST", "/sessions", json={"path": path, "name": path,
                                                   "type": "notebook",
                                                   "kernel": {"name": kernel}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def switch(user: User, session: dict[str, Any], image: str, size: str) -> dict[str, Any]:
    """What the picker does: record the choice, then restart this notebook's kernel."""
    r = user.lab_api("POST", "/kernel-choices", json={
        "path": session["path"], "image": image, "size": size,
        "replaces": session["kernel"]["id"]})
    assert r.status_code == 200, r.text
    r = user.server_api("PATCH", f"/sessions/{session['id']}",
                        json={"kernel": {"name": r.json()["kernel_name"]}})
    assert r.status_code == 200, r.text
    return dict(r.json())


def limits(user: User, kernel_id: str) -> tuple[float, int]:
    result = user.run(LIMITS_CODE, kernel_id, timeout=60)
    assert result.status == "ok", result
    cpus, memory = result.stdout.split()
    return float(cpus), int(memory)


def placements(hub: Hub) -> list[dict[str, Any]]:
    path = hub.state_dir / "placements.json"
    return list(json.loads(path.read_text())) if path.exists() else []


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Any:
    user = hub.new_user("sw")
    user.spawn(image="base", size="tiny")
    yield user
    user.stop()


def test_switching_one_notebook_leaves_the_other_running(hub: Hub, alice: User) -> None:
    for name in ("one.ipynb", "two.ipynb"):
        assert alice.server_api("PUT", f"/contents/{name}", json=notebook()).ok
    one, two = open_session(alice, "one.ipynb"), open_session(alice, "two.ipynb")
    # Without a choice, a notebook runs within the server's size (tiny: 1 vCPU + 512 MiB).
    assert limits(alice, one["kernel"]["id"]) == (1.0, 512 * MIB)
    assert alice.run("kept = 41 + 1", two["kernel"]["id"]).status == "ok"

    switched = switch(alice, one, "base", "half")
    new_kernel = switched["kernel"]["id"]
    assert new_kernel != one["kernel"]["id"]
    assert limits(alice, new_kernel) == (0.5, GIB)
    report = alice.lab_api("GET", f"/kernels/{new_kernel}").json()
    assert report["choice"]["size"] == "half" and report["choice"]["placed"] is True
    assert report["choice"]["size_label"] == "0.5 vCPU + 1 GiB"
    assert report["usage"]["memory"] > 10 * MIB
    assert report["usage"]["memory_limit"] == GIB
    # The other notebook's kernel kept its state through the switch.
    assert alice.run("print(kept)", two["kernel"]["id"]).stdout.strip() == "42"
    assert [p["kernel_id"] for p in placements(hub)] == [new_kernel]

    # Switching again releases the previous placement (its cgroup leaf and reservation).
    again = switch(alice, switched, "base", "tiny")
    assert limits(alice, again["kernel"]["id"]) == (1.0, 512 * MIB)
    assert [p["kernel_id"] for p in placements(hub)] == [again["kernel"]["id"]]
    assert alice.server_api("DELETE", f"/sessions/{again['id']}").status_code == 204
    deadline = time.monotonic() + 10
    while placements(hub) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert placements(hub) == []


def test_a_reopened_notebook_runs_on_its_saved_size(alice: User) -> None:
    saved = notebook({"studiohub": {"image": "base", "size": "half"}})
    assert alice.server_api("PUT", "/contents/saved.ipynb", json=saved).ok
    session = open_session(alice, "saved.ipynb")
    assert limits(alice, session["kernel"]["id"]) == (0.5, GIB)
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def test_a_saved_choice_that_cannot_run_here_falls_back_and_says_why(alice: User) -> None:
    saved = notebook({"studiohub": {"image": "base", "size": "giant"}})
    assert alice.server_api("PUT", "/contents/giant.ipynb", json=saved).ok
    session = open_session(alice, "giant.ipynb")
    kernel = session["kernel"]["id"]
    assert limits(alice, kernel) == (1.0, 512 * MIB)  # the server's own size
    fallback = alice.lab_api("GET", f"/kernels/{kernel}").json()["fallback"]
    assert fallback["size"] == "giant" and "this machine has" in fallback["reason"]
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def refused_switch(user: User, session: dict[str, Any], **choice: str) -> Any:
    """What the picker does with a choice the hub refuses: the answer that refused it
    (``kernel-choices`` only checks the shape; the hub's placement, asked when the
    session's kernel changes, is the one check and its words reach the user)."""
    r = user.lab_api("POST", "/kernel-choices", json={
        "path": session["path"], "replaces": session["kernel"]["id"], **choice})
    if r.status_code != 200:
        return r
    return user.server_api("PATCH", f"/sessions/{session['id']}",
                           json={"kernel": {"name": r.json()["kernel_name"]}})


def test_refused_choices_say_why(hub: Hub, alice: User) -> None:
    assert alice.server_api("PUT", "/contents/x.ipynb", json=notebook()).ok
    session = open_session(alice, "x.ipynb")

    def choose(**body: str) -> Any:
        return refused_switch(alice, session, **body)

    unknown = choose(image="base", size="enormous")
    assert unknown.status_code == 400
    # The hub's own words (Catalog.choose), as every client shows them.
    assert unknown.json()["message"] == ("unknown size 'enormous': allowed values are giant "
                                         "(too big for this machine), half, medium, small, "
                                         "tiny")
    no_room = choose(image="base", size="giant")
    assert no_room.status_code == 409
    assert "4 TiB" in no_room.json()["message"], no_room.text
    gpu = choose(image="pytorch-gpu", size="tiny")
    assert gpu.status_code in (400, 409), gpu.text
    bad_path = alice.lab_api("POST", "/kernel-choices", json={
        "path": "../../etc/passwd", "image": "base", "size": "half"})
    assert bad_path.status_code == 400
    # Nothing changed: the notebook keeps its kernel, nothing was placed for it.
    now = alice.server_api("GET", f"/sessions/{session['id']}").json()
    assert now["kernel"]["id"] == session["kernel"]["id"]
    assert placements(hub) == []
    options = alice.lab_api("GET", "/kernel-options").json()
    assert options["unavailable"]["base/giant"].startswith("needs 4 TiB")
    assert {"tiny", "half"} <= {s["id"] for s in options["sizes"]}
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def test_team_members_are_limited_to_their_domain(hub: Hub) -> None:
    bob = hub.new_user("swteam", groups=("team-a",))
    bob.spawn(image="base", size="tiny")
    try:
        assert bob.server_api("PUT", "/contents/a.ipynb", json=notebook()).ok
        refused = refused_switch(bob, open_session(bob, "a.ipynb"), image="pytorch",
                                 size="tiny")
        assert refused.status_code == 400, refused.text
        assert "base" in refused.json()["message"]
        options = bob.lab_api("GET", "/kernel-options").json()
        assert [i["id"] for i in options["images"]] == ["base"]
    finally:
        bob.stop()


def test_nobody_places_kernels_for_someone_else(hub: Hub, alice: User) -> None:
    eve = hub.new_user("sweve")
    url = f"/studiohub/users/{alice.name}/kernels"
    body = {"kernel_id": "00000000-0000-0000-0000-000000000000", "image": "base",
            "size": "tiny"}
    assert eve.api("POST", url, json=body).status_code == 403
    half = {k: v for k, v in body.items() if k != "size"}
    missing = alice.api("POST", url, json=half)
    assert missing.status_code == 400 and "size required" in missing.json()["message"]
    assert hub.api("POST", url, json=body, token="not-a-token").status_code == 403
    assert eve.api("GET", f"/studiohub/users/{alice.name}/kernel-options").status_code == 403
    assert eve.api("POST", f"/studiohub/users/{alice.name}/server-restart",
                   json={"image": "base", "size": "half"}).status_code == 403


def test_a_placed_kernel_past_its_memory_is_stopped_and_the_user_told_why(alice: User) -> None:
    assert alice.server_api("PUT", "/contents/oom.ipynb", json=notebook()).ok
    session = switch(alice, open_session(alice, "oom.ipynb"), "base", "tiny")
    kernel = session["kernel"]["id"]
    result = alice.run("big = b'x' * (700 * 1024 * 1024)\nprint('survived')", kernel)
    assert result.status == "died" and "survived" not in result.stdout
    deadline = time.monotonic() + 20
    report: dict[str, Any] = {}
    while time.monotonic() < deadline and not report.get("last_exit"):
        time.sleep(0.5)
        report = alice.lab_api("GET", f"/kernels/{kernel}").json()
    assert report["last_exit"]["reason"] == "oom", report
    assert "512 MiB memory limit of size tiny" in report["last_exit"]["message"]
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def test_kernel_sockets_are_closed_to_other_users(hub: Hub, alice: User) -> None:
    """Kernels listen on unix sockets in the account's 0700 directory, not on TCP ports."""
    from studiohub.slugs import unix_name

    assert alice.server_api("PUT", "/contents/zmq.ipynb", json=notebook()).ok
    session = open_session(alice, "zmq.ipynb")
    result = alice.run(textwrap.dedent("""
        import json
        from ipykernel.connect import get_connection_file
        info = json.load(open(get_connection_file()))
        print(info["transport"], info["ip"], info["iopub_port"])
    """), session["kernel"]["id"])
    transport, ip, port = result.stdout.split()
    assert transport == "ipc", result
    socket_path = f"{ip}-{port}"
    assert Path(socket_path).is_socket()
    assert stat.S_IMODE(Path(ip).parent.stat().st_mode) == 0o700
    # Another local account cannot even reach the socket to subscribe to its outputs.
    hub.new_user("swzmq").spawn(image="base", size="tiny")
    other = unix_name(hub.created_users[-1])
    probe = subprocess.run(
        ["runuser", "-u", other, "--", "/usr/bin/python3", "-c",
         "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])",
         socket_path], capture_output=True, text=True, timeout=30)
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe
    # ... while the owner's browser talks to the kernel through the server as usual.
    assert alice.run("print(6 * 7)", session["kernel"]["id"]).stdout.strip() == "42"
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def test_kernels_listen_on_no_tcp_port_and_forked_output_still_arrives(alice: User) -> None:
    """ipykernel's IOPub pipe (output of forked children) binds 127.0.0.1:<random> by
    default, where any local account could flood the notebook and the server's log:
    StudioHub's kernels bind it on a unix socket in the account's 0700 directory."""
    import psutil

    assert alice.server_api("PUT", "/contents/tcp.ipynb", json=notebook()).ok
    session = open_session(alice, "tcp.ipynb")
    kernel = session["kernel"]["id"]
    pid = int(alice.run("import os\nprint(os.getpid())", kernel).stdout)
    process = psutil.Process(pid)
    assert "ipykernel" in " ".join(process.cmdline()), process.cmdline()
    inet = [c for p in (process, *process.children(recursive=True))
            for c in p.net_connections(kind="inet")]
    assert inet == [], inet
    forked = alice.run(textwrap.dedent("""
        import os, sys, time
        child = os.fork()
        if child == 0:
            print("printed by a forked child", flush=True)
            os._exit(0)
        os.waitpid(child, 0)
        time.sleep(1)
    """), kernel)
    assert "printed by a forked child" in forked.stdout, forked
    alice.server_api("DELETE", f"/sessions/{session['id']}")


def test_server_restart_on_another_size(hub: Hub) -> None:
    """What stock JupyterHub profiles offer, through the hub API: every kernel restarts."""
    carol = hub.new_user("swsrv")
    carol.spawn(image="base", size="tiny")
    answer = carol.lab_api("POST", "/server-restart", json={"image": "base", "size": "huge"})
    assert answer.status_code == 400 and "half" in answer.json()["message"]
    answer = carol.lab_api("POST", "/server-restart", json={"image": "base"})
    assert answer.status_code == 400 and "size required" in answer.json()["message"]
    kernel = carol.start_kernel()
    carol.run("kept = 7", kernel)
    # Refused before anything stops: a size this machine cannot hold costs no kernel.
    answer = carol.lab_api("POST", "/server-restart", json={"image": "base", "size": "giant"})
    assert answer.status_code == 409 and "4 TiB" in answer.json()["message"], answer.text
    assert carol.run("print(kept)", kernel).stdout.strip() == "7"
    # The hub's check (the Lab extension asks it before answering its browser) stops nothing.
    restart = f"/studiohub/users/{carol.name}/server-restart"
    checked = carol.api("POST", restart, json={"image": "base", "size": "half", "check": True})
    assert checked.status_code == 200 and checked.json()["size"] == "half", checked.text
    bad = carol.api("POST", restart, json={"image": "base", "size": "half", "check": "yes"})
    assert bad.status_code == 400 and "check: true" in bad.json()["message"], bad.text
    assert carol.run("print(kept)", kernel).stdout.strip() == "7"
    assert carol.api("GET", f"/users/{carol.name}").json()["servers"][""]["user_options"][
        "size"] == "tiny"
    answer = carol.lab_api("POST", "/server-restart", json={"image": "base", "size": "half"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["pending_url"].endswith(f"/hub/spawn-pending/{carol.name}")
    wait_for_server_on(carol, "half")
    assert limits(carol, carol.start_kernel()) == (0.5, GIB)
    carol.stop()


def test_a_server_slow_to_stop_is_restarted_all_the_same(hub: Hub) -> None:
    """A server that does not stop within the hub's slow_stop_timeout (10 s) is killed
    after stop_timeout (15 s on this hub), and the restart goes on with the new size."""
    import os
    import signal

    dave = hub.new_user("swslow")
    dave.spawn(image="base", size="tiny")
    pid = hub.api("GET", f"/users/{dave.name}").json()["servers"][""]["state"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # frozen: SIGTERM waits, only SIGKILL ends it
    restart = f"/studiohub/users/{dave.name}/server-restart"
    answer = dave.api("POST", restart, json={"image": "base", "size": "half"})
    assert answer.status_code == 202, answer.text
    wait_for_server_on(dave, "half")
    assert f"The server of {dave.name} did not shut down within 15 s" in hub.log_path.read_text()
    dave.stop()


def wait_for_server_on(user: User, size: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = user.api("GET", f"/users/{user.name}").json()
        server = model["servers"].get("")
        if server and server["ready"] and server["user_options"].get("size") == size:
            return
        time.sleep(0.3)
    raise AssertionError(f"server not restarted on {size}: {model}")


def test_the_status_bar_is_not_given_the_server_size_as_a_limit(alice: User) -> None:
    """jupyter-resource-usage sums every kernel, placed ones too: no false "over the limit"."""
    run = alice.run("import os\nprint(os.environ.get('MEM_LIMIT'), "
                    "os.environ['STUDIOHUB_MEM_LIMIT'])")
    assert run.status == "ok", run
    assert run.stdout.split() == ["None", str(512 * MIB)]


def test_one_user_cannot_hold_more_placed_kernels_than_allowed(hub: Hub) -> None:
    """Each placement holds memory: a user (or a script with their token) is capped."""
    dan = hub.new_user("swcap")
    dan.spawn(image="base", size="tiny")
    url = f"/studiohub/users/{dan.name}/kernels"
    ids = [str(uuid.uuid4()) for _ in range(MAX_PLACED_KERNELS + 1)]
    try:
        for kernel_id in ids[:-1]:
            r = dan.api("POST", url, json={"kernel_id": kernel_id, "image": "base",
                                           "size": "tiny"})
            assert r.status_code == 201, r.text
        refused = dan.api("POST", url, json={"kernel_id": ids[-1], "image": "base",
                                             "size": "tiny"})
        assert refused.status_code == 409
        assert f"already run {MAX_PLACED_KERNELS} kernels" in refused.json()["message"]
        # Replacing one of them is still a switch, not one more.
        swap = dan.api("POST", url, json={"kernel_id": ids[-1], "image": "base",
                                          "size": "tiny", "replaces": ids[0]})
        assert swap.status_code == 201, swap.text
    finally:
        for kernel_id in ids:
            dan.api("DELETE", f"{url}/{kernel_id}")
        dan.stop()


def test_a_kernel_refused_as_it_starts_is_the_hubs_4xx_and_keeps_the_old_one(
        hub: Hub) -> None:
    """The room goes between the picker's check and the kernel's start (here: the user's
    cap, filled after the choice was recorded). Opening the notebook and changing its
    kernel answer the hub's 409 and reason, not Jupyter server's 500/501, and a kernel
    change leaves the notebook on the kernel it had."""
    eve = hub.new_user("swrace")
    eve.spawn(image="base", size="tiny")
    url = f"/studiohub/users/{eve.name}/kernels"
    ids = [str(uuid.uuid4()) for _ in range(MAX_PLACED_KERNELS)]
    try:
        session = open_session(eve, "kept.ipynb")  # within the server's size: not placed
        for path, replaces in (("new.ipynb", ""), ("kept.ipynb", session["kernel"]["id"])):
            r = eve.lab_api("POST", "/kernel-choices", json={
                "path": path, "image": "base", "size": "half", "replaces": replaces})
            assert r.status_code == 200, r.text
        for kernel_id in ids:  # meanwhile, the room goes
            assert eve.api("POST", url, json={"kernel_id": kernel_id, "image": "base",
                                              "size": "tiny"}).status_code == 201
        why = f"already run {MAX_PLACED_KERNELS} kernels"

        opened = eve.server_api("POST", "/sessions", json={
            "path": "new.ipynb", "name": "new.ipynb", "type": "notebook",
            "kernel": {"name": "studiohub-base"}})
        assert opened.status_code == 409, opened.text
        assert why in opened.json()["message"]
        changed = eve.server_api("PATCH", f"/sessions/{session['id']}",
                                 json={"kernel": {"name": "studiohub-base"}})
        assert changed.status_code == 409, changed.text
        assert why in changed.json()["message"]
        now = eve.server_api("GET", f"/sessions/{session['id']}").json()
        assert now["kernel"]["id"] == session["kernel"]["id"]
        assert eve.run("print(6 * 7)", now["kernel"]["id"]).stdout.strip() == "42"
        assert [s["path"] for s in eve.server_api("GET", "/sessions").json()] == ["kept.ipynb"]
    finally:
        for kernel_id in ids:
            eve.api("DELETE", f"{url}/{kernel_id}")
        eve.stop()
    # The refused starts did not keep the server from shutting down when asked.
    assert f"The server of {eve.name} did not shut down" not in hub.log_path.read_text()


def test_placements_for_kernels_that_never_start_are_released_within_seconds(
        hub: Hub) -> None:
    """A script with the user's token places kernels that do not exist: their memory is
    free again within seconds (the placement's process was never seen), not held until
    the server stops, and the user may place again."""
    mallory = hub.new_user("swfake")
    mallory.spawn(image="base", size="tiny")
    url = f"/studiohub/users/{mallory.name}/kernels"
    fakes = [str(uuid.uuid4()) for _ in range(MAX_PLACED_KERNELS + 1)]
    try:
        placed = time.monotonic()
        for kernel_id in fakes[:-1]:
            r = mallory.api("POST", url, json={"kernel_id": kernel_id, "image": "base",
                                               "size": "half"})
            assert r.status_code == 201, r.text
        assert mallory.api("POST", url, json={"kernel_id": fakes[-1], "image": "base",
                                              "size": "half"}).status_code == 409
        held = {p["kernel_id"] for p in placements(hub)}
        assert set(fakes[:-1]) <= held
        deadline = placed + 20
        while set(fakes) & {p["kernel_id"] for p in placements(hub)} and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        assert not set(fakes) & {p["kernel_id"] for p in placements(hub)}
        assert time.monotonic() - placed < 20
        again = mallory.api("POST", url, json={"kernel_id": fakes[-1], "image": "base",
                                               "size": "half", "check": True})
        assert again.status_code == 200, again.text
    finally:
        mallory.stop()


def test_the_hub_api_dry_run_and_bad_requests(hub: Hub, alice: User) -> None:
    url = f"/studiohub/users/{alice.name}/kernels"
    checked = alice.api("POST", url, json={"image": "base", "size": "half", "check": True})
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"image": "base", "size": "half",
                              "image_label": "Base Python 3.11 · CPU",
                              "size_label": "0.5 vCPU + 1 GiB", "kernel_name": "studiohub-base"}
    too_big = alice.api("POST", url, json={"image": "base", "size": "giant", "check": True})
    real = alice.api("POST", url, json={"image": "base", "size": "giant",
                                        "kernel_id": str(uuid.uuid4())})
    assert too_big.status_code == real.status_code == 409
    assert too_big.json()["message"] == real.json()["message"]
    assert placements(hub) == []  # a dry run (and a refusal) changes nothing

    # Another user's kernel is answered as one that does not exist.
    kernel_id = str(uuid.uuid4())
    assert alice.api("POST", url, json={"kernel_id": kernel_id, "image": "base",
                                        "size": "half"}).status_code == 201
    eve = hub.new_user("sw404")
    eve.spawn(image="base", size="tiny")
    try:
        eves = f"/studiohub/users/{eve.name}/kernels"
        theirs = eve.api("POST", eves, json={"kernel_id": kernel_id, "image": "base",
                                             "size": "half"})
        nobody = eve.api("DELETE", f"{eves}/{uuid.uuid4()}")
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.json()["message"].startswith("no placed kernel")
    finally:
        eve.stop()
        alice.api("DELETE", f"{url}/{kernel_id}")

    # Deep nesting, a huge body, a huge value: short 4xx answers and log lines.
    before = hub.log_path.stat().st_size
    nested = alice.api("POST", url, data="[" * 60_000)  # under the 64 KiB bound
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["message"]
    huge = alice.api("POST", url, json={"image": "x" * 20_000_000, "size": "half"})
    assert huge.status_code == 413 and len(huge.text) < 300
    spawn = hub.new_user("swhuge")
    refused = spawn.api("POST", f"/users/{spawn.name}/server",
                        json={"image": "x" * 20_000_000, "size": "tiny"}, timeout=120)
    assert refused.status_code == 400 and len(refused.text) < 500, refused.text[:500]
    assert "unknown image 'xxxx" in refused.json()["message"]
    assert hub.log_path.stat().st_size - before < 100_000
