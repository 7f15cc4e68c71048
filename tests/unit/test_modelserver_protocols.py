"""studiohub.modelserver's protocols on plain lists: routes, TF Serving's rows and columns,
V2's tensors, the checks against the model's inputs (each refusal names what was
expected), and the answers' shapes; then the replica's HTTP server end to end on a unix
socket with a pure-Python runtime (no framework, no numpy): readiness while loading,
413 that keeps the connection, 400/500 from the runtime, a clean stop, and queued
requests batched into one call (``--batch-max``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest

from studiohub.modelserver import batching, protocols, runtimes, server
from studiohub.modelserver.protocols import ModelInfo, ProtocolError, Route, route
from studiohub.modelserver.tensors import (
    BadInput,
    Tensor,
    TensorSpec,
    check_values,
    flatten,
    nest,
)
from tests.ports import free_port

MODEL = ModelInfo("iris", 2, "onnx", (TensorSpec("x", "FP32", (-1, 4)),),
                  (TensorSpec("y", "FP32", (-1, 3)),))
TWO = ModelInfo("pair", 1, "tensorflow-savedmodel",
                (TensorSpec("a", "FP32", (-1, 2)), TensorSpec("ids", "INT64", (-1,))),
                (TensorSpec("score", "FP32", (-1,)), TensorSpec("label", "BYTES", (-1,))))
UNKNOWN = ModelInfo("ts", 1, "torchscript", (TensorSpec("x", "FP64", (-1,), known=False),),
                    (TensorSpec("output-0", "FP64", (-1,), known=False),), "FP64")


def error(fn: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(ProtocolError) as e:
        fn(*args)
    return e.value.status, e.value.message


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/v2/health/live", Route("v2", "live")),
    ("GET", "/v2/health/ready", Route("v2", "ready")),
    ("GET", "/v2", Route("v2", "server")),
    ("GET", "/v1/models/iris", Route("v1", "status", "iris")),
    ("GET", "/v1/models/iris/versions/2", Route("v1", "status", "iris", "2")),
    ("GET", "/v1/models/iris/metadata", Route("v1", "metadata", "iris")),
    ("GET", "/v1/models/iris/versions/2/metadata", Route("v1", "metadata", "iris", "2")),
    ("POST", "/v1/models/iris:predict", Route("v1", "predict", "iris")),
    ("POST", "/v1/models/iris/versions/2:predict", Route("v1", "predict", "iris", "2")),
    ("GET", "/v2/models/iris", Route("v2", "metadata", "iris")),
    ("GET", "/v2/models/iris/versions/2", Route("v2", "metadata", "iris", "2")),
    ("GET", "/v2/models/iris/ready", Route("v2", "model_ready", "iris")),
    ("POST", "/v2/models/iris/infer", Route("v2", "infer", "iris")),
    ("POST", "/v2/models/iris/versions/2/infer", Route("v2", "infer", "iris", "2")),
])
def test_routes(method: str, path: str, expected: Route) -> None:
    assert route(method, path) == expected


def test_unknown_routes_and_methods() -> None:
    long = "/v1/models/" + "x" * 5000
    status, message = error(route, "GET", long + "/a/b")
    assert status == 404 and len(message) < 400
    assert error(route, "GET", "/v3/x")[0] == 404
    assert error(route, "POST", "/v1/models/iris:classify") == \
        (404, "classify is not served: only :predict (classify and regress are for "
              "Estimator models)")
    assert error(route, "GET", "/v1/models/iris:predict") == \
        (405, "/v1/models/iris:predict takes POST")
    assert error(route, "POST", "/v2/models/iris")[0] == 405


def test_another_model_or_version_is_404() -> None:
    protocols.check_model(Route("v1", "predict", "iris", "2"), MODEL)
    assert error(protocols.check_model, Route("v1", "predict", "rose"), MODEL) == \
        (404, "model 'rose' not found: this endpoint serves 'iris'")
    assert error(protocols.check_model, Route("v2", "infer", "iris", "3"), MODEL) == \
        (404, "version '3' of model 'iris' not found: this replica serves version 2")


@pytest.mark.parametrize("body", [b"nope", b"{", b"[1, 2]", b"\xff\xfe", b"[" * 100000])
def test_not_json_or_not_an_object_is_400(body: bytes) -> None:
    assert error(protocols.parse_json, body)[0] == 400


def test_v1_rows_and_columns_become_one_tensor_per_input() -> None:
    rows = protocols.v1_request({"instances": [[1, 2, 3, 4], [0.5, 0, 0, 1]]}, MODEL)
    assert rows.rows is True
    assert rows.inputs == [Tensor("x", "FP32", (2, 4), [1, 2, 3, 4, 0.5, 0, 0, 1])]
    columns = protocols.v1_request({"inputs": {"x": [[1, 2, 3, 4]]}}, MODEL)
    assert (columns.rows, columns.inputs[0].shape) == (False, (1, 4))
    assert protocols.v1_request({"inputs": [[1, 2, 3, 4]]}, MODEL).inputs[0].shape == (1, 4)
    named = protocols.v1_request(
        {"instances": [{"a": [1, 2], "ids": 7}, {"a": [3, 4], "ids": 8}]}, TWO)
    assert named.inputs == [Tensor("a", "FP32", (2, 2), [1, 2, 3, 4]),
                            Tensor("ids", "INT64", (2,), [7, 8])]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 400, "exactly one of 'instances' (rows) or 'inputs' (columns)"),
    ({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}, 400, "exactly one of"),
    ({"instances": []}, 400, "'instances' must be a non-empty list"),
    ({"instances": [[1, 2, 3]]}, 400,
     "input x: shape [1, 3] does not match the model's [-1, 4] (-1: any size)"),
    ({"instances": [[1, 2, 3, 4], [1, 2]]}, 400, "ragged nested list"),
    ({"instances": [["a", "b", "c", "d"]]}, 400, "input x: expects numbers (FP32), got 'a'"),
    ({"instances": [[True, 1, 2, 3]]}, 400, "expects numbers (FP32), got True"),
    ({"instances": [[1, 2, 3, 4]], "signature_name": "other"}, 400,
     "signature 'other' not found: this model serves 'serving_default'"),
])
def test_v1_refusals_name_what_was_expected(body: dict[str, Any], status: int,
                                            message: str) -> None:
    got = error(protocols.v1_request, body, MODEL)
    assert got[0] == status and message in got[1], got


def test_v1_inputs_by_name_must_be_all_and_only_the_models() -> None:
    assert error(protocols.v1_request, {"instances": [{"a": [1, 2], "idz": 7}]}, TWO) == \
        (400, "inputs missing ids; unknown idz: the model's inputs are a, ids")
    assert error(protocols.v1_request, {"instances": [[1, 2]]}, TWO)[1].startswith(
        "this model has several inputs (a, ids)")
    assert "expects integers (INT64), got 1.5" in \
        error(protocols.v1_request, {"inputs": {"a": [[1, 2]], "ids": [1.5]}}, TWO)[1]


def test_v1_unknown_shapes_take_any_rank_and_the_models_float() -> None:
    request = protocols.v1_request({"instances": [[[1, 2], [3, 4]]]}, UNKNOWN)
    assert request.inputs == [Tensor("x", "FP64", (1, 2, 2), [1, 2, 3, 4])]
    assert protocols.v1_request({"instances": [True, False]}, UNKNOWN).inputs[0].datatype \
        == "BOOL"


def test_v1_answers_rows_or_columns() -> None:
    rows = protocols.V1Request([], rows=True)
    y = Tensor("y", "FP32", (2, 3), [1, 2, 3, 4, 5, 6])
    assert protocols.v1_answer(rows, [y]) == {"predictions": [[1, 2, 3], [4, 5, 6]]}
    columns = protocols.V1Request([], rows=False)
    assert protocols.v1_answer(columns, [y]) == {"outputs": [[1, 2, 3], [4, 5, 6]]}
    score = Tensor("score", "FP32", (2,), [0.5, 0.25])
    label = Tensor("label", "BYTES", (2,), [b"cat", b"\xff\x00"])
    assert protocols.v1_answer(rows, [score, label]) == {"predictions": [
        {"score": 0.5, "label": "cat"}, {"score": 0.25, "label": {"b64": "/wA="}}]}
    assert protocols.v1_answer(columns, [score, label]) == {"outputs": {
        "score": [0.5, 0.25], "label": ["cat", {"b64": "/wA="}]}}
    scalar = Tensor("n", "INT64", (), [3])
    assert error(protocols.v1_answer, rows, [score, scalar])[0] == 400


def test_v1_status_and_metadata_are_tf_servings_shapes() -> None:
    assert protocols.v1_status(MODEL, True) == {"model_version_status": [{
        "version": "2", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}
    assert protocols.v1_status(MODEL, False)["model_version_status"][0]["state"] == "LOADING"
    meta = protocols.v1_metadata(MODEL)
    assert meta["model_spec"] == {"name": "iris", "signature_name": "", "version": "2"}
    x = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""},
                                         {"size": "4", "name": ""}], "unknown_rank": False}
    ts = protocols.v1_metadata(UNKNOWN)["metadata"]["signature_def"]["signature_def"]
    assert ts["serving_default"]["inputs"]["x"]["tensor_shape"]["unknown_rank"] is True


def test_v2_infer_request_and_answer() -> None:
    body = {"id": "7", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                   "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}],
            "outputs": [{"name": "y"}]}
    request = protocols.v2_request(body, MODEL)
    assert request.inputs == [Tensor("x", "FP32", (2, 4), [1, 2, 3, 4, 5, 6, 7, 8])]
    assert (request.outputs, request.id) == (["y"], "7")
    y = Tensor("y", "FP32", (2, 3), [1, 2, 3, 4, 5, 6])
    assert protocols.v2_answer(MODEL, request, [y]) == {
        "model_name": "iris", "model_version": "2", "id": "7",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 3],
                     "data": [1, 2, 3, 4, 5, 6]}]}
    only = protocols.v2_request({"inputs": [
        {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
        {"name": "ids", "shape": [1], "datatype": "INT64", "data": [5]}],
        "outputs": [{"name": "label"}]}, TWO)
    answer = protocols.v2_answer(TWO, only, [Tensor("score", "FP32", (1,), [0.5]),
                                             Tensor("label", "BYTES", (1,), [b"cat"])])
    assert answer["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [1],
                                  "data": ["cat"]}]
    assert "id" not in answer


def x_input(**change: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                        "data": [1, 2, 3, 4], **change}]}


@pytest.mark.parametrize(("body", "message"), [
    ({}, "'inputs' must be a non-empty list of {name, shape, datatype, data}"),
    ({"inputs": []}, "'inputs' must be a non-empty list"),
    (x_input(name="z"), "unknown input 'z': the model's inputs are x"),
    (x_input(datatype="FP64"), "input x: datatype FP64 does not match the model's FP32"),
    (x_input(datatype="FLOAT"), "datatype FLOAT does not match the model's FP32"),
    (x_input(shape=[1, 5], data=[1] * 5),
     "input x: shape [1, 5] does not match the model's [-1, 4]"),
    (x_input(shape=[2, 4]), "input x: shape [2, 4] holds 8 values, 'data' has 4"),
    (x_input(shape="1,4"), "input x: 'shape' must be a list of integers"),
    (x_input(shape=[-1, 4]), "has a negative dimension"),
    (x_input(data=[1, 2, "3", 4]), "input x: expects numbers (FP32), got '3'"),
    ({"inputs": [x_input()["inputs"][0]] * 2}, "input 'x' is given twice"),
    ({**x_input(), "outputs": [{"name": "nope"}]},
     "unknown output 'nope': the model's outputs are y"),
])
def test_v2_refusals_name_what_was_expected(body: dict[str, Any], message: str) -> None:
    status, got = error(protocols.v2_request, body, MODEL)
    assert status == 400 and message in got, got


def test_v2_missing_inputs_list_the_models() -> None:
    body = {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    assert error(protocols.v2_request, body, TWO) == (
        400, "missing input ids: the model's inputs are a FP32 [-1, 2]; ids INT64 [-1]")


def test_v2_unknown_specs_take_the_requests_datatype() -> None:
    body = {"inputs": [{"name": "x", "shape": [3], "datatype": "INT32", "data": [1, 2, 3]}]}
    assert protocols.v2_request(body, UNKNOWN).inputs[0] == Tensor("x", "INT32", (3,),
                                                                    [1, 2, 3])


def test_v2_metadata() -> None:
    assert protocols.v2_metadata(MODEL) == {
        "name": "iris", "versions": ["2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]}


def test_flatten_and_nest_are_inverse() -> None:
    value = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 10], [11, 12]]]
    shape, flat = flatten(value, "x")
    assert (shape, flat) == ((2, 3, 2), list(range(1, 13)))
    assert nest(flat, shape) == value
    assert flatten(5, "x") == ((), [5]) and nest([5], ()) == 5
    assert flatten([], "x") == ((0,), [])
    with pytest.raises(BadInput, match="ragged"):
        flatten([[1, 2], [3, [4]]], "x")


def test_values_are_checked_per_datatype() -> None:
    assert check_values("x", "BOOL", [True, False]) == [True, False]
    assert check_values("x", "BYTES", ["a", {"b64": "/wA="}], b64=True) == [b"a", b"\xff\x00"]
    with pytest.raises(BadInput, match=r"out of UINT8's range 0\.\.255"):
        check_values("x", "UINT8", [1, 256])
    with pytest.raises(BadInput, match="expects booleans"):
        check_values("x", "BOOL", [1])
    with pytest.raises(BadInput, match="unknown datatype 'FP8'"):
        check_values("x", "FP8", [1.0])
    with pytest.raises(BadInput, match="not valid Unicode"):
        check_values("x", "BYTES", ["\ud800"])
    with pytest.raises(BadInput, match="b64 value is not base64"):
        check_values("x", "BYTES", [{"b64": "!!"}], b64=True)


# ---------------------------------------------------------------- the server itself


class SumRuntime(runtimes.Runtime):
    """y = the sum of each row of x; a row starting 13 is refused (an input error), one
    starting 666 breaks the framework. ``hold`` cleared keeps a call waiting."""

    format = "onnx"

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        gate.wait(30)
        self.inputs = (TensorSpec("x", "FP32", (-1, 2)),)
        self.outputs = (TensorSpec("y", "FP32", (-1,)),)
        self.input_errors = (ValueError,)
        self.calls: list[int] = []
        self.hold = threading.Event()
        self.hold.set()

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        x = inputs[0]
        self.calls.append(x.shape[0])
        self.hold.wait(30)
        if 13 in x.data[::2]:
            raise ValueError("13 is unlucky")
        if 666 in x.data[::2]:
            raise RuntimeError("the framework broke")
        rows = [sum(x.data[i:i + 2]) for i in range(0, len(x.data), 2)]
        return [Tensor("y", "FP32", (len(rows),), rows)]


async def http(sock: Path | int, requests: list[tuple[str, str, bytes]]
               ) -> list[tuple[int, Any]]:
    """Send requests one after another on one kept-alive connection (a unix socket, or
    a TCP port on 127.0.0.1)."""
    if isinstance(sock, int):
        reader, writer = await asyncio.open_connection("127.0.0.1", sock)
    else:
        reader, writer = await asyncio.open_unix_connection(str(sock))
    answers = []
    for method, path, body in requests:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        text = await reader.readexactly(int(headers["content-length"]))
        answers.append((int(status_line.split()[1]), json.loads(text)))
    writer.close()
    return answers


def test_the_server_on_a_unix_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    sock = tmp_path / "r.sock"
    sock.write_text("")  # a stale file where the socket goes is refused, a stale socket not
    gate = threading.Event()
    monkeypatch.setattr(runtimes, "load", lambda fmt, threads: SumRuntime(gate))
    args = server.parse_args(["--model", str(tmp_path / "model.onnx"), "--format", "onnx",
                              "--name", "sum", "--version", "4", "--socket", str(sock),
                              "--max-body-bytes", "1000"])
    assert asyncio.run(server.serve(args)) == 1
    sock.unlink()

    async def scenario() -> list[tuple[int, Any]]:
        task = asyncio.create_task(server.serve(args))
        while not sock.exists():
            await asyncio.sleep(0.01)
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
        loading = await http(sock, [("GET", "/v2/health/live", b""),
                                    ("GET", "/v2/health/ready", b""),
                                    ("GET", "/v1/models/sum", b""),
                                    ("POST", "/v2/models/sum/infer", b"{}")])
        gate.set()
        while (await http(sock, [("GET", "/v2/health/ready", b"")]))[0][0] != 200:
            await asyncio.sleep(0.01)
        row = json.dumps({"instances": [[1, 2], [3, 4.5]]}).encode()
        served = await http(sock, [
            ("POST", "/v1/models/sum:predict", row),
            ("POST", "/v1/models/sum:predict", b'{"instances": [' + b"1," * 600 + b"1]}"),
            ("POST", "/v1/models/sum/versions/4:predict", row),
            ("POST", "/v1/models/sum:predict", b'{"instances": [[13, 1]]}'),
            ("POST", "/v1/models/sum:predict", b'{"instances": [[666, 1]]}'),
            ("POST", "/v2/models/sum/infer", json.dumps({"inputs": [
                {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [2, 3]}]}).encode()),
        ])
        os.kill(os.getpid(), signal.SIGTERM)
        assert await task == 0
        return loading + served

    answers = asyncio.run(scenario())
    assert [status for status, _ in answers] == [200, 503, 200, 503,
                                                 200, 413, 200, 400, 500, 200]
    assert answers[1][1] == {"ready": False}
    assert answers[2][1]["model_version_status"][0]["state"] == "LOADING"
    assert answers[4][1] == {"predictions": [3, 7.5]}
    assert answers[5][1] == {"error": "the body is larger than this endpoint's limit of "
                                      "1000 bytes"}
    assert answers[7][1] == {"error": "the model refused the input: ValueError: "
                                      "13 is unlucky"}
    assert answers[8][1] == {"error": "the model failed: RuntimeError: the framework broke"}
    assert answers[9][1]["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [1],
                                         "data": [5]}]
    assert not sock.exists()


def test_a_model_that_cannot_load_exits_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.pt").write_bytes(b"x")
    args = ["--model", str(tmp_path / "model.pt"), "--format", "onnx", "--name", "m",
            "--version", "1", "--socket", str(tmp_path / "s.sock")]
    assert server.main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"studiohub.modelserver: cannot load {tmp_path}/model.pt as onnx: "
        "the model is torchscript, not onnx")
    assert not (tmp_path / "s.sock").exists()
    with pytest.raises(SystemExit):
        server.parse_args([*args, "--batch-max", "-1"])


def test_the_server_on_a_tcp_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes pods listen on TCP (``--port``) instead of a unix socket."""
    port = free_port()
    args, _ = stub_replica(tmp_path, monkeypatch, SumRuntime, "--port", str(port))

    async def scenario() -> list[tuple[int, Any]]:
        task = asyncio.create_task(server.serve(args))
        for _ in range(500):
            try:
                answers = await http(port, [("GET", "/v2/health/ready", b"")])
                if answers[0][0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.01)
        answers = await http(port, [("POST", "/v2/models/sum/infer", json.dumps({"inputs": [
            {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [2, 3]}]}).encode())])
        os.kill(os.getpid(), signal.SIGTERM)
        assert await task == 0
        return answers

    assert asyncio.run(scenario())[0][1]["outputs"][0]["data"] == [5]
    with pytest.raises(SystemExit):
        server.parse_args(["--model", "m", "--format", "onnx", "--name", "m", "--version", "1",
                           "--port", "1", "--socket", "/tmp/x.sock"])


R = TypeVar("R", bound=SumRuntime)


def stub_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: type[R],
                 *options: str) -> tuple[argparse.Namespace, list[R]]:
    """The replica program's arguments for a stub ONNX model ``sum`` (version 1) that
    ``runtime`` serves, and the list each runtime it loads is added to."""
    (tmp_path / "model.onnx").write_bytes(b"x")
    gate = threading.Event()
    gate.set()
    made: list[R] = []
    monkeypatch.setattr(runtimes, "load",
                        lambda fmt, threads: made.append(runtime(gate)) or made[-1])
    args = server.parse_args(["--model", str(tmp_path / "model.onnx"), "--format", "onnx",
                              "--name", "sum", "--version", "1", *options])
    return args, made


class ThreadedSumRuntime(SumRuntime):
    """SumRuntime that may be called from any thread; records each call's thread."""

    any_thread = True

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(gate)
        self.threads: list[str] = []
        self.adopted: list[str] = []
        self.delay = 0.0

    def adopt_thread(self) -> None:
        self.adopted.append(threading.current_thread().name)

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return super().predict(inputs)


def test_quick_predictions_run_on_the_loop_slow_ones_on_the_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick model's small requests skip the hand-off to the inference thread; a large
    body, a slow model and a runtime that is not ``any_thread`` keep it, and a health check
    answers while such a prediction runs."""
    sock = tmp_path / "i.sock"
    args, made = stub_replica(tmp_path, monkeypatch, ThreadedSumRuntime, "--socket", str(sock))
    row = json.dumps({"instances": [[1, 2]]}).encode()
    large = json.dumps({"instances": [[1, 2]] * 10000}).encode()
    assert len(large) > server.INLINE_MAX_BODY
    predict = ("POST", "/v1/models/sum:predict", row)

    async def scenario() -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        task = asyncio.create_task(server.serve(args))
        while not sock.exists() or (await http(sock, [("GET", "/v2/health/ready", b"")]
                                               ))[0][0] != 200:
            await asyncio.sleep(0.01)
        runtime = made[0]
        runtime.threads.clear()
        quick = await http(sock, [predict, predict, ("POST", "/v1/models/sum:predict",
                                                     large)])
        runtime.delay = 2 * server.INLINE_STRIKE_S  # the model turns slow: this call
        quick += await http(sock, [predict])  # still runs on the loop, the next ones not
        runtime.delay = 0
        quick += await http(sock, [predict] * 20)  # quick again, but kept on the thread
        runtime.hold.clear()
        held = asyncio.create_task(http(sock, [predict]))
        while len(runtime.threads) < 25:
            await asyncio.sleep(0.01)
        during = await http(sock, [("GET", "/v2/health/ready", b"")])
        runtime.hold.set()
        slow = await held
        os.kill(os.getpid(), signal.SIGTERM)
        assert await task == 0
        return quick + slow, during

    answers, during = asyncio.run(scenario())
    assert answers == [(200, {"predictions": [3]})] * 2 + \
        [(200, {"predictions": [3] * 10000})] + [(200, {"predictions": [3]})] * 22
    assert during == [(200, {"ready": True})]  # while the held call waits on the thread
    loop_thread = threading.current_thread().name
    threads = made[0].threads
    assert threads[:2] == [loop_thread] * 2 and made[0].adopted == [loop_thread]
    assert threads[2].startswith("inference")  # the large body
    assert threads[3] == loop_thread  # the model was quick until this call
    assert all(t.startswith("inference") for t in threads[4:])  # for INLINE_OFF_S
    replica = server.Replica(args)
    replica.runtime, replica.call_s, replica.pooled = made[0], 0.001, 0
    assert replica.inline(row)
    replica.call_s = server.INLINE_MAX_S * 2
    assert not replica.inline(row)
    replica.call_s, replica.pooled = 0.001, 1
    assert not replica.inline(row)  # a call on the thread: never two at once
    replica.pooled = 0
    with replica.calling:
        assert not replica.inline(row)  # a framework call in progress
    replica.call_s = server.INLINE_MAX_S * 2
    for _ in range(50):  # refusals are not framework calls: they make no model quick
        assert replica.answer(Route("v1", "predict", "sum"), b"not json")[0] == 400
    assert replica.call_s == server.INLINE_MAX_S * 2 and not replica.inline(row)
    opened = threading.Event()
    opened.set()
    replica.runtime = SumRuntime(opened)
    replica.call_s = 0.001
    assert not replica.inline(row)  # a runtime that is not any_thread


def test_batching_joins_and_splits_rows() -> None:
    specs = (TensorSpec("x", "FP32", (-1, 2)), TensorSpec("ids", "INT64", (-1,)))
    a = [Tensor("x", "FP32", (1, 2), [1, 2]), Tensor("ids", "INT64", (1,), [7])]
    b = [Tensor("x", "FP32", (2, 2), [3, 4, 5, 6]), Tensor("ids", "INT64", (2,), [8, 9])]
    assert batching.joinable([a, b], specs)
    assert batching.join([a, b]) == [Tensor("x", "FP32", (3, 2), [1, 2, 3, 4, 5, 6]),
                                     Tensor("ids", "INT64", (3,), [7, 8, 9])]
    y = Tensor("y", "FP32", (3, 2), [10, 20, 30, 40, 50, 60])
    assert batching.split([y], [1, 2]) == [[Tensor("y", "FP32", (1, 2), [10, 20])],
                                           [Tensor("y", "FP32", (2, 2), [30, 40, 50, 60])]]
    assert batching.split([Tensor("n", "INT64", (), [3])], [1, 2]) is None
    assert not batching.joinable([a], specs)  # one request: nothing to join
    odd = [Tensor("x", "FP32", (1, 2), [1, 2]), Tensor("ids", "INT64", (2,), [7, 8])]
    assert not batching.joinable([a, odd], specs)  # inputs disagree on the rows
    fixed = (TensorSpec("x", "FP32", (1, 2)), TensorSpec("ids", "INT64", (-1,)))
    assert not batching.joinable([a, a], fixed)  # a fixed first dimension
    unknown = (TensorSpec("x", "FP32", (-1,), known=False),)
    assert not batching.joinable([[a[0]], [a[0]]], unknown)
    wide = [Tensor("x", "FP32", (1, 3), [1, 2, 3]), a[1]]
    assert not batching.joinable([a, wide], specs)


def test_queued_requests_run_as_one_call(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "b.sock"
    args, made = stub_replica(tmp_path, monkeypatch, SumRuntime, "--socket", str(sock),
                              "--batch-max", "4")
    replicas: list[server.Replica] = []

    class Recorded(server.Replica):
        def __init__(self, args: Any) -> None:
            super().__init__(args)
            replicas.append(self)

    monkeypatch.setattr(server, "Replica", Recorded)

    def body(*rows: list[float]) -> bytes:
        return json.dumps({"instances": list(rows)}).encode()

    async def scenario() -> list[list[tuple[int, Any]]]:
        task = asyncio.create_task(server.serve(args))
        ready = ("GET", "/v2/health/ready", b"")
        while not sock.exists() or (await http(sock, [ready]))[0][0] != 200:
            await asyncio.sleep(0.01)
        runtime = made[0]
        runtime.calls.clear()
        runtime.hold.clear()  # the first call holds the model: the others queue
        first = asyncio.create_task(http(sock, [("POST", "/v1/models/sum:predict",
                                                 body([1, 1]))]))
        while not runtime.calls:
            await asyncio.sleep(0.01)
        queued = [asyncio.create_task(http(sock, [("POST", "/v1/models/sum:predict", b)]))
                  for b in (body([1, 2]), body([3, 4], [5, 6]), body([13, 0]),
                            b"not json", body([7, 8]))]
        while len(replicas[0].queue) < 5:
            await asyncio.sleep(0.01)
        runtime.hold.set()
        answers = [await first] + [await q for q in queued]
        os.kill(os.getpid(), signal.SIGTERM)
        assert await task == 0
        return answers

    answers = [a[0] for a in asyncio.run(scenario())]
    assert answers == [(200, {"predictions": [2]}), (200, {"predictions": [3]}),
                       (200, {"predictions": [7, 11]}),
                       (400, {"error": "the model refused the input: ValueError: "
                                       "13 is unlucky"}),
                       (400, {"error": "the body is not JSON: Expecting value: line 1 "
                                       "column 1 (char 0)"}),
                       (200, {"predictions": [15]})]
    # 1 alone; then 4 queued (one not JSON) joined: 1+2+1 rows, refused for the 13 row,
    # so retried one by one (1, 2, 1); then the fifth alone.
    assert made[0].calls == [1, 4, 1, 2, 1, 1]


def test_threads_are_capped_by_this_process_cpus() -> None:
    assert 1 <= runtimes.cpu_limit() <= len(os.sched_getaffinity(0))
