"""Training jobs with the real frameworks, through a real hub and the real jobs service.

The hub is test_jobs.py's (StudioHub's own config, the jobs service on, the local
executor, real unix accounts), pointed at the framework environments that
tests/integration/test_frameworks.py builds into ``$STUDIOHUB_TEST_ENVS`` (the hub's
``STUDIOHUB_PREFIX``, which the hub passes on to the jobs service). Each job is small:
a few steps on random data, so the whole module fits a 2-core CI machine.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studiohub import contract, sdk
from studiohub.users import ensure_user
from tests.hubtools import User, shut_down
from tests.integration.test_frameworks import IMAGES
from tests.jobtools import (
    CATALOG,
    ENVS_PREFIX,
    FrameworkHub,
    JobsHub,
    call,
    env_python,
    finished,
    logs,
    submit,
    wait_for,
    write_script,
)

pytestmark = pytest.mark.integration

SIZE = "small"  # 1 vCPU + 2 GiB: TensorFlow's import alone needs more than "tiny"


def need_env(image: str) -> None:
    if not env_python(image).exists():
        pytest.skip(f"no {image} environment in {ENVS_PREFIX}: run test_frameworks.py first")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrameworkHub]:
    workdir = tmp_path_factory.mktemp("jobsfw")
    workdir.chmod(0o755)
    started = FrameworkHub(workdir, catalog=CATALOG)
    try:
        started.start()
        yield started
    finally:
        shut_down(started)


@pytest.fixture(scope="module")
def user(hub: JobsHub) -> User:
    return hub.new_user("jfw")


def run(hub: JobsHub, user: User, **spec: Any) -> dict[str, Any]:
    """Submit with the framework size and wait for the end (the job's last JSON)."""
    job = submit(hub, user, size=SIZE, **spec)
    return wait_for(hub, user, job["id"], finished, timeout=150)


def events(hub: JobsHub, user: User, job_id: str) -> list[dict[str, Any]]:
    return list(call(hub, user, "GET", f"jobs/{job_id}/events").json()["events"])


def last_json(text: str) -> dict[str, Any]:
    """The last line of a log that is a JSON object."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, text
    return dict(json.loads(lines[-1]))


@pytest.mark.parametrize("image", ["pytorch", "tensorflow", "mxnet"])
def test_a_single_process_job_trains_on_each_framework_image(hub: JobsHub, user: User,
                                                             image: str) -> None:
    """test_frameworks.py's training step, as a job: its loss in the log, going down."""
    need_env(image)
    step = IMAGES[image][0]
    write_script(user, f"train_{image}.py", "import os, sys\n"
                 f"sys.argv[1:] = [os.environ[{contract.TENSORBOARD_DIR!r}]]\n" + step)
    done = run(hub, user, image=image, script=f"train_{image}.py")
    text = logs(hub, user, done["id"])
    assert done["status"] == "succeeded", (done, text)
    losses = last_json(text)
    assert losses["last"] < 0.5 * losses["first"], text
    tags = call(hub, user, "GET", f"jobs/{done['id']}/metrics").json()["tags"]
    assert "loss" in tags and tags["loss"]["step"] == 19, tags


RESUMING = """
import os, time
import torch
from studiohub import checkpoints
torch.manual_seed(0)
X = torch.randn(64, 4); y = X @ torch.randn(4, 1)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
start = checkpoints.resume_pytorch(model, opt)
print("attempt", os.environ[ATTEMPT], "starts at step", start, flush=True)
for step in range(start, 30):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward()
    opt.step()
    checkpoints.save_pytorch(model, opt, step + 1)
    print(f"step {step + 1} loss {loss.item():.4f}", flush=True)
    time.sleep(0.3)
""".replace("ATTEMPT", repr(contract.ATTEMPT), 1)


def replica_pid(hub: JobsHub, job_id: str, attempt: int, replica: str) -> int:
    """The pid the executor's keeper recorded for a replica."""
    path = hub.state_dir / "jobs" / job_id / f"attempt-{attempt}.pids"
    return int(json.loads(path.read_text())["replicas"][replica]["pid"])


def test_a_killed_worker_resumes_from_its_last_checkpoint_on_attempt_two(
        hub: JobsHub, user: User) -> None:
    need_env("pytorch")
    write_script(user, "resuming.py", RESUMING)
    job = submit(hub, user, image="pytorch", size=SIZE, script="resuming.py", max_retries=1)
    deadline = time.monotonic() + 90
    while "step 5 " not in logs(hub, user, job["id"], attempt=1):
        assert time.monotonic() < deadline and not finished(
            call(hub, user, "GET", f"jobs/{job['id']}").json()), \
            logs(hub, user, job["id"], attempt=1)
        time.sleep(0.3)
    os.kill(replica_pid(hub, job["id"], 1, "worker-0"), signal.SIGKILL)
    # The resume should be reported while attempt 2 trains (≈ 8 s more here), not after.
    shown_while_running = wait_for(hub, user, job["id"], lambda j: finished(j) or (
        j["attempt"] == 2 and any("resumed from checkpoint" in e["message"]
                                  for e in events(hub, user, job["id"]))), timeout=120)
    done = wait_for(hub, user, job["id"], finished, timeout=120)
    second = logs(hub, user, job["id"], attempt=2)
    assert (done["status"], done["attempt"]) == ("succeeded", 2), (done, second)
    resumed = [line for line in second.splitlines() if line.startswith(contract.RESUMED_FROM)]
    assert resumed, second
    step = int(resumed[0].rsplit(" ", 1)[1])
    assert step >= 5 and f"starts at step {step}" in second and "step 30 loss" in second
    first = logs(hub, user, job["id"], attempt=1)
    assert f"step {step} loss" in first and f"step {step + 1} loss" not in first
    kinds = events(hub, user, job["id"])
    assert any("resumed from checkpoint" in e["message"] and f"step {step}" in e["message"]
               for e in kinds), kinds
    assert shown_while_running["status"] == "running", \
        "the 'resumed from checkpoint' event appeared only once attempt 2 had ended: the " \
        "keeper writes attempt-N.pids (where the service reads resume lines) only when a " \
        f"replica exits, not when it prints the line: {kinds}"


DDP = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
print(f"rank {dist.get_rank()} of {dist.get_world_size()} all_reduce {value.item():g}", flush=True)
dist.destroy_process_group()
"""


def test_a_two_worker_ddp_job_all_reduces(hub: JobsHub, user: User) -> None:
    need_env("pytorch")
    write_script(user, "ddp.py", DDP)
    done = run(hub, user, image="pytorch", script="ddp.py", workers=2)
    assert done["status"] == "succeeded", done
    for rank in (0, 1):
        assert f"rank {rank} of 2 all_reduce 3" in logs(hub, user, done["id"],
                                                        replica=f"worker-{rank}")


MULTI_WORKER = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
tf.random.set_seed(index)
X = tf.random.normal((64, 4)); y = X @ tf.constant([[1.0], [2.0], [3.0], [4.0]])
with strategy.scope():
    w = tf.Variable(tf.zeros((4, 1)))

@tf.function
def step():
    def replica_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((X @ w - y) ** 2)
        ctx = tf.distribute.get_replica_context()
        grad = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, tape.gradient(loss, w))
        w.assign_sub(0.1 * grad)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.constant(float(index + 1))), loss
    return strategy.run(replica_step)

total, first = step()
for _ in range(30):
    _, last = step()
print(f"worker {index} of {strategy.num_replicas_in_sync}: all_reduce {float(total):g}, "
      f"loss {float(first):.4f} -> {float(last):.4f}", flush=True)
"""


def test_a_two_worker_tf_multi_worker_mirrored_job_trains_together(hub: JobsHub,
                                                                   user: User) -> None:
    need_env("tensorflow")
    write_script(user, "mwms.py", MULTI_WORKER)
    done = run(hub, user, image="tensorflow", script="mwms.py", workers=2)
    texts = {r: logs(hub, user, done["id"], replica=r) for r in ("worker-0", "worker-1")}
    assert done["status"] == "succeeded", (done, texts)
    for index, text in enumerate(texts.values()):
        line = next(x for x in text.splitlines() if x.startswith(f"worker {index} of 2"))
        assert "all_reduce 3," in line, line
        before, after = (float(v) for v in line.split("loss ")[1].split(" -> "))
        assert after < 0.5 * before, line


MWMS_RESUMING = """
import json, os, time
import tensorflow as tf
from studiohub import checkpoints
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
X = tf.random.stateless_normal((64, 4), seed=(1, index))
y = X @ tf.constant([[1.0], [2.0], [3.0], [4.0]])
with strategy.scope():
    w = tf.Variable(tf.zeros((4, 1)))
    # sync-on-read, as a metric or BatchNorm's statistics: saving it is collective
    seen = tf.Variable(0.0, synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.SUM)
ckpt = tf.train.Checkpoint(w=w, seen=seen)
start = checkpoints.resume_tensorflow(ckpt)  # every worker, from the chief's checkpoint
print("attempt", os.environ[ATTEMPT], "starts at step", start, "seen", float(seen.numpy()),
      flush=True)

@tf.function
def step():
    def replica_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((X @ w - y) ** 2)
        ctx = tf.distribute.get_replica_context()
        w.assign_sub(0.05 * ctx.all_reduce("MEAN", tape.gradient(loss, w)))
        seen.assign_add(1.0)
        return loss
    return strategy.run(replica_step)

for s in range(start, 16):
    loss = step()
    checkpoints.save_tensorflow(ckpt, s + 1)  # on every worker: the save is collective
    print(f"step {s + 1} loss {float(loss):.4f}", flush=True)
    time.sleep(0.4)
print("done seen", float(seen.numpy()), flush=True)
""".replace("ATTEMPT", repr(contract.ATTEMPT), 1)


def test_a_two_worker_tf_job_saving_with_the_helper_resumes_after_a_kill(
        hub: JobsHub, user: User) -> None:
    """MultiWorkerMirroredStrategy with ``checkpoints.save_tensorflow`` called on both
    workers (docs/training.md): worker-1 is killed mid-run, attempt 2 starts both again
    and each resumes from the step the chief saved last, with its values."""
    need_env("tensorflow")
    # This checkout's SDK in the environment, as `studiohub env build` puts it there (an
    # environment built by an older checkout has the older helper).
    sdk.install_sdk(env_python("tensorflow").parent.parent)
    write_script(user, "mwms_resuming.py", MWMS_RESUMING)
    job = submit(hub, user, image="tensorflow", size=SIZE, script="mwms_resuming.py",
                 workers=2, max_retries=1)
    deadline = time.monotonic() + 120
    while "step 4 " not in logs(hub, user, job["id"], attempt=1, replica="worker-1"):
        assert time.monotonic() < deadline and not finished(
            call(hub, user, "GET", f"jobs/{job['id']}").json()), \
            [logs(hub, user, job["id"], attempt=1, replica=f"worker-{i}")[-3000:]
             for i in (0, 1)]
        time.sleep(0.3)
    os.kill(replica_pid(hub, job["id"], 1, "worker-1"), signal.SIGKILL)
    done = wait_for(hub, user, job["id"], finished, timeout=180)
    texts = {r: logs(hub, user, job["id"], attempt=2, replica=r)
             for r in ("worker-0", "worker-1")}
    assert (done["status"], done["attempt"]) == ("succeeded", 2), (done, texts)
    steps = set()
    for text in texts.values():
        resumed = [x for x in text.splitlines() if x.startswith(contract.RESUMED_FROM)]
        assert len(resumed) == 1, text
        step = int(resumed[0].rsplit(" ", 1)[1])
        assert step >= 4 and f"starts at step {step} seen {2.0 * step}" in text, text
        assert "step 16 loss" in text and "done seen 32.0" in text, text
        steps.add(step)
    assert len(steps) == 1  # both from the same checkpoint
    kinds = events(hub, user, job["id"])
    assert any("resumed from checkpoint" in e["message"] for e in kinds), kinds
    folder = Path(ensure_user(user.name).pw_dir) / done["dirs"]["checkpoints"]
    names = sorted(p.name for p in folder.iterdir())
    assert [n for n in names if n.endswith(".index")] == [
        "ckpt-14.index", "ckpt-15.index", "ckpt-16.index"], names
    assert not [n for n in names if n.startswith(".")], names  # no worker's scratch copy


KERAS_FIT = """
import json, os
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
task = json.loads(os.environ["TF_CONFIG"])["task"]
tf.random.set_seed(0)
X = tf.random.normal((256, 4))
y = X @ tf.constant([[1.0], [2.0], [3.0], [4.0]])
data = tf.data.Dataset.from_tensor_slices((X, y)).repeat().batch(32)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
checkpoints = os.environ["STUDIOHUB_CHECKPOINT_DIR"]
history = model.fit(data, epochs=5, steps_per_epoch=10, verbose=2, callbacks=[
    tf.keras.callbacks.BackupAndRestore(os.path.join(checkpoints, "backup")),
    tf.keras.callbacks.ModelCheckpoint(os.path.join(checkpoints, "model-{epoch}.keras")),
])
loss = history.history["loss"]
print(f"{task['type']} {task['index']} with {tf.keras.__name__.split('.')[0]}: "
      f"loss {loss[0]:.4f} -> {loss[-1]:.4f}", flush=True)
"""


def test_a_two_worker_keras_model_fit_job_trains_and_the_chief_checkpoints(
        hub: JobsHub, user: User) -> None:
    """The script a user writes from TensorFlow's multi-worker Keras tutorial: a
    Sequential model compiled under MultiWorkerMirroredStrategy, ``model.fit`` on a
    tf.data dataset with BackupAndRestore and ModelCheckpoint into the job's checkpoint
    folder. Keras 3 (the image's ``keras``) fails in ``fit`` under this strategy, so the
    job asks for the image's tf-keras with ``TF_USE_LEGACY_KERAS=1`` (docs/training.md)."""
    need_env("tensorflow")
    write_script(user, "keras_fit.py", KERAS_FIT)
    done = run(hub, user, image="tensorflow", script="keras_fit.py", workers=2,
               env={"TF_USE_LEGACY_KERAS": "1"})
    texts = {r: logs(hub, user, done["id"], replica=r) for r in ("worker-0", "worker-1")}
    assert done["status"] == "succeeded", (done, texts)
    for index, text in enumerate(texts.values()):
        line = next(x for x in text.splitlines() if x.startswith(f"worker {index} with"))
        assert "with tf_keras:" in line, line
        before, after = (float(v) for v in line.split("loss ")[1].split(" -> "))
        assert after < 0.1 * before, line
    account = ensure_user(user.name)
    folder = Path(account.pw_dir) / done["dirs"]["checkpoints"]
    saved = sorted(p.name for p in folder.glob("model-*.keras"))
    assert saved == [f"model-{epoch}.keras" for epoch in range(1, 6)], sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert (folder / "model-5.keras").stat().st_uid == account.pw_uid
    assert (folder / "model-5.keras").stat().st_size > 1000


PARAMETER_SERVER = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if resolver.task_type in ("worker", "ps"):
    print(resolver.task_type, resolver.task_id, "serving", flush=True)
    tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                         task_index=resolver.task_id, protocol="grpc", start=True).join()
strategy = tf.distribute.ParameterServerStrategy(resolver)
coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
tf.random.set_seed(0)
X = tf.random.normal((64, 4)); y = X @ tf.random.normal((4, 1))
with strategy.scope():
    w = tf.Variable(tf.zeros((4, 1)))

@tf.function
def step():
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((X @ w - y) ** 2)
    w.assign_sub(0.1 * tape.gradient(loss, w))
    return loss

first = coordinator.schedule(step)
coordinator.join()
for _ in range(30):
    last = coordinator.schedule(step)
coordinator.join()
print(f"chief trained: loss {first.fetch():.4f} -> {last.fetch():.4f}", flush=True)
"""


def test_a_tf_parameter_server_job_succeeds_when_its_chief_does(hub: JobsHub,
                                                                  user: User) -> None:
    """1 ps, 2 workers and the chief. The ps and worker tasks serve until killed (that is
    how TensorFlow's parameter-server training works), so the job is done when the chief,
    which runs the training loop, exits 0."""
    need_env("tensorflow")
    write_script(user, "ps_train.py", PARAMETER_SERVER)
    job = submit(hub, user, image="tensorflow", size=SIZE, script="ps_train.py", workers=2,
                 parameter_servers=1)
    try:
        chief_done = wait_for(hub, user, job["id"], lambda j: finished(j) or any(
            r["name"] == "chief-0" and r["exit_code"] is not None for r in j["replicas"]),
            timeout=150)
        text = logs(hub, user, job["id"], replica="chief-0")
        assert [r["name"] for r in chief_done["replicas"]] == \
            ["chief-0", "worker-0", "worker-1", "ps-0"]
        line = next(x for x in text.splitlines() if x.startswith("chief trained"))
        before, after = (float(v) for v in line.split("loss ")[1].split(" -> "))
        assert after < 0.5 * before, line
        # Given 15 s (the service polls every 0.2 s), the job must be over, and succeeded.
        done = wait_for(hub, user, job["id"], lambda j: True)
        deadline = time.monotonic() + 15
        while not finished(done) and time.monotonic() < deadline:
            time.sleep(0.5)
            done = wait_for(hub, user, job["id"], lambda j: True)
        assert done["status"] == "succeeded", \
            f"the chief exited 0 but the job is {done['status']}: {done['replicas']}"
    finally:
        call(hub, user, "POST", f"jobs/{job['id']}/cancel")


def notebook(*cells: tuple[str, list[str]]) -> str:
    """A minimal nbformat 4 notebook: (source, tags) per code cell."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}, "cells": [
        {"cell_type": "code", "id": f"cell{i}", "metadata": {"tags": tags},
         "execution_count": None, "outputs": [], "source": source}
        for i, (source, tags) in enumerate(cells)]})


def test_a_notebook_job_runs_with_its_parameters_into_outputs(hub: JobsHub,
                                                              user: User) -> None:
    need_env("base")
    write_script(user, "params.ipynb", notebook(
        ("rate = 0.5\nname = 'default'", ["parameters"]),
        ("print('rate times two is', rate * 2, 'for', name)", [])))
    done = run(hub, user, image="base", notebook="params.ipynb",
               parameters={"rate": 4, "name": "ten"})
    assert done["status"] == "succeeded", (done, logs(hub, user, done["id"]))
    home = Path(ensure_user(user.name).pw_dir)
    executed = json.loads((home / done["dirs"]["outputs"] / "params.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
    assert ["injected-parameters"] in tags, tags
    text = "".join("".join(o.get("text", "")) for c in executed["cells"]
                   for o in c.get("outputs", []))
    assert "rate times two is 8 for ten" in text, executed["cells"]


DIST_SYNC = """
import mxnet as mx
kv = mx.kv.create("dist_sync")
kv.init(3, mx.nd.zeros((2,)))
kv.push(3, mx.nd.ones((2,)) * (kv.rank + 1))
out = mx.nd.zeros((2,))
kv.pull(3, out=out)
print(f"rank {kv.rank} of {kv.num_workers} pulled {out.asnumpy().tolist()}", flush=True)
"""


def test_an_mxnet_dist_sync_job_with_one_server_and_two_workers(hub: JobsHub,
                                                                user: User) -> None:
    need_env("mxnet")
    write_script(user, "dist_sync.py", DIST_SYNC)
    done = run(hub, user, image="mxnet", script="dist_sync.py", workers=2,
               parameter_servers=1)
    assert [r["name"] for r in done["replicas"]] == \
        ["scheduler-0", "server-0", "worker-0", "worker-1"]
    texts = {r: logs(hub, user, done["id"], replica=r) for r in ("worker-0", "worker-1")}
    assert done["status"] == "succeeded", (done, texts)
    for text in texts.values():
        assert "of 2 pulled [3.0, 3.0]" in text, texts
