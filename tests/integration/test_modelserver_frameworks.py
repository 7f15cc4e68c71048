"""The replica program (``python -m studiohub.modelserver``) serves a real model of every
format, each made in the test by its framework's prebuilt environment: predictions
through TF Serving's REST API and the Open Inference Protocol are the numbers the same
model gives in-process; bad requests are 4xx and the replica answers afterwards; a model
that cannot load ends the replica with status 2 and one line.

The environments are the integration tests' (``$STUDIOHUB_TEST_ENVS``, default
/var/tmp/studiohub-test-envs); the package is the one ``studiohub.sdk`` writes into them.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studiohub import sdk

ENVS = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs")) / "envs"
X = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.5]]

# Each script writes a tiny model into argv[1] and prints, as JSON, the model's own
# in-process outputs (a list per output) for each input of argv[2]: X and its first row
# (a batch of one may round differently from a batch of two, as in any framework).
MAKERS = {
    "tensorflow-savedmodel": ("tensorflow", "saved", """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.random.set_seed(0)
model = tf.keras.Sequential([tf.keras.Input((4,), name="x"),
                             tf.keras.layers.Dense(3, activation="tanh")])
model.export(sys.argv[1], verbose=False)
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
outs = [fn(x=tf.constant(x, dtype=tf.float32)) for x in json.loads(sys.argv[2])]
print(json.dumps([[v.numpy().tolist() for _, v in sorted(o.items())] for o in outs]))
"""),
    "torchscript": ("pytorch", "model.pt", """
import json, sys, torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).eval()
torch.jit.save(torch.jit.trace(net, torch.randn(2, 4)), sys.argv[1])
loaded = torch.jit.load(sys.argv[1])
with torch.inference_mode():
    print(json.dumps([[loaded(torch.tensor(x)).tolist()] for x in json.loads(sys.argv[2])]))
"""),
    "torch-export": ("pytorch", "model.pt2", """
import json, sys, torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).eval()
program = torch.export.export(net, (torch.randn(2, 4),),
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
torch.export.save(program, sys.argv[1])
loaded = torch.export.load(sys.argv[1]).module()
with torch.inference_mode():
    print(json.dumps([[loaded(torch.tensor(x)).tolist()] for x in json.loads(sys.argv[2])]))
"""),
    "onnx": ("pytorch", "model.onnx", """
import json, sys
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(0)
W = rng.normal(size=(3, 4)).astype("float32"); b = rng.normal(size=3).astype("float32")
graph = helper.make_graph(
    [helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
     helper.make_node("Tanh", ["h"], ["y"])], "tiny",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(json.dumps([[o.tolist() for o in session.run(None, {"x": np.asarray(x, "float32")})]
                  for x in json.loads(sys.argv[2])]))
"""),
    "mxnet": ("mxnet", "export", """
import json, os, sys
import mxnet as mx
mx.random.seed(0)
net = mx.gluon.nn.HybridSequential()
net.add(mx.gluon.nn.Dense(3, activation="tanh", in_units=4))
net.initialize()
net.hybridize()
net(mx.nd.ones((1, 4)))
os.makedirs(sys.argv[1])
net.export(os.path.join(sys.argv[1], "net"), epoch=2)
print(json.dumps([[net(mx.nd.array(x, dtype="float32")).asnumpy().tolist()]
                  for x in json.loads(sys.argv[2])]))
"""),
}


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the replica's unix socket (kept alive between requests)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.socket_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.socket_path)


@dataclass
class Replica:
    process: subprocess.Popen[str]
    socket: Path
    log: Path
    conn: UnixConnection | None = None

    def call(self, method: str, path: str, body: Any = None,
             raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = UnixConnection(self.socket)
            try:
                self.conn.request(method, path, data, {"Content-Type": "application/json"})
                response = self.conn.getresponse()
                text = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, json.loads(text)
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def env_python(image: str) -> Path:
    python = ENVS / image / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no {image} environment at {ENVS / image}: build it with "
                    f"STUDIOHUB_PREFIX={ENVS.parent} studiohub env build {image}")
    return python


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK package as ``studiohub env build`` writes it into each environment."""
    root = tmp_path_factory.mktemp("sdk")
    sdk.write_package(root / "studiohub")
    return root


def make_model(fmt: str, folder: Path) -> tuple[Path, list[Any], Path]:
    image, name, script = MAKERS[fmt]
    python = env_python(image)
    target = folder / name
    done = subprocess.run([str(python), "-c", script, str(target), json.dumps([X, X[:1]])],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(folder)})
    assert done.returncode == 0, done.stderr[-3000:]
    return target, json.loads(done.stdout.splitlines()[-1]), python


def start(python: Path, package: Path, model: Path, fmt: str, folder: Path,
          *extra: str) -> Replica:
    sock, log = folder / f"{fmt}.sock", folder / f"{fmt}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(python), "-m", "studiohub.modelserver", "--model", str(model),
             "--format", fmt, "--name", "tiny", "--version", "3", "--socket", str(sock),
             *extra],
            env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "PYTHONPATH": str(package),
                 "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdout=out, stderr=subprocess.STDOUT, text=True)
    return Replica(process, sock, log)


def wait_ready(replica: Replica, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert replica.process.poll() is None, replica.log.read_text()[-3000:]
        if replica.socket.exists():
            try:
                status, body = replica.call("GET", "/v2/health/ready")
                if status == 200:
                    assert body == {"ready": True}
                    return
                assert status == 503
            except (ConnectionError, OSError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout} s: {replica.log.read_text()[-3000:]}")


def stop(replica: Replica) -> None:
    if replica.conn is not None:
        replica.conn.close()
    if replica.process.poll() is None:
        replica.process.terminate()
        try:
            replica.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()


@pytest.fixture
def running(package: Path, tmp_path: Path, request: pytest.FixtureRequest
            ) -> Iterator[tuple[Replica, list[Any]]]:
    fmt = request.param
    model, expected, python = make_model(fmt, tmp_path)
    replica = start(python, package, model, fmt, tmp_path, "--max-body-bytes", "65536")
    try:
        wait_ready(replica)
        yield replica, expected
    finally:
        stop(replica)
    assert replica.process.returncode == 0, replica.log.read_text()[-3000:]
    assert not replica.socket.exists()


@pytest.mark.parametrize("running", list(MAKERS), indirect=True)
def test_both_protocols_give_the_models_own_numbers(running: tuple[Replica, list[Any]]
                                                    ) -> None:
    replica, (expected, first) = running
    status, meta = replica.call("GET", "/v2/models/tiny")
    assert status == 200, meta
    assert meta["name"] == "tiny" and meta["versions"] == ["3"]
    assert len(meta["inputs"]) == 1 and len(meta["outputs"]) == len(expected)
    name = meta["inputs"][0]["name"]

    status, body = replica.call("POST", "/v1/models/tiny:predict", {"instances": X})
    assert (status, body) == (200, {"predictions": expected[0]})
    status, body = replica.call("POST", "/v1/models/tiny/versions/3:predict",
                                {"inputs": {name: X}})
    assert (status, body) == (200, {"outputs": expected[0]})

    flat = [v for row in X for v in row]
    status, body = replica.call("POST", "/v2/models/tiny/infer", {
        "id": "r1", "inputs": [{"name": name, "shape": [2, 4], "datatype": "FP32",
                                "data": flat}]})
    assert status == 200, body
    assert body["model_name"] == "tiny" and body["model_version"] == "3"
    assert body["id"] == "r1"
    [out] = body["outputs"]
    assert out["shape"] == [2, 3] and out["datatype"] == "FP32"
    assert out["data"] == [v for row in expected[0] for v in row]
    status, body = replica.call("POST", "/v2/models/tiny/versions/3/infer", {
        "inputs": [{"name": name, "shape": [1, 4], "datatype": "FP32", "data": [X[0]]}]})
    assert status == 200 and body["outputs"][0]["data"] == first[0][0]

    status, body = replica.call("GET", "/v1/models/tiny")
    assert (status, body["model_version_status"][0]["state"]) == (200, "AVAILABLE")
    status, body = replica.call("GET", "/v1/models/tiny/versions/3/metadata")
    assert status == 200 and "serving_default" in \
        body["metadata"]["signature_def"]["signature_def"]
    assert replica.call("GET", "/v2/models/tiny/ready") == (200, {"name": "tiny",
                                                                   "ready": True})
    assert replica.call("GET", "/v2/health/live") == (200, {"live": True})


@pytest.mark.parametrize("running", list(MAKERS), indirect=True)
def test_bad_requests_are_4xx_and_the_replica_keeps_serving(
        running: tuple[Replica, list[Any]]) -> None:
    replica, (expected, _) = running
    name = replica.call("GET", "/v2/models/tiny")[1]["inputs"][0]["name"]

    def infer(shape: list[int], datatype: str, data: list[Any]) -> tuple[int, Any]:
        return replica.call("POST", "/v2/models/tiny/infer", {
            "inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})

    bad = {
        "wrong shape (v1)": replica.call("POST", "/v1/models/tiny:predict",
                                         {"instances": [[1.0, 2.0, 3.0]]}),
        "wrong shape (v2)": infer([1, 5], "FP32", [1.0] * 5),
        "ragged rows": replica.call("POST", "/v1/models/tiny:predict",
                                    {"instances": [[1.0, 2.0, 3.0, 4.0], [1.0]]}),
        "wrong dtype (strings)": replica.call("POST", "/v1/models/tiny:predict",
                                              {"instances": [["a", "b", "c", "d"]]}),
        "wrong dtype (v2 BYTES)": infer([1, 4], "BYTES", ["a", "b", "c", "d"]),
        "data and shape disagree": infer([2, 4], "FP32", [1.0] * 4),
        "unknown input": replica.call("POST", "/v2/models/tiny/infer", {
            "inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32",
                        "data": [1.0] * 4}]}),
        "not JSON": replica.call("POST", "/v1/models/tiny:predict", raw=b"{instances"),
        "JSON but no object": replica.call("POST", "/v2/models/tiny/infer", raw=b"[1]"),
        "too large": replica.call("POST", "/v1/models/tiny:predict",
                                  raw=b'{"instances": [' + b"1.0," * 40000 + b"1.0]}"),
        "unknown version": replica.call("POST", "/v1/models/tiny/versions/9:predict",
                                        {"instances": X}),
        "unknown version (v2)": replica.call("GET", "/v2/models/tiny/versions/9"),
        "unknown model": replica.call("POST", "/v2/models/other/infer", {"inputs": []}),
        "unknown route": replica.call("GET", "/v3/anything"),
        "wrong method": replica.call("GET", "/v1/models/tiny:predict"),
    }
    for what, (status, body) in bad.items():
        assert 400 <= status < 500, (what, status, body)
        assert isinstance(body.get("error"), str) and body["error"], (what, body)
    assert bad["too large"][0] == 413
    assert bad["not JSON"][0] == 400
    assert bad["unknown version"][0] == 404 and bad["unknown model"][0] == 404
    assert "4" in bad["wrong shape (v2)"][1]["error"] or "refused" in \
        bad["wrong shape (v2)"][1]["error"]
    status, body = infer([1, 4], "INT64", [1, 2, 3, 4])
    assert status in (200, 400), body  # int input: the model's own rules (never a 500)

    assert replica.process.poll() is None
    assert replica.call("GET", "/v2/health/ready") == (200, {"ready": True})
    assert replica.call("POST", "/v1/models/tiny:predict", {"instances": X}) == \
        (200, {"predictions": expected[0]})


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_model_that_cannot_load_exits_2_with_one_line(package: Path, tmp_path: Path,
                                                        fmt: str) -> None:
    model = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    model.write_bytes(b"not a model at all")
    replica = start(env_python("pytorch"), package, model, fmt, tmp_path)
    try:
        assert replica.process.wait(timeout=120) == 2
    finally:
        stop(replica)
    lines = [ln for ln in replica.log.read_text().splitlines()
             if ln.startswith("studiohub.modelserver:")]
    assert len(lines) == 1, replica.log.read_text()
    assert lines[0].startswith(f"studiohub.modelserver: cannot load {model} as {fmt}: ")
    assert not replica.socket.exists()


def test_a_model_of_another_format_is_refused(package: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    replica = start(env_python("pytorch"), package, tmp_path, "onnx", tmp_path)
    try:
        assert replica.process.wait(timeout=120) == 2
    finally:
        stop(replica)
    assert "no model format recognised" in replica.log.read_text()


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_batching_gives_each_request_its_own_rows(package: Path, tmp_path: Path,
                                                  fmt: str) -> None:
    model, ((expected,), _), python = make_model(fmt, tmp_path)
    replica = start(python, package, model, fmt, tmp_path, "--batch-max", "8")
    try:
        wait_ready(replica)
        name = replica.call("GET", "/v2/models/tiny")[1]["inputs"][0]["name"]

        def client(k: int) -> list[tuple[int, list[float], Any]]:
            own = Replica(replica.process, replica.socket, replica.log)
            got = []
            for i in range(20):
                row = (k + i) % 2
                if i % 2:
                    status, body = own.call("POST", "/v1/models/tiny:predict",
                                            {"instances": [X[row]]})
                    got.append((status, expected[row], body.get("predictions", [None])[0]))
                else:
                    status, body = own.call("POST", "/v2/models/tiny/infer", {"inputs": [
                        {"name": name, "shape": [1, 4], "datatype": "FP32", "data": X[row]}]})
                    got.append((status, expected[row], body["outputs"][0]["data"]))
            return got

        with ThreadPoolExecutor(6) as pool:
            results = [r for part in pool.map(client, range(6)) for r in part]
    finally:
        stop(replica)
    assert len(results) == 120
    for status, want, got in results:
        assert status == 200
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
