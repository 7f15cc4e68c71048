"""A hub with the models service on, running the test framework environments, and the
calls and model makers the endpoint tests and benchmarks use.

:class:`ModelsHub` is a :class:`tests.jobtools.FrameworkHub` (StudioHub's own config,
``STUDIOHUB_PREFIX`` = the test environments) with the models service on its own port
and a fast supervision loop. Models are made **in the test**, by the image environment's
own Python, as the user who deploys them (:func:`make_model`), which also prints what
the model answers in-process for :data:`INPUT`, the numbers an endpoint must give back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from studiohub.users import ensure_user
from tests import ports
from tests.hubtools import User
from tests.jobtools import FrameworkHub, env_python

#: Two rows of four features: what every test model takes.
INPUT = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]

#: Scripts that save a tiny model to ``sys.argv[1]`` (its seed ``sys.argv[2]``, so two
#: versions give different numbers) and print its answer to INPUT as JSON, in-process.
MAKERS: dict[str, tuple[str, str, str]] = {
    # format: (image, file or folder name, script)
    "torchscript": ("pytorch", "net.pt", """
import json, sys, torch
torch.manual_seed(int(sys.argv[2]))
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
torch.jit.script(net).save(sys.argv[1])
with torch.inference_mode():
    print(json.dumps(net(torch.tensor(INPUT)).tolist()))
"""),
    "onnx": ("pytorch", "net.onnx", """
import json, sys
import numpy as np, onnx, onnxruntime
from onnx import helper, TensorProto, numpy_helper
rng = np.random.default_rng(int(sys.argv[2]))
w = rng.standard_normal((4, 3)).astype(np.float32)
b = rng.standard_normal(3).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["input", "w"], ["xw"]),
     helper.make_node("Add", ["xw", "b"], ["output"])], "net",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 3])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, sys.argv[1])
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(json.dumps(session.run(None, {"input": np.array(INPUT, np.float32)})[0].tolist()))
"""),
    "tensorflow-savedmodel": ("tensorflow", "savedmodel", """
import json, sys
import tensorflow as tf
tf.random.set_seed(int(sys.argv[2]))
class Net(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.random.normal((4, 3)))
        self.b = tf.Variable(tf.random.normal((3,)))
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def __call__(self, x):
        return {"scores": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}
net = Net()
tf.saved_model.save(net, sys.argv[1], signatures={"serving_default": net.__call__})
print(json.dumps(net(tf.constant(INPUT))["scores"].numpy().tolist()))
"""),
    "mxnet": ("mxnet", "mxnet", """
import json, os, sys
import mxnet as mx
mx.random.seed(int(sys.argv[2]))
net = mx.gluon.nn.HybridSequential()
net.add(mx.gluon.nn.Dense(3, in_units=4))
net.initialize(mx.init.Normal(1.0))
net.hybridize()
out = net(mx.nd.array(INPUT))
os.makedirs(sys.argv[1], exist_ok=True)
net.export(os.path.join(sys.argv[1], "net"))
print(json.dumps(out.asnumpy().tolist()))
"""),
}


def make_model(user: User, fmt: str, folder: str, seed: int = 0) -> tuple[str, Any]:
    """A tiny model of ``fmt`` in ``~/<folder>/``, made as the user by the image's Python:
    (its path relative to the home, its in-process answer to :data:`INPUT`)."""
    image, name, script = MAKERS[fmt]
    account = ensure_user(user.name)
    home = Path(account.pw_dir)
    target = home / folder
    subprocess.run(["/usr/sbin/runuser", "-u", account.pw_name, "--", "mkdir", "-p", str(target)],
                   check=True)
    source = f"INPUT = {json.dumps(INPUT)}\n" + script
    out = subprocess.run(
        ["/usr/sbin/runuser", "-u", account.pw_name, "--", str(env_python(image)), "-c", source,
         str(target / name), str(seed)], capture_output=True, text=True, timeout=300,
        cwd=home, env={"HOME": str(home), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL":
                       "3", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return f"{folder}/{name}", json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class ModelsHub(FrameworkHub):
    """A :class:`FrameworkHub` with the models service on (and the jobs service)."""

    models_port: int = 0

    @property
    def models_url(self) -> str:
        return f"{self.url}/services/models/"

    def write_config(self) -> Path:
        if not self.models_port:
            self.models_port = ports.free_port()
        self.settings = {**self.settings, "models": {"port": self.models_port,
                                                     "poll_interval": 0.2,
                                                     "auth_cache_seconds": 1}}
        return super().write_config()

    def wait_service(self, timeout: float = 120) -> None:
        super().wait_service(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The gateway answers first; the manager behind it once its API is up.
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.models_url}api/endpoints", timeout=2, headers={
                        "Authorization": f"token {self.admin_token}"}).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"models service not up after {timeout}s:\n{self.log_tail()}")


def api(hub: ModelsHub, user: User | None, method: str, path: str,
        **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {user.token}"} if user else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, f"{hub.models_url}api/{path}", headers=headers,
                            timeout=kwargs.pop("timeout", 120), **kwargs)


def predict(hub: ModelsHub, name: str, body: Any, token: str | None = None,
            path: str | None = None, **kwargs: Any) -> requests.Response:
    """A call of the endpoint through the hub's proxy (v1 ``:predict`` by default)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{hub.models_url}{name}/{path or f'v1/models/{name}:predict'}"
    return requests.post(url, json=body, headers=headers, timeout=kwargs.pop("timeout", 60),
                         **kwargs)


def deploy(hub: ModelsHub, user: User, name: str, model: Any, **fields: Any
           ) -> dict[str, Any]:
    r = api(hub, user, "POST", "endpoints", json={"name": name, "model": model, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


def wait_for(hub: ModelsHub, user: User, name: str,
             done: Callable[[dict[str, Any]], bool], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    endpoint: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = api(hub, user, "GET", f"endpoints/{name}")
        if r.status_code == 200:
            endpoint = r.json()
            if done(endpoint):
                return endpoint
            if endpoint["status"] == "failed":
                break
        time.sleep(0.3)
    raise TimeoutError(f"endpoint {name}: {json.dumps(endpoint)[:3000]}\n"
                       f"{hub.log_tail(4000)}")


def serving(version: int) -> Callable[[dict[str, Any]], bool]:
    """The endpoint serves ``version`` and nothing is starting or retiring."""
    def done(endpoint: dict[str, Any]) -> bool:
        states = {v["version"]: v["status"] for v in endpoint["versions"]}
        return states.get(version) == "serving" and "starting" not in states.values() and \
            endpoint["status"] == "ready"
    return done


def settled(endpoint: dict[str, Any]) -> bool:
    return endpoint["status"] in ("ready", "failed")


def remove_endpoints(hub: ModelsHub, users: list[User]) -> None:
    """Delete every endpoint of ``users`` (their replicas stop), then stop the balancer:
    what a test started never outlives its module."""
    for user in users:
        r = api(hub, user, "GET", "endpoints")
        for endpoint in r.json().get("endpoints", []) if r.status_code == 200 else []:
            api(hub, user, "DELETE", f"endpoints/{endpoint['name']}")
    stop_balancer(hub.state_dir)


def stop_balancer(state_dir: Path) -> None:
    from studiohub.serving.balancer import Balancer

    with contextlib.suppress(Exception):
        Balancer(state_dir / "endpoints" / "balancer").stop()


def in_process_close(got: Any, expected: Any) -> bool:
    """Same numbers as the model called in-process (float32 through JSON: 1e-6), same
    nesting (the hub's environment has no NumPy)."""
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            in_process_close(g, e) for g, e in zip(got, expected, strict=True))
    return isinstance(got, int | float) and not isinstance(got, bool) and \
        math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-7)


def env_ready(image: str) -> bool:
    return os.path.exists(env_python(image))
