"""Every CPU image builds with the real command and trains: a few gradient steps on random
data in the environment's own python, loss going down, event files for TensorBoard; and its
kernel spec starts a real kernel that imports the framework.

Environments are kept in ``$STUDIOHUB_TEST_ENVS`` (default /var/tmp/studiohub-test-envs)
across runs: the build is skipped by hash when nothing changed, so a second run is instant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ENVS_PREFIX = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs"))

NUMPY_STEP = """
import json, sys
import matplotlib, numpy as np, pandas as pd
matplotlib.use("Agg")
rng = np.random.default_rng(0)
X = rng.normal(size=(256, 8)); y = X @ rng.normal(size=8) + 0.1 * rng.normal(size=256)
w, losses = np.zeros(8), []
for _ in range(20):
    err = X @ w - y
    losses.append(float((err ** 2).mean()))
    w -= 0.1 * 2 * X.T @ err / len(y)
pd.Series(losses).plot().figure.savefig(sys.argv[1] + "/loss.png")
print(json.dumps({"first": losses[0], "last": losses[-1]}))
"""

TORCH_STEP = """
import json, sys
import torch
from torch.utils.tensorboard import SummaryWriter
torch.manual_seed(0)
X = torch.randn(256, 8); y = X @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
writer, losses = SummaryWriter(sys.argv[1]), []
for step in range(20):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    writer.add_scalar("loss", loss.item(), step)
writer.close()
print(json.dumps({"first": losses[0], "last": losses[-1], "cuda": torch.cuda.is_available()}))
"""

TF_STEP = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
tf.random.set_seed(0)
X = tf.random.normal((256, 8)); y = X @ tf.random.normal((8, 1)) + 0.1 * tf.random.normal((256, 1))
model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(1)])
opt = tf.keras.optimizers.SGD(0.1)
writer, losses = tf.summary.create_file_writer(sys.argv[1]), []
for step in range(20):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(X) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    losses.append(float(loss))
    with writer.as_default():
        tf.summary.scalar("loss", loss, step=step)
writer.flush()
print(json.dumps({"first": losses[0], "last": losses[-1]}))
"""

MXNET_STEP = """
import json, sys
import mxnet as mx
from mxnet import autograd, gluon, nd
from tensorboardX import SummaryWriter
mx.random.seed(0)
X = nd.random.normal(shape=(256, 8))
y = nd.dot(X, nd.random.normal(shape=(8, 1))) + 0.1 * nd.random.normal(shape=(256, 1))
net = gluon.nn.Dense(1)
net.initialize(mx.init.Normal(0.1))
trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
loss_fn, writer, losses = gluon.loss.L2Loss(), SummaryWriter(sys.argv[1]), []
for step in range(20):
    with autograd.record():
        loss = loss_fn(net(X), y)
    loss.backward()
    trainer.step(X.shape[0])
    losses.append(float(loss.mean().asscalar()))
    writer.add_scalar("loss", losses[-1], step)
writer.close()
print(json.dumps({"first": losses[0], "last": losses[-1]}))
"""

# image id -> (training step, module the kernel must import, writes TensorBoard events)
IMAGES = {
    "base": (NUMPY_STEP, "numpy", False),
    "pytorch": (TORCH_STEP, "torch", True),
    "tensorflow": (TF_STEP, "tensorflow", True),
    "mxnet": (MXNET_STEP, "mxnet", True),
}


def studiohub_env(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real ``studiohub env …`` command against the test prefix; (result, seconds)."""
    ENVS_PREFIX.mkdir(parents=True, exist_ok=True)
    ENVS_PREFIX.chmod(0o755)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "studiohub.cli", "env", *args],
                            env={**os.environ, "STUDIOHUB_PREFIX": str(ENVS_PREFIX)},
                            capture_output=True, text=True, timeout=1800, check=False)
    return result, time.monotonic() - started


@pytest.fixture(scope="module", params=list(IMAGES))
def built(request: pytest.FixtureRequest) -> str:
    """Build (or find up to date) one image's environment with ``studiohub env build``."""
    image: str = request.param
    result, seconds = studiohub_env("build", image)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\n{image}: `studiohub env build` took {seconds:.0f} s: {result.stdout.strip()}")
    return image


def test_training_step_lowers_the_loss(built: str, tmp_path: Path) -> None:
    step, _, events = IMAGES[built]
    python = ENVS_PREFIX / "envs" / built / "bin" / "python"
    result = subprocess.run([str(python), "-c", step, str(tmp_path)], capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["last"] < 0.5 * losses["first"], losses
    assert losses.get("cuda") in (None, False), "a CPU image must not see CUDA"
    if events:
        assert list(tmp_path.rglob("events.out.tfevents.*")), "no TensorBoard event file"


def test_kernel_spec_starts_a_kernel_with_the_framework(built: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    _, module, _ = IMAGES[built]
    ksm = KernelSpecManager(kernel_dirs=[str(ENVS_PREFIX / "share/jupyter/kernels")])
    km = KernelManager(kernel_name=f"studiohub-{built}", kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    out: list[str] = []
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive(
            f"import sys, {module}; print(sys.prefix, {module}.__name__)", timeout=120,
            output_hook=lambda msg: out.append(msg["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    assert "".join(out).split() == [str(ENVS_PREFIX / "envs" / built), module]


def test_second_build_is_a_no_op(built: str) -> None:
    before = (ENVS_PREFIX / "envs" / built).resolve()
    result, _ = studiohub_env("build", built)
    assert result.returncode == 0, result.stderr
    assert f"{built}: up to date (hash " in result.stdout
    assert (ENVS_PREFIX / "envs" / built).resolve() == before  # the same build, not a new one
