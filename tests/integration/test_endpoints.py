"""Model endpoints through a real hub: the models service, the hub's placements, real
replicas as the owners' unix accounts, real HAProxy, real models made in the test.

One hub for the module; alice (domain ``team-m``) owns the endpoints, carol shares her
domain, bob is in another. Every prediction goes through the hub's proxy
(``/services/models/<endpoint>/…``) as a client program would.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from studiohub.catalog import merge
from studiohub.slugs import unix_name
from tests.endpointtools import (
    INPUT,
    ModelsHub,
    api,
    deploy,
    in_process_close,
    make_model,
    predict,
    remove_endpoints,
    serving,
    wait_for,
)
from tests.hubtools import User, shut_down
from tests.jobtools import CATALOG, env_python

if os.geteuid() != 0:
    pytest.skip("endpoints run as other unix accounts: run as root", allow_module_level=True)

MODELS_CATALOG = merge(CATALOG, {"domains": {
    "team-m": {"display_name": "Team M", "images": ["pytorch", "tensorflow", "mxnet"],
               "sizes": ["tiny", "half"]},
    "team-o": {"display_name": "Team O", "images": ["base"], "sizes": ["tiny"]},
}})


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsHub]:
    workdir = tmp_path_factory.mktemp("models")
    workdir.chmod(0o755)
    started = ModelsHub(workdir, catalog=MODELS_CATALOG)
    try:
        started.start()
        yield started
    finally:
        try:
            remove_endpoints(started, [u for u in USERS.values()])
        finally:
            shut_down(started)


USERS: dict[str, User] = {}


@pytest.fixture(scope="module")
def alice(hub: ModelsHub) -> User:
    USERS["alice"] = hub.new_user("malice", groups=("team-m",))
    return USERS["alice"]


@pytest.fixture(scope="module")
def carol(hub: ModelsHub) -> User:
    USERS["carol"] = hub.new_user("mcarol", groups=("team-m",))
    return USERS["carol"]


@pytest.fixture(scope="module")
def bob(hub: ModelsHub) -> User:
    USERS["bob"] = hub.new_user("mbob", groups=("team-o",))
    return USERS["bob"]


@pytest.fixture(scope="module")
def net(hub: ModelsHub, alice: User) -> dict[str, Any]:
    """Endpoint ``net``: a TorchScript model, 2 replicas, serving version 1."""
    path, expected = make_model(alice, "torchscript", "models/v1", seed=1)
    deploy(hub, alice, "net", path, replicas=2, size="tiny")
    endpoint = wait_for(hub, alice, "net", serving(1))
    return {"endpoint": endpoint, "expected": expected, "path": path}


def replica_pids(user: User, name: str = "net") -> list[int]:
    """The replica processes of ``user``'s endpoint ``name`` (theirs only: never another
    hub's or user's)."""
    owner = unix_name(user.name)
    return sorted(p.pid for p in psutil.process_iter(["cmdline", "username"])
                  if p.info["username"] == owner and
                  "studiohub.modelserver" in " ".join(p.info["cmdline"] or []) and
                  f"--name {name}" in " ".join(p.info["cmdline"] or []))


class Load:
    """Requests one after the other from a thread, each retried once (what a client
    behind a load balancer does), recording every answer."""

    def __init__(self, hub: ModelsHub, token: str, name: str = "net") -> None:
        self.hub, self.token, self.name = hub, token, name
        self.answers: list[Any] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            for attempt in (1, 2):
                try:
                    r = predict(self.hub, self.name, {"instances": INPUT}, self.token,
                                timeout=30)
                except requests.RequestException as e:
                    r, why = None, str(e)
                else:
                    why = f"{r.status_code} {r.text[:200]}"
                if r is not None and r.status_code == 200:
                    self.answers.append(r.json()["predictions"])
                    break
                if attempt == 2:
                    self.failures.append(why)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(60)


def test_a_torchscript_model_answers_both_protocols_with_its_in_process_numbers(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    v1 = net["endpoint"]["versions"][0]
    assert (v1["format"], v1["image"], v1["traffic"]) == ("torchscript", "pytorch", 100)
    assert [r["state"] for r in v1["replicas"]] == ["ready", "ready"]
    r = predict(hub, "net", {"instances": INPUT}, alice.token)
    assert r.status_code == 200, r.text
    assert in_process_close(r.json()["predictions"], net["expected"])
    # Columnar inputs answer "outputs".
    r = predict(hub, "net", {"inputs": INPUT}, alice.token)
    assert r.status_code == 200 and in_process_close(r.json()["outputs"], net["expected"])
    status = requests.get(f"{hub.models_url}net/v1/models/net", timeout=30,
                          headers={"Authorization": f"token {alice.token}"}).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    # The Open Inference Protocol, on the same replicas.
    meta = requests.get(f"{hub.models_url}net/v2/models/net", timeout=30,
                        headers={"Authorization": f"token {alice.token}"}).json()
    (first,) = meta["inputs"]
    body = {"inputs": [{"name": first["name"], "shape": [2, 4], "datatype": "FP32",
                        "data": [x for row in INPUT for x in row]}]}
    r = predict(hub, "net", body, alice.token, path="v2/models/net/infer")
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["shape"] == [2, 3]
    assert in_process_close([out["data"][:3], out["data"][3:]], net["expected"])
    ready = requests.get(f"{hub.models_url}net/v2/health/ready", timeout=30,
                         headers={"Authorization": f"token {alice.token}"})
    assert ready.status_code == 200


def test_both_replicas_serve_and_run_as_the_owner_under_the_size(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    for _ in range(40):
        assert predict(hub, "net", {"instances": INPUT}, alice.token).status_code == 200
    metrics = api(hub, alice, "GET", "endpoints/net/metrics").json()
    replicas = metrics["versions"]["1"]["replicas"]
    assert set(replicas) == {"replica-0", "replica-1"}
    assert all(r["requests"] >= 5 for r in replicas.values()), replicas
    assert metrics["versions"]["1"]["p50_ms"] > 0
    owner = unix_name(alice.name)
    servers = [p for p in psutil.process_iter(["cmdline", "username"])
               if "studiohub.modelserver" in " ".join(p.info["cmdline"] or [])
               and "--name net" in " ".join(p.info["cmdline"] or [])]
    assert len(servers) == 2 and {p.info["username"] for p in servers} == {owner}
    # Each in its own leaf of the version's cgroup, under the size's memory limit.
    for server in servers:
        groups = Path(f"/proc/{server.pid}/cgroup").read_text()
        assert "/endpoint-" in groups and "/e-" in groups, groups
        memory = next(line.split(":", 2)[2] for line in groups.splitlines()
                      if line.split(":")[1] in ("memory", ""))
        limit = next(p for p in (f"/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes",
                                 f"/sys/fs/cgroup{memory}/memory.max") if os.path.exists(p))
        assert int(Path(limit).read_text()) == 512 * 1024 * 1024  # size "tiny"
    logs = api(hub, alice, "GET", "endpoints/net/logs", params={"replica": "replica-1"})
    assert logs.status_code == 200


def test_who_may_call_owner_domain_token_holders_and_nobody_else(
        hub: ModelsHub, alice: User, carol: User, bob: User, net: dict[str, Any]) -> None:
    body = {"instances": INPUT}
    assert predict(hub, "net", body, carol.token).status_code == 200  # her domain
    assert predict(hub, "net", body, bob.token).status_code == 403  # another domain
    assert predict(hub, "net", body, None).status_code == 403  # anonymous
    # The address the Lab and the CLI show says where the routes are, to callers only.
    index = requests.get(f"{hub.models_url}net/", timeout=30,
                         headers={"Authorization": f"token {carol.token}"})
    assert index.status_code == 200, index.text
    status = requests.get(hub.url + index.json()["tf_serving"]["status"],
                          headers={"Authorization": f"token {carol.token}"}, timeout=30)
    assert status.json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert index.json()["versions_serving"] == [1]
    posted = requests.post(f"{hub.models_url}net/", json={"instances": INPUT}, timeout=30,
                           headers={"Authorization": f"token {carol.token}"})
    assert posted.status_code == 405 and ":predict" in posted.json()["error"]
    for method in ("PUT", "DELETE"):  # through the gateway (a hub token)
        other = requests.request(method, f"{hub.models_url}net/v1/models/net", timeout=30,
                                 headers={"Authorization": f"token {carol.token}"})
        assert other.status_code == 405 and "predictions are POST" in other.json()["error"]
    for token in (bob.token, None):
        headers = {"Authorization": f"token {token}"} if token else {}
        refused = requests.get(f"{hub.models_url}net", headers=headers, timeout=30)
        assert refused.status_code == 403 and "versions_serving" not in refused.text
    unknown = predict(hub, "net", body, "shm_" + "x" * 43)
    assert unknown.status_code == 401 and "unknown or revoked" in unknown.json()["error"]
    # Bob cannot see, change or delete it either: for him it does not exist.
    for method, path in (("GET", "endpoints/net"), ("DELETE", "endpoints/net"),
                         ("POST", "endpoints/net/rollback"), ("GET", "endpoints/net/logs"),
                         ("POST", "endpoints/net/tokens")):
        assert api(hub, bob, method, path).status_code == 404, path
    before = api(hub, alice, "GET", "endpoints/net/tokens").json()["tokens"]
    bad = api(hub, alice, "POST", "endpoints/net/tokens", json={"note": "x\ny"})
    assert bad.status_code == 400 and "note" in bad.json()["message"]
    assert api(hub, alice, "GET", "endpoints/net/tokens").json()["tokens"] == before
    token = api(hub, alice, "POST", "endpoints/net/tokens", json={"note": "ci pipeline"})
    assert token.status_code == 201
    secret, token_id = token.json()["token"], token.json()["id"]
    (listed,) = [t for t in api(hub, alice, "GET", "endpoints/net/tokens").json()["tokens"]
                 if t["id"] == token_id]
    assert listed["note"] == "ci pipeline"
    assert secret not in json.dumps(listed)
    assert predict(hub, "net", body, secret).status_code == 200
    # The token opens this endpoint only, and never the management API.
    management = api(hub, None, "GET", "endpoints", headers={
        "Authorization": f"Bearer {secret}"})
    assert management.status_code == 403 and "predictions only" in management.json()["message"]
    assert api(hub, alice, "DELETE", f"endpoints/net/tokens/{token_id}").status_code == 204
    assert predict(hub, "net", body, secret).status_code == 401


def proxy_routes(hub: ModelsHub) -> dict[str, Any]:
    """The hub's proxy's routing table, read from its API with the token the hub gave it
    (root reads it from the proxy's environment, as the hub passed it)."""
    (proxy,) = [p for p in psutil.process_iter(["cmdline"])
                if "configurable-http-proxy" in " ".join(p.info["cmdline"] or [])
                and f"--api-port {hub.port + 1} " in " ".join(p.info["cmdline"] or [])]
    token = proxy.environ()["CONFIGPROXY_AUTH_TOKEN"]
    r = requests.get(f"http://127.0.0.1:{hub.port + 1}/api/routes",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    routes: dict[str, Any] = r.json()
    return routes


def test_a_tokens_predictions_take_the_balancers_lane_and_are_counted(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    """The proxy routes the endpoint's path to HAProxy's fast lane; an endpoint token's
    predictions are answered there (no Python in between) and still reach the metrics."""
    lane = proxy_routes(hub)["/services/models/net"]
    assert lane["target"].startswith("unix+http://") and "direct.sock" in lane["target"]
    assert lane["studiohub"] == "endpoint-lane"
    secret = api(hub, alice, "POST", "endpoints/net/tokens").json()["token"]

    def served() -> int:
        versions = api(hub, alice, "GET", "endpoints/net/metrics").json()["versions"]
        return sum(r["requests"] for v in versions.values() for r in v["replicas"].values())

    before = served()
    for _ in range(30):
        r = predict(hub, "net", {"instances": INPUT}, secret)
        assert r.status_code == 200 and r.headers["X-Studiohub-Version"] == "1"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    # Headers as large as the hub's proxy takes (its limit is 16 KB) pass the lane too.
    for token in (secret, alice.token):
        large = requests.post(f"{hub.models_url}net/v1/models/net:predict",
                              json={"instances": INPUT}, timeout=60, headers={
                                  "Authorization": f"Bearer {token}", "X-Note": "n" * 15_500})
        assert large.status_code == 200, large.text[:300]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and served() < before + 32:
        time.sleep(0.2)
    assert served() >= before + 32
    # Metadata reads (the Lab's Try it asks for them) are not predictions.
    counted = served()
    for token in (secret, alice.token):
        r = requests.get(f"{hub.models_url}net/v2/models/net", timeout=60,
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["name"] == "net"
    time.sleep(1)
    assert served() == counted


@pytest.mark.parametrize("body, path, status", [
    ({"instances": [[1.0, 2.0]]}, None, 400),  # wrong shape
    ({"instances": [["a", "b", "c", "d"]]}, None, 400),  # wrong dtype
    ({"nothing": 1}, None, 400),
    (None, None, 400),  # not JSON (sent raw below)
    ({"instances": INPUT}, "v1/models/net/versions/99:predict", 404),
    ({"instances": INPUT}, "v1/models/net/versions/abc:predict", 404),
    ({"instances": INPUT}, "v1/models/other:predict", 404),
])
def test_bad_requests_are_4xx_and_the_endpoint_stays_healthy(
        hub: ModelsHub, alice: User, net: dict[str, Any], body: Any, path: str | None,
        status: int) -> None:
    if body is None:
        r = requests.post(f"{hub.models_url}net/v1/models/net:predict", data=b"{not json",
                          headers={"Authorization": f"token {alice.token}",
                                   "Content-Type": "application/json"}, timeout=30)
    else:
        r = predict(hub, "net", body, alice.token, path=path)
    assert r.status_code == status, r.text
    assert r.json()["error"]
    if body == {"instances": [[1.0, 2.0]]}:  # the framework's own cause, not its preamble
        assert "shape" in r.json()["error"], r.json()
    ok = predict(hub, "net", {"instances": INPUT}, alice.token)
    assert ok.status_code == 200
    endpoint = api(hub, alice, "GET", "endpoints/net").json()
    assert all(r["restarts"] == 0 for r in endpoint["versions"][0]["replicas"])


def test_a_body_over_the_limit_is_413_without_reaching_a_replica(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    huge = b'{"instances": [' + b"1.0," * (9 * 1024 * 1024) + b"1.0]}"
    r = requests.post(f"{hub.models_url}net/v1/models/net:predict", data=huge, timeout=120,
                      headers={"Authorization": f"token {alice.token}"})
    assert r.status_code == 413, r.text[:300]
    assert predict(hub, "net", {"instances": INPUT}, alice.token).status_code == 200


def test_an_unrecognised_model_is_refused_and_nothing_is_created(
        hub: ModelsHub, alice: User) -> None:
    account_home = f"/home/{unix_name(alice.name)}"
    os.makedirs(f"{account_home}/notamodel", exist_ok=True)
    with open(f"{account_home}/notamodel/readme.txt", "w") as f:
        f.write("hello")
    r = api(hub, alice, "POST", "endpoints", json={"name": "bogus", "model": "notamodel"})
    assert r.status_code == 400, r.text
    assert "SavedModel" in r.json()["message"] or "ONNX" in r.json()["message"]
    assert api(hub, alice, "GET", "endpoints/bogus").status_code == 404
    for bad in ({"name": "Bad Name", "model": "x"}, {"name": "api", "model": "x"},
                {"name": "ok", "model": "../../etc"}, {"name": "ok", "model": "/etc"},
                {"name": "ok", "model": "x", "replicas": 0},
                {"name": "ok", "model": "x", "canary": 101},
                {"name": "ok", "model": "x", "colour": "red"}):
        r = api(hub, alice, "POST", "endpoints", json=bad)
        assert r.status_code == 400, (bad, r.text)


def test_a_name_stays_its_first_deployers_while_the_copy_runs(
        hub: ModelsHub, alice: User, bob: User) -> None:
    """Bob's deploy holds the name while his model copies (here: stopped, as a user can
    stop his own copy process); Alice's deploy of the same name is refused meanwhile, so
    Bob's copy can never become a version of an endpoint of Alice's (the attack review
    of issue 15 ran Bob's files as Alice that way)."""
    home = Path(pwd.getpwnam(unix_name(bob.name)).pw_dir)
    folder = home / "bigmodel"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\0" * 64)
    with open(folder / "weights.bin", "wb") as f:
        f.truncate(512 * 1024 * 1024)
    subprocess.run(["chown", "-R", f"{unix_name(bob.name)}:", str(folder)], check=True)
    result: dict[str, requests.Response] = {}
    deploying = threading.Thread(target=lambda: result.update(bob=api(
        hub, bob, "POST", "endpoints", json={"name": "held", "model": "bigmodel"})))
    deploying.start()
    copy = None
    deadline = time.monotonic() + 60
    while copy is None and time.monotonic() < deadline:
        copy = next((p for p in psutil.process_iter(["cmdline"]) if "studiohub.serving."
                     "modelcopy" in " ".join(p.info["cmdline"] or []) and str(folder) in
                     " ".join(p.info["cmdline"] or [])), None)
    assert copy is not None, "bob's copy never started"
    copy.suspend()
    try:
        r = api(hub, alice, "POST", "endpoints", json={"name": "held", "model": "models/v1"})
        assert r.status_code == 409 and "taken" in r.json()["message"], r.text
        r = api(hub, bob, "POST", "endpoints", json={"name": "other", "model": "bigmodel"})
        assert r.status_code == 409 and "already have a deploy" in r.json()["message"]
    finally:
        copy.resume()
        deploying.join(300)
    # His copy done, the framework's image is not one his domain has: refused, released.
    assert result["bob"].status_code == 400, result["bob"].text
    assert api(hub, bob, "GET", "endpoints/held").status_code == 404
    assert not (home / "studiohub-endpoints" / "held").exists()  # no copy, no empty folder
    assert api(hub, alice, "POST", "endpoints", params={"check": "true"}, json={
        "name": "held", "model": "models/v1/net.pt"}).status_code == 200


def test_a_new_version_rolls_out_under_load_without_a_failed_request(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    path, expected_v2 = make_model(alice, "torchscript", "models/v2", seed=2)
    secret = api(hub, alice, "POST", "endpoints/net/tokens").json()["token"]

    def burst() -> list[int]:
        """8 token predictions at once (no retry): the hub's proxy keeps that many
        connections to the balancer's fast lane, idle until the next burst."""
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: predict(hub, "net", {"instances": INPUT},
                                                   secret).status_code, range(8)))

    with Load(hub, alice.token) as load, Load(hub, secret) as by_token:
        time.sleep(1)
        assert burst() == [200] * 8
        deploy(hub, alice, "net", path, replicas=2, size="tiny")
        endpoint = wait_for(hub, alice, "net", lambda e: [
            v["status"] for v in e["versions"]] == ["serving", "retired"])
        # Connections opened before the rollout's reloads still answer: no request
        # meets the retired version's stopped replicas.
        assert burst() == [200] * 8
        time.sleep(1)
    assert load.failures == [] and len(load.answers) > 20
    assert by_token.failures == [] and len(by_token.answers) > 20
    assert in_process_close(load.answers[0], net["expected"])
    assert in_process_close(load.answers[-1], expected_v2)
    assert endpoint["live"] == 2 and endpoint["versions"][0]["traffic"] == 100
    net["expected_v2"] = expected_v2


def test_a_canary_gets_its_share_and_rolls_back(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    path, expected_v3 = make_model(alice, "torchscript", "models/v3", seed=3)
    deploy(hub, alice, "net", path, replicas=1, size="tiny", canary=10)
    endpoint = wait_for(hub, alice, "net", lambda e: e["canary"] == 3 and
                        e["status"] == "ready")
    assert {v["version"]: v["traffic"] for v in endpoint["versions"]
            if v["status"] == "serving"} == {2: 90, 3: 10}
    canary = 0
    for _ in range(400):
        r = predict(hub, "net", {"instances": INPUT}, alice.token)
        assert r.status_code == 200
        canary += in_process_close(r.json()["predictions"], expected_v3)
    assert 20 <= canary <= 60, canary  # 10 % ± 5 % of 400
    # A pinned version answers from that version only.
    r = predict(hub, "net", {"instances": INPUT}, alice.token,
                path="v1/models/net/versions/3:predict")
    assert in_process_close(r.json()["predictions"], expected_v3)
    assert r.headers["X-Studiohub-Version"] == "3"  # which version answered
    r = api(hub, alice, "POST", "endpoints/net/rollback")
    assert r.status_code == 200, r.text
    endpoint = wait_for(hub, alice, "net", lambda e: e["canary"] is None and {
        v["version"]: v["status"] for v in e["versions"]}.get(3) == "retired")
    for _ in range(20):
        r = predict(hub, "net", {"instances": INPUT}, alice.token)
        assert in_process_close(r.json()["predictions"], net["expected_v2"])


def test_rollback_returns_to_the_previous_version(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    with Load(hub, alice.token) as load:
        r = api(hub, alice, "POST", "endpoints/net/rollback")
        assert r.status_code == 200, r.text
        endpoint = wait_for(hub, alice, "net", lambda e: e["live"] == 1 and
                            e["status"] == "ready" and {
                                v["version"]: v["status"] for v in e["versions"]}[2]
                            == "retired")
        time.sleep(1)
    assert load.failures == []
    assert in_process_close(load.answers[-1], net["expected"])
    assert endpoint["versions"][-1]["traffic"] == 100


def test_a_killed_replica_is_replaced_and_no_request_fails(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    victim = replica_pids(alice)[0]
    with Load(hub, alice.token) as load:
        time.sleep(1)
        os.kill(victim, signal.SIGKILL)
        wait_for(hub, alice, "net", lambda e: any(
            r["restarts"] == 1 and r["state"] == "ready"
            for v in e["versions"] for r in v["replicas"]))
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert len(load.answers) > 10


def test_the_cli_and_the_sdk_reach_the_same_endpoint(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    cli = [str(hub.bin_dir / "studiohub"), "endpoints", "--url", hub.url, "--token",
           alice.token]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "net" in listed.stdout, listed.stderr
    described = subprocess.run([*cli, "describe", "net"], capture_output=True, text=True,
                               timeout=120)
    assert "version 1: serving" in described.stdout, described.stdout
    answer = subprocess.run([*cli, "predict", "net", json.dumps({"instances": INPUT})],
                            capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert in_process_close(json.loads(answer.stdout)["predictions"], net["expected"])
    refused = subprocess.run([*cli, "predict", "net", "{not json"], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 3 and "not JSON" in refused.stderr
    metrics = subprocess.run([*cli, "metrics", "net"], capture_output=True, text=True,
                             timeout=120)
    assert metrics.returncode == 0, metrics.stderr
    header, whole = metrics.stdout.splitlines()[:2]
    assert header.split()[:4] == ["VERSION", "REPLICA", "REQUESTS", "REQ/S"]
    assert whole.split()[:2] == ["v1", "(all)"] and int(whole.split()[2]) >= 1
    as_json = subprocess.run([*cli, "metrics", "net", "--json"], capture_output=True,
                             text=True, timeout=120)
    assert json.loads(as_json.stdout)["versions"]["1"]["requests"] == int(whole.split()[2])
    made = subprocess.run([*cli, "token", "net", "--note", "nightly batch"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and made.stdout.splitlines()[1].startswith("shm_"), made
    token_id = made.stdout.split()[1]
    tokens = subprocess.run([*cli, "token", "net", "--list"], capture_output=True,
                            text=True, timeout=120).stdout
    assert tokens.split()[:3] == ["ID", "CREATED", "NOTE"], tokens
    assert any(line.startswith(token_id) and line.endswith("nightly batch")
               for line in tokens.splitlines()), tokens
    assert subprocess.run([*cli, "token", "net", "--revoke", token_id],
                          capture_output=True, timeout=120).returncode == 0
    # From a notebook: the SDK in the image's environment, with the server's variables.
    script = ("import json; from studiohub import endpoints\n"
              "ep = endpoints.get('net'); name = ep.metadata()['inputs'][0]['name']\n"
              f"print(json.dumps([ep.predict({INPUT!r}), ep.infer({{name: {INPUT!r}}})]))\n")
    sdk = subprocess.run([str(env_python("pytorch")), "-c", script], capture_output=True,
                         text=True, timeout=120, env={
                             "PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": alice.token,
                             "STUDIOHUB_MODELS_URL": hub.models_url})
    assert sdk.returncode == 0, sdk.stderr
    rows, inferred = json.loads(sdk.stdout)
    assert in_process_close(rows, net["expected"])
    # Both protocols give rows of the same shape (V2's flat data is nested again).
    (output,) = inferred.values()
    assert in_process_close(output, net["expected"]), output


def manager_pid(hub: ModelsHub) -> int:
    """This hub's models manager (found by its state folder: never another hub's)."""
    return next(p.pid for p in psutil.process_iter(["cmdline"])
                if " -m studiohub.serving --" in " ".join(p.info["cmdline"] or [])
                and f"--state-dir={hub.state_dir}" in (p.info["cmdline"] or [])
                and "servicewrap" not in " ".join(p.info["cmdline"] or []))


def test_endpoints_answer_while_their_manager_restarts_and_it_adopts_the_replicas(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    before = replica_pids(alice)
    restarts = [r["restarts"] for v in api(hub, alice, "GET", "endpoints/net").json()[
        "versions"] for r in v["replicas"]]
    killed = manager_pid(hub)
    with Load(hub, alice.token) as load:
        time.sleep(0.5)
        os.kill(killed, signal.SIGKILL)
        # JupyterHub starts its managed service again; meanwhile its API says so.
        r = api(hub, alice, "GET", "endpoints/net")
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:
            assert "restarting" in r.json()["message"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and \
                api(hub, alice, "GET", "endpoints/net").status_code != 200:
            time.sleep(0.2)
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert manager_pid(hub) != killed
    after = replica_pids(alice)
    assert after == before
    endpoint = api(hub, alice, "GET", "endpoints/net").json()
    assert endpoint["status"] == "ready"
    assert [r["restarts"] for v in endpoint["versions"] for r in v["replicas"]] == restarts


def test_endpoints_keep_their_replicas_through_a_hub_restart(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    before = replica_pids(alice)
    hub.stop()
    # Meanwhile the replicas go on.
    assert all(psutil.pid_exists(pid) for pid in before)
    hub.start()
    r = predict(hub, "net", {"instances": INPUT}, alice.token)
    assert r.status_code == 200, r.text
    after = replica_pids(alice)
    assert after == before
    assert api(hub, alice, "GET", "endpoints/net").json()["status"] == "ready"


def test_a_name_deleted_while_its_old_version_drains_starts_afresh(
        hub: ModelsHub, alice: User, net: dict[str, Any]) -> None:
    """Deleted while a replaced version still drains, then deployed again: the new
    endpoint is only its own version 1, in the store too (the old retirement must not
    write the deleted endpoint back over it, nor hold up the new version 1)."""
    deploy(hub, alice, "re", net["path"], size="tiny")
    wait_for(hub, alice, "re", serving(1))
    deploy(hub, alice, "re", net["path"], size="tiny")
    wait_for(hub, alice, "re", lambda e: e["live"] == 2)  # version 1 draining now
    assert api(hub, alice, "DELETE", "endpoints/re").status_code == 204
    folder = Path(pwd.getpwnam(unix_name(alice.name)).pw_dir) / "studiohub-endpoints/re"
    old_copy = {p.name: p.stat().st_ino for p in (folder / "v1").rglob("*")}
    deploy(hub, alice, "re", net["path"], size="tiny")
    fresh = wait_for(hub, alice, "re", serving(1), timeout=60)
    assert [v["version"] for v in fresh["versions"]] == [1]
    # The deleted endpoint's kept copy of version 1 is set aside, not overwritten.
    (kept,) = folder.glob("v1.replaced-*")
    assert {p.name: p.stat().st_ino for p in kept.rglob("*")} == old_copy
    time.sleep(hub_drain_seconds() + 3)  # past the old retirement
    with sqlite3.connect(hub.state_dir / "models.sqlite") as db:
        (doc,) = db.execute("SELECT doc FROM models_endpoints WHERE name = 're'").fetchone()
    assert [(v["version"], v["status"]) for v in json.loads(doc)["versions"]] == [
        (1, "serving")]
    assert api(hub, alice, "DELETE", "endpoints/re").status_code == 204


def hub_drain_seconds() -> float:
    """How long a replaced version drains before it retires (the service's default)."""
    import inspect

    from studiohub.serving.service import Models

    return float(inspect.signature(Models).parameters["drain_seconds"].default)


def test_delete_stops_the_replicas_and_frees_the_name(
        hub: ModelsHub, alice: User, bob: User, net: dict[str, Any]) -> None:
    assert api(hub, alice, "DELETE", "endpoints/net").status_code == 204
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and replica_pids(alice):
        time.sleep(0.2)
    assert replica_pids(alice) == []
    assert predict(hub, "net", {"instances": INPUT}, alice.token).status_code == 403
    assert "net" not in (hub.state_dir / "placements.json").read_text()
    deadline = time.monotonic() + 15  # the proxy's route to the lane goes too
    while time.monotonic() < deadline and "/services/models/net" in proxy_routes(hub):
        time.sleep(0.2)
    assert "/services/models/net" not in proxy_routes(hub)


@pytest.mark.parametrize("fmt", ["onnx", "tensorflow-savedmodel", "mxnet"])
def test_each_framework_serves_its_in_process_numbers(
        hub: ModelsHub, alice: User, fmt: str) -> None:
    name = {"onnx": "onnx", "tensorflow-savedmodel": "tf", "mxnet": "mx"}[fmt]
    path, expected = make_model(alice, fmt, f"models/{name}", seed=4)
    deploy(hub, alice, name, path, size="half")
    endpoint = wait_for(hub, alice, name, serving(1), timeout=300)
    assert endpoint["versions"][0]["format"] == fmt
    r = predict(hub, name, {"instances": INPUT}, alice.token)
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    if isinstance(got, dict):  # a model with named outputs answers each by name
        (got,) = got.values()
    assert in_process_close(got, expected)
    meta = requests.get(f"{hub.models_url}{name}/v2/models/{name}", timeout=30,
                        headers={"Authorization": f"token {alice.token}"}).json()
    (first,) = meta["inputs"]
    body = {"inputs": [{"name": first["name"], "shape": [2, 4], "datatype": "FP32",
                        "data": [x for row in INPUT for x in row]}]}
    r = predict(hub, name, body, alice.token, path=f"v2/models/{name}/infer")
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert in_process_close([out["data"][:3], out["data"][3:]], expected)
    assert api(hub, alice, "DELETE", f"endpoints/{name}").status_code == 204
