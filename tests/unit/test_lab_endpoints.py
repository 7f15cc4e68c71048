"""The Lab extension's endpoints routes on a real Jupyter server (pytest-jupyter),
forwarding to a stand-in models service: the server's token goes along, every route
reaches the service's one-to-one path, "try it" reaches the endpoint's own v1/v2 route,
and the service's or the replica's refusals reach the browser with their own status and
words; bad input is refused here and nothing is forwarded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer

from studiohub_lab.endpoints.client import predict_path, service_url_from
from tests.ports import free_port

pytest.importorskip("pytest_jupyter")
pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOKEN = "server-token-789"
NO_ROOM = "no room: the machine has 2 of 4 GiB free; size 'large' needs 8 GiB"
VERSION = {"version": 1, "format": "onnx", "image": "pytorch", "size": "small",
           "replicas": [{"name": "replica-0", "state": "ready", "restarts": 0,
                         "reason": ""}],
           "traffic": 100, "status": "serving", "source": "models/net", "created": "t"}
IRIS = {"name": "iris", "user": "alice", "domain": "everyone",
        "url": "/services/models/iris/", "created": "t", "status": "ready",
        "versions": [VERSION]}
METRICS = {"versions": {"1": {"requests": 10, "rps": 2.5, "p50_ms": 1.2, "p99_ms": 4.0,
                              "errors": 0, "replicas": {"replica-0": {"requests": 10}}}}}
METADATA = {"name": "iris", "versions": ["1"], "platform": "onnxruntime",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}
LOG = b"replica-0 ready\n\xce\xbb loaded\n"
SHAPE = "input 'x' has shape [1, 3]; the model wants [-1, 4]"


def record(handler: web.RequestHandler, seen: list[dict[str, Any]]) -> None:
    seen.append({"method": handler.request.method, "path": handler.request.path,
                 "query": handler.request.query,
                 "auth": handler.request.headers.get("Authorization"),
                 "body": json.loads(handler.request.body) if handler.request.body else None})


class Fake(web.RequestHandler):
    def initialize(self, seen: list[dict[str, Any]]) -> None:
        self.seen = seen

    def prepare(self) -> None:
        record(self, self.seen)

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def refuse(self, status: int, message: str) -> None:
        self.answer(status, {"status": status, "message": message})


class FakeModels(Fake):
    """The management API: answers by path like the models service would."""

    def get(self, path: str) -> None:
        if path == "endpoints":
            self.answer(200, {"endpoints": [IRIS]})
        elif path == "endpoints/iris":
            self.answer(200, IRIS)
        elif path == "endpoints/iris/metrics":
            self.answer(200, METRICS)
        elif path == "endpoints/iris/logs":
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(LOG[int(self.get_argument("offset", "0")):])
        elif path == "endpoints/iris/tokens":
            self.answer(200, {"tokens": [{"id": "tok1", "created": "t"}]})
        elif path == "endpoints/boom":
            self.refuse(500, "internal error in the models service")
        else:
            self.refuse(404, "no endpoint 'nope'")

    def post(self, path: str) -> None:
        body = json.loads(self.request.body) if self.request.body else {}
        if path == "endpoints" and body.get("size") == "large":
            self.refuse(409, NO_ROOM)
        elif path == "endpoints" and self.get_argument("check", "") == "true":
            self.answer(200, {"ok": True})
        elif path == "endpoints":
            self.answer(201, {**IRIS, "status": "starting"})
        elif path in ("endpoints/iris/traffic", "endpoints/iris/rollback"):
            self.answer(200, IRIS)
        elif path == "endpoints/solo/rollback":
            self.refuse(409, "endpoint solo has one version: nothing to roll back to")
        elif path == "endpoints/iris/tokens":
            self.answer(201, {"id": "tok2", "token": "secret-abc", "created": "t"})
        else:
            self.refuse(404, "no endpoint 'nope'")

    def delete(self, path: str) -> None:
        if path in ("endpoints/iris", "endpoints/iris/tokens/tok1"):
            self.set_status(204)
            self.finish()
        else:
            self.refuse(404, "no endpoint 'nope'")


class FakeReplica(Fake):
    """The data plane: a replica's TF Serving and V2 routes behind the service."""

    def get(self, path: str) -> None:
        if path in ("iris/v2/models/iris", "iris/v2/models/iris/versions/2"):
            self.answer(200, METADATA)
        else:
            self.answer(404, {"error": f"no model {path}"})

    def post(self, path: str) -> None:
        body = json.loads(self.request.body)
        if path.startswith("nope/"):
            self.refuse(404, "no endpoint 'nope'")
        elif body.get("instances") == [[1, 2, 3]] or body.get("inputs") == "bad":
            self.answer(400, {"error": SHAPE})
        elif body.get("crash"):
            self.answer(500, {"error": "onnxruntime: segfault in kernel"})
        elif path == "iris/v1/models/iris:predict":
            self.answer(200, {"predictions": [[0.1, 0.9]]})
        elif path == "iris/v1/models/iris/versions/2:predict":
            self.answer(200, {"predictions": [[0.2, 0.8]]})
        elif path == "iris/v2/models/iris/infer":
            self.answer(200, {"model_name": "iris", "outputs": [
                {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 0.9]}]})
        elif path == "iris/v2/models/iris/versions/3/infer":
            self.answer(404, {"error": "no version 3 of model iris"})
        else:
            self.answer(404, {"error": f"no route {path}"})


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def service(seen: list[dict[str, Any]], jp_asyncio_loop: Any,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    app = web.Application([(r"/services/models/api/(.*)", FakeModels, {"seen": seen}),
                           (r"/services/models/(.*)", FakeReplica, {"seen": seen})])
    server = HTTPServer(app)

    async def listen() -> None:
        server.listen(port, "127.0.0.1")

    jp_asyncio_loop.run_until_complete(listen())
    url = f"http://127.0.0.1:{port}/services/models/"
    monkeypatch.setenv("STUDIOHUB_MODELS_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    yield url
    server.stop()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"studiohub_lab": True}}}


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    (tmp_path / "lab-root").mkdir(exist_ok=True)
    return tmp_path / "lab-root"


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: Any) -> Any:
    def call(*parts: str, **kwargs: Any) -> Any:
        return jp_asyncio_loop.run_until_complete(
            jp_fetch("studiohub", "api", "v1", "endpoints", *parts, **kwargs))
    return call


def fetch_error(fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as info:
        fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    body = json.loads(response.body)
    assert body["status"] == info.value.code
    return info.value.code, str(body["message"])


def post(body: dict[str, Any] | None = None, **params: str) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body or {}), "params": params}


SPEC = {"name": "iris", "model": "models/net", "image": "pytorch", "size": "small",
        "replicas": 2, "canary": 10}
API = "/services/models/api/endpoints"


def test_reads_are_forwarded_with_the_servers_token(fetch: Any, service: str,
                                                    seen: list[dict[str, Any]]) -> None:
    assert json.loads(fetch().body) == {"endpoints": [IRIS]}
    assert json.loads(fetch("iris").body) == IRIS
    assert json.loads(fetch("iris", "metrics").body) == METRICS
    assert json.loads(fetch("iris", "tokens").body)["tokens"][0]["id"] == "tok1"
    assert [(s["method"], s["path"], s["auth"]) for s in seen] == [
        ("GET", API, f"token {TOKEN}"), ("GET", f"{API}/iris", f"token {TOKEN}"),
        ("GET", f"{API}/iris/metrics", f"token {TOKEN}"),
        ("GET", f"{API}/iris/tokens", f"token {TOKEN}")]


def test_logs_are_text_with_their_arguments(fetch: Any, service: str,
                                            seen: list[dict[str, Any]]) -> None:
    r = fetch("iris", "logs", params={"version": "1", "replica": "replica-0", "other": "x"})
    assert r.body == LOG
    assert r.headers["Content-Type"].startswith("text/plain")
    assert dict(p.split("=") for p in seen[-1]["query"].split("&")) == {
        "version": "1", "replica": "replica-0"}
    assert fetch("iris", "logs", params={"offset": "16"}).body == LOG[16:]
    assert fetch_error(fetch, "nope", "logs") == (404, "no endpoint 'nope'")


def test_deploy_dry_run_and_actions(fetch: Any, service: str,
                                    seen: list[dict[str, Any]]) -> None:
    r = fetch(**post(SPEC, check="true"))
    assert r.code == 200 and json.loads(r.body) == {"ok": True}
    assert seen[-1]["query"] == "check=true" and seen[-1]["body"] == SPEC
    job_model = {**SPEC, "model": {"job": "0123456789ab", "path": "model"}}
    r = fetch(**post(job_model))
    assert r.code == 201 and json.loads(r.body)["status"] == "starting"
    assert seen[-1]["query"] == "" and seen[-1]["body"] == job_model
    r = fetch("iris", "traffic", **post({"canary": 25}))
    assert r.code == 200 and seen[-1]["body"] == {"canary": 25}
    assert seen[-1]["path"] == f"{API}/iris/traffic"
    r = fetch("iris", "rollback", **post())
    assert r.code == 200 and seen[-1]["path"] == f"{API}/iris/rollback"
    r = fetch("iris", "tokens", **post())
    assert r.code == 201 and json.loads(r.body)["token"] == "secret-abc"
    r = fetch("iris", "tokens", **post({"note": "ci pipeline"}))
    assert r.code == 201 and seen[-1]["body"] == {"note": "ci pipeline"}
    r = fetch("iris", "tokens", "tok1", method="DELETE")
    assert r.code == 204 and seen[-1]["path"] == f"{API}/iris/tokens/tok1"
    r = fetch("iris", method="DELETE")
    assert r.code == 204 and r.body == b""
    assert (seen[-1]["method"], seen[-1]["path"], seen[-1]["auth"]) == \
        ("DELETE", f"{API}/iris", f"token {TOKEN}")


def test_service_refusals_keep_their_status_and_message(fetch: Any, service: str) -> None:
    assert fetch_error(fetch, **post({**SPEC, "size": "large"}, check="true")) == \
        (409, NO_ROOM)
    assert fetch_error(fetch, "nope") == (404, "no endpoint 'nope'")
    assert fetch_error(fetch, "nope", method="DELETE") == (404, "no endpoint 'nope'")
    assert fetch_error(fetch, "solo", "rollback", **post()) == \
        (409, "endpoint solo has one version: nothing to roll back to")
    status, message = fetch_error(fetch, "boom")
    assert status == 502 and "the models service failed (500)" in message


def test_predict_goes_to_the_endpoints_own_routes(fetch: Any, service: str,
                                                 seen: list[dict[str, Any]]) -> None:
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    r = fetch("iris", "predict", **post({"protocol": "v1", "body": body}))
    assert json.loads(r.body) == {"predictions": [[0.1, 0.9]]}
    assert (seen[-1]["path"], seen[-1]["auth"], seen[-1]["body"]) == \
        ("/services/models/iris/v1/models/iris:predict", f"token {TOKEN}", body)
    r = fetch("iris", "predict", **post({"protocol": "v1", "version": 2, "body": body}))
    assert json.loads(r.body) == {"predictions": [[0.2, 0.8]]}
    assert seen[-1]["path"] == "/services/models/iris/v1/models/iris/versions/2:predict"
    v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                      "data": [5.1, 3.5, 1.4, 0.2]}]}
    r = fetch("iris", "predict", **post({"protocol": "v2", "body": v2}))
    assert json.loads(r.body)["outputs"][0]["data"] == [0.1, 0.9]
    assert seen[-1]["path"] == "/services/models/iris/v2/models/iris/infer"
    assert seen[-1]["body"] == v2


def test_metadata_is_the_models_v2_metadata(fetch: Any, service: str,
                                            seen: list[dict[str, Any]]) -> None:
    assert json.loads(fetch("iris", "metadata").body) == METADATA
    assert (seen[-1]["path"], seen[-1]["auth"]) == \
        ("/services/models/iris/v2/models/iris", f"token {TOKEN}")
    assert json.loads(fetch("iris", "metadata", params={"version": "2"}).body) == METADATA
    assert seen[-1]["path"] == "/services/models/iris/v2/models/iris/versions/2"
    assert fetch_error(fetch, "iris", "metadata", params={"version": "7"}) == \
        (404, "no model iris/v2/models/iris/versions/7")


def test_predict_refusals_are_the_endpoints_words(fetch: Any, service: str) -> None:
    assert fetch_error(fetch, "iris", "predict", **post(
        {"protocol": "v1", "body": {"instances": [[1, 2, 3]]}})) == (400, SHAPE)
    assert fetch_error(fetch, "iris", "predict", **post(
        {"protocol": "v2", "version": 3, "body": {"inputs": []}})) == \
        (404, "no version 3 of model iris")
    assert fetch_error(fetch, "nope", "predict", **post(
        {"protocol": "v2", "body": {"inputs": []}})) == (404, "no endpoint 'nope'")
    status, message = fetch_error(fetch, "iris", "predict", **post(
        {"protocol": "v1", "body": {"crash": True}}))
    assert status == 502
    assert message == "the endpoint iris failed (500): onnxruntime: segfault in kernel"


def test_bad_input_is_refused_here_and_nothing_is_forwarded(
        fetch: Any, service: str, seen: list[dict[str, Any]]) -> None:
    cases: list[tuple[tuple[str, ...], dict[str, Any], str]] = [
        ((), {**SPEC, "gpus": 2}, "unknown field(s) gpus"),
        ((), {**SPEC, "replicas": "two"}, "replicas must be int, not str"),
        ((), {**SPEC, "replicas": True}, "replicas must be int, not bool"),
        ((), {**SPEC, "model": ["a"]}, "model must be str or dict, not list"),
        (("iris", "traffic"), {}, "canary: required"),
        (("iris", "traffic"), {"canary": "10"}, "canary must be int or float, not str"),
        (("iris", "rollback"), {"to": 1}, "unknown field(s) to"),
        (("iris", "tokens"), {"name": "x"}, "unknown field(s) name"),
        (("iris", "tokens"), {"note": 7}, "note must be str, not int"),
        (("iris", "predict"), {"body": {}}, "protocol: required"),
        (("iris", "predict"), {"protocol": "v1"}, "body: required"),
        (("iris", "predict"), {"protocol": "v3", "body": {}}, "protocol: 'v3' is not v1"),
        (("iris", "predict"), {"protocol": "v1", "body": [1]}, "body must be dict, not list"),
        (("iris", "predict"), {"protocol": "v1", "version": 0, "body": {}},
         "version: 0 is not a version number"),
        (("iris", "predict"), {"protocol": "v1", "version": "2", "body": {}},
         "version must be int, not str"),
        (("Bad_Name", "predict"), {"protocol": "v1", "body": {}},
         "endpoint name 'Bad_Name' is not valid"),
    ]
    for parts, body, fragment in cases:
        code, message = fetch_error(fetch, *parts, **post(body))
        assert code == 400 and fragment in message, (parts, body, message)
    code, message = fetch_error(fetch, method="POST", body="[" * 100_000)
    assert code in (400, 413)
    code, message = fetch_error(fetch, "iris", "predict", method="POST", body="{not json")
    assert code == 400 and "not valid JSON" in message
    code, message = fetch_error(fetch, **post(SPEC, check="ture"))
    assert code == 400 and message.startswith("check:")
    code, message = fetch_error(fetch, "iris", "predict", method="POST",
                                body=json.dumps({"protocol": "v1", "body": {
                                    "instances": ["x" * 9 * 1024 * 1024]}}))
    assert code == 413
    code, message = fetch_error(fetch, "UPPER")
    assert code == 400 and "is not valid" in message
    for name, value in [("replica", "../../etc"), ("offset", "-1"), ("version", "0"),
                        ("version", "x")]:
        code, message = fetch_error(fetch, "iris", "logs", params={name: value})
        assert code == 400 and message.startswith(f"{name}:"), message
    assert seen == []


def test_no_service_is_a_503_saying_so(fetch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STUDIOHUB_MODELS_URL", "JUPYTERHUB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    code, message = fetch_error(fetch)
    assert code == 503 and "model endpoints are not available on this server" in message
    code, message = fetch_error(fetch, "iris", "predict",
                                **post({"protocol": "v1", "body": {}}))
    assert code == 503 and "model endpoints are not available on this server" in message


def test_service_url_and_predict_paths() -> None:
    assert service_url_from({"STUDIOHUB_MODELS_URL": "http://h/services/models/"}) == \
        "http://h/services/models/"
    assert service_url_from({"JUPYTERHUB_PUBLIC_URL": "https://hub.example/",
                             "JUPYTERHUB_BASE_URL": "/base/"}) == \
        "https://hub.example/base/services/models/"
    assert predict_path("iris", "v1", None) == "iris/v1/models/iris:predict"
    assert predict_path("iris", "v2", 4) == "iris/v2/models/iris/versions/4/infer"
