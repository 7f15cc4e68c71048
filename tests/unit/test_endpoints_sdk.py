"""The endpoints SDK's errors (``studiohub.endpoints``) against a stand-in models service:
every refusal and failure is an :class:`EndpointError` with the service's status and words
(an endpoint's own ``{"error": …}`` included), still a ``TrainingError`` for code that
catches that, and the CLI prints it and exits 3 without a traceback."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from studiohub import contract, endpoints, training
from studiohub.serving import cli

IRIS = {"name": "iris", "user": "alice", "domain": "everyone", "created": "t",
        "url": "/services/models/iris/", "status": "ready", "live": 1, "canary": None,
        "versions": []}


class Models(BaseHTTPRequestHandler):
    """``api/endpoints/iris`` exists; another name is a 404; ``api/endpoints`` answers
    something that is not JSON; a prediction is the replica's 400 ``{"error": …}``."""

    def answer(self, status: int, body: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].removeprefix("/services/models")
        if path == "/api/endpoints/iris":
            self.answer(200, IRIS)
        elif path == "/api/endpoints":
            self.answer(200, None, raw=b"<html>a proxy's page</html>")
        else:
            self.answer(404, {"status": 404, "message": "no endpoint 'nope' of alice"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(400, {"error": "input 'x' has shape [1, 3]; the model wants [-1, 4]"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/models/"
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_error_is_its_own_class_and_still_a_training_error() -> None:
    assert endpoints.EndpointError is not training.TrainingError
    e = endpoints.EndpointError(409, "'iris' has no earlier version to roll back to")
    assert isinstance(e, training.TrainingError)
    assert (e.status, e.message) == (409, "'iris' has no earlier version to roll back to")
    assert str(e) == "'iris' has no earlier version to roll back to (409)"
    assert str(endpoints.EndpointError(0, "cannot reach")) == "cannot reach"


def test_refusals_keep_the_services_status_and_words(url: str) -> None:
    client = endpoints.Client(url, "alice-token")
    with pytest.raises(endpoints.EndpointError) as e:
        client.endpoint("nope")
    assert (e.value.status, e.value.message) == (404, "no endpoint 'nope' of alice")
    iris = client.endpoint("iris")
    with pytest.raises(endpoints.EndpointError) as e:
        iris.predict([[1.0, 2.0, 3.0]])
    assert e.value.status == 400 and "the model wants [-1, 4]" in e.value.message
    with pytest.raises(endpoints.EndpointError) as e:
        client.endpoints()
    assert e.value.status == 0 and "not JSON" in e.value.message
    with pytest.raises(training.TrainingError):  # what older code catches
        endpoints.get("nope", url=url, token="alice-token")


def test_no_service_and_no_token_are_endpoint_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(endpoints.EndpointError) as e:
        endpoints.Client("http://127.0.0.1:1/services/models/", "x").endpoints()
    assert e.value.status == 0 and "cannot reach the models service" in e.value.message
    for name in (contract.API_TOKEN, "JUPYTERHUB_API_TOKEN", contract.MODELS_URL,
                 "JUPYTERHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(endpoints.EndpointError) as e:
        endpoints.api_token(option="--token")
    assert "--token" in e.value.message
    with pytest.raises(endpoints.EndpointError):
        endpoints.Client("http://127.0.0.1:1/services/models/")
    with pytest.raises(endpoints.EndpointError):
        endpoints.Client(token="x")


def test_the_cli_prints_the_error_and_exits_3(url: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def describe(client: endpoints.Client, args: argparse.Namespace) -> int:
        client.endpoint("nope")
        return 0

    args = argparse.Namespace(url=url, token="alice-token")
    assert cli.run(args, describe) == cli.ERROR_EXIT
    assert capsys.readouterr().err == "error: no endpoint 'nope' of alice (404)\n"
    monkeypatch.delenv(contract.API_TOKEN, raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert cli.run(argparse.Namespace(url=url, token=None), describe) == cli.ERROR_EXIT
    assert "no API token" in capsys.readouterr().err


@pytest.mark.parametrize(("flat", "shape", "nested"), [
    ([1, 2, 3, 4, 5, 6], [2, 3], [[1, 2, 3], [4, 5, 6]]),
    ([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
    ([1, 2, 3], [3], [1, 2, 3]),
    ([1, 2, 3], [2, 2], [1, 2, 3]),  # a shape that does not fit: the data as sent
    ([], [0, 3], []),
    ([], [2, 0], [[], []]),
])
def test_infer_answers_are_nested_to_their_shape(flat: list[int], shape: list[int],
                                                  nested: Any) -> None:
    assert endpoints._nest(flat, shape) == nested
