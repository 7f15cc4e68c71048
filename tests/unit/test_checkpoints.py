"""studiohub.checkpoints: save at step 3, resume at step 3, in each framework's real
environment (the SDK package as studiohub.sdk installs it, run by the image's python).

The environments are the integration tests' (``$STUDIOHUB_TEST_ENVS``, default
/var/tmp/studiohub-test-envs); a missing one is a skip that says so (a failure under
PYTEST_REQUIRE_ALL=1, tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from studiohub import checkpoints, contract, sdk
from tests.ports import free_port

ENVS = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs")) / "envs"

SCRIPTS = {
    "pytorch": """
import torch
from studiohub import checkpoints
torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
step = checkpoints.resume_pytorch(model, opt)
print("START", step, float(model.weight.sum()))
for s in range(step, 3):
    loss = model(torch.ones(1, 4)).sum()
    opt.zero_grad(); loss.backward(); opt.step()
    checkpoints.save_pytorch(model, opt, s + 1)
print("END", float(model.weight.sum()))
""",
    "tensorflow": """
import tensorflow as tf
from studiohub import checkpoints
v = tf.Variable(0.0)
ckpt = tf.train.Checkpoint(v=v)
step = checkpoints.resume_tensorflow(ckpt)
print("START", step, float(v.numpy()))
for s in range(step, 3):
    v.assign_add(1.5)
    checkpoints.save_tensorflow(ckpt, s + 1)
print("END", float(v.numpy()))
""",
    "mxnet": """
import mxnet as mx
from mxnet import gluon, autograd
from studiohub import checkpoints
mx.random.seed(0)
net = gluon.nn.Dense(2, in_units=4)
net.initialize()
trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
step = checkpoints.resume_mxnet(net, trainer)
print("START", step, float(net.weight.data().sum().asscalar()))
for s in range(step, 3):
    with autograd.record():
        loss = net(mx.nd.ones((1, 4))).sum()
    loss.backward(); trainer.step(1)
    checkpoints.save_mxnet(net, trainer, s + 1)
print("END", float(net.weight.data().sum().asscalar()))
""",
}


def run(python: Path, script: str, pkg: Path, ckpt: Path) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ckpt.parent), "PYTHONPATH": str(pkg),
           contract.CHECKPOINT_DIR: str(ckpt), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(python), "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


@pytest.mark.parametrize("framework", sorted(SCRIPTS))
def test_save_at_step_3_then_resume_at_step_3(framework: str, tmp_path: Path) -> None:
    python = ENVS / framework / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no {framework} test environment at {python.parent.parent}")
    pkg = tmp_path / "sdk"
    pkg.mkdir()
    sdk.write_package(pkg / "studiohub")
    ckpt = tmp_path / "checkpoints"

    first = run(python, SCRIPTS[framework], pkg, ckpt)
    assert first[0].startswith("START 0 ")  # nothing to resume: step 0, no line
    assert not any(line.startswith(contract.RESUMED_FROM) for line in first)
    trained = first[-1].split()[1]

    second = run(python, SCRIPTS[framework], pkg, ckpt)
    resumed = [line for line in second if line.startswith(contract.RESUMED_FROM)]
    assert len(resumed) == 1
    assert resumed[0].startswith(f"{contract.RESUMED_FROM} {ckpt}/ckpt-3")
    assert resumed[0].endswith(" step 3")
    start = second[next(i for i, line in enumerate(second) if line.startswith("START"))]
    assert start.split()[1:] == ["3", trained]  # the step and the weights of step 3
    assert second[-1] == f"END {trained}"  # nothing left to train
    # The newest three are kept, nothing half-written is left behind.
    assert not [p for p in ckpt.iterdir() if ".tmp-" in p.name]


MULTI_WORKER = """
import json, os, signal
import tensorflow as tf
from studiohub import checkpoints
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    v = tf.Variable(0.0)
    # Sync-on-read (like a metric or BatchNorm's statistics): reading it for a save is
    # an all-reduce across the workers, so a save needs every worker.
    seen = tf.Variable(0.0, synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.SUM)
ckpt = tf.train.Checkpoint(v=v, seen=seen)
step = checkpoints.resume_tensorflow(ckpt)
print("START", step, float(v.numpy()), float(seen.numpy()), flush=True)

@tf.function
def train():
    def replica():
        ctx = tf.distribute.get_replica_context()
        v.assign_add(ctx.all_reduce("SUM", tf.constant(float(index + 1))))
        seen.assign_add(1.0)
    strategy.run(replica)

for s in range(step, 6):
    train()
    checkpoints.save_tensorflow(ckpt, s + 1)
    if s + 1 == int(os.environ.get("KILL_AT", "0")):
        os.kill(os.getpid(), signal.SIGKILL)  # as a failed attempt's replicas are
print("END", float(v.numpy()), float(seen.numpy()), flush=True)
"""


def run_cluster(python: Path, pkg: Path, ckpt: Path, **env: str) -> list[list[str]]:
    """MULTI_WORKER as a 2-worker cluster on this host (the ``TF_CONFIG`` a job's
    replicas get); each worker's stdout lines, once both have ended."""
    port = free_port(1)
    workers = [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]
    procs = []
    for index in (0, 1):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [str(python), "-c", MULTI_WORKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(ckpt.parent),
                            "PYTHONPATH": str(pkg), contract.CHECKPOINT_DIR: str(ckpt),
                            "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config),
                            **env}))
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    expected = -signal.SIGKILL if "KILL_AT" in env else 0
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == expected, err[-3000:]
    return [out.splitlines() for out, _ in outputs]


def test_a_two_worker_tf_cluster_saves_on_every_worker_and_resumes_after_a_kill(
        tmp_path: Path) -> None:
    """Under MultiWorkerMirroredStrategy a save is collective: every worker calls
    save_tensorflow (a chief-only save waits for the others), the chief writes the folder,
    the other worker's copy is gone. Both workers are killed after step 3 (a failed
    attempt); a second run of both (attempt 2) resumes each from the chief's step 3."""
    python = ENVS / "tensorflow" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no tensorflow test environment at {python.parent.parent}")
    pkg = tmp_path / "sdk"
    pkg.mkdir()
    sdk.write_package(pkg / "studiohub")
    ckpt = tmp_path / "checkpoints"

    first = run_cluster(python, pkg, ckpt, KILL_AT="3")
    assert [out[0] for out in first] == ["START 0 0.0 0.0"] * 2
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint", *(f"ckpt-{n}.{s}" for n in (1, 2, 3)
                        for s in ("data-00000-of-00001", "index"))]

    second = run_cluster(python, pkg, ckpt)
    for out in second:
        assert [x for x in out if x.startswith(contract.RESUMED_FROM)] == [
            f"{contract.RESUMED_FROM} {ckpt}/ckpt-3 step 3"]
        # Step 3's values: v gains 1 + 2 a step; seen, summed over both workers, 2.
        assert out[-2:] == ["START 3 9.0 6.0", "END 18.0 12.0"], out
    assert sorted(p.name for p in ckpt.iterdir() if p.suffix == ".index") == [
        "ckpt-4.index", "ckpt-5.index", "ckpt-6.index"]
    assert not [p for p in ckpt.iterdir() if p.name.startswith(".")]


def test_a_tf_worker_that_is_not_the_chief_leaves_the_folder_to_the_chief(
        tmp_path: Path) -> None:
    """Worker 1's save is a real save (the collective needs it) into its own scratch
    folder, deleted at once: the shared folder is the chief's alone (a stale scratch
    folder from a killed save goes too)."""
    python = ENVS / "tensorflow" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no tensorflow test environment at {python.parent.parent}")
    pkg = tmp_path / "sdk"
    pkg.mkdir()
    sdk.write_package(pkg / "studiohub")
    ckpt = tmp_path / "checkpoints"
    (ckpt / ".worker-1.tmp").mkdir(parents=True)
    (ckpt / ".worker-1.tmp" / "ckpt-9.index").write_text("left by a killed save")
    script = ("import tensorflow as tf\nfrom studiohub import checkpoints\n"
              "ckpt = tf.train.Checkpoint(v=tf.Variable(2.0))\n"
              "print(checkpoints.save_tensorflow(ckpt, 1))\n")
    tf_config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                 "task": {"type": "worker", "index": 1}}
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pkg),
                                            contract.CHECKPOINT_DIR: str(ckpt),
                                            "TF_CPP_MIN_LOG_LEVEL": "3",
                                            "TF_CONFIG": json.dumps(tf_config)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [f"{ckpt}/ckpt-1"]  # the chief's path
    assert list(ckpt.iterdir()) == []


@pytest.mark.parametrize(("tf_config", "chief"), [
    (None, True),
    ("", True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": 0}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", '
     '"index": 0}}', True),
    ('{"cluster": {"worker": ["a:1"]}, "task": {}}', True),
])
def test_tf_is_chief_follows_tensorflows_rule(monkeypatch: pytest.MonkeyPatch,
                                              tf_config: str | None, chief: bool) -> None:
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    assert checkpoints.tf_is_chief() is chief


def test_the_sdk_imports_without_any_framework(tmp_path: Path) -> None:
    pkg = tmp_path / "sdk"
    pkg.mkdir()
    sdk.write_package(pkg / "studiohub")
    code = ("import sys; from studiohub import checkpoints, training; "
            "bad = {'torch', 'tensorflow', 'mxnet', 'ipywidgets', 'yaml', 'tornado'} & "
            "set(sys.modules); print(sorted(bad))")
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=pkg, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_latest_takes_the_highest_complete_step(tmp_path: Path) -> None:
    for name in ("ckpt-2.pt", "ckpt-10.pt", "ckpt-11.pt.tmp-5", ".ckpt-12.pt.tmp-1",
                 "ckpt-7.index", "notes.txt"):
        (tmp_path / name).write_text("x")
    found = checkpoints.latest(tmp_path, ".pt")
    assert found == checkpoints.Checkpoint(tmp_path / "ckpt-10.pt", 10)
    assert checkpoints.latest(tmp_path, ".index") == \
        checkpoints.Checkpoint(tmp_path / "ckpt-7", 7)
    assert checkpoints.latest(tmp_path / "empty") is None


def test_announce_prints_the_line_the_executor_reads(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    from studiohub.jobs import keeper

    assert checkpoints.announce(checkpoints.Checkpoint(tmp_path / "ckpt-3.pt", 3)) == 3
    line = capsys.readouterr().out
    assert line == f"{contract.RESUMED_FROM} {tmp_path}/ckpt-3.pt step 3\n"
    assert line.encode().startswith(keeper.RESUMED)


def test_install_sdk_puts_the_package_in_the_envs_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    target = sdk.install_sdk(tmp_path / "env")
    assert target == site / "studiohub"
    assert sorted(p.name for p in target.iterdir()) == ["__init__.py", "checkpoints.py",
                                                       "contract.py", "endpoints.py",
                                                       "modelserver", "training.py"]
    assert (target / "modelserver" / "__main__.py").is_file()
    assert (target / "training.py").read_text() == Path(training_file()).read_text()
    assert oct((target / "contract.py").stat().st_mode & 0o777) == "0o644"
    (target / "training.py").write_text("stale")
    sdk.install_sdk(tmp_path / "env")  # again: refreshed
    assert (target / "training.py").read_text() == Path(training_file()).read_text()
    with pytest.raises(FileNotFoundError, match="not a venv"):
        sdk.install_sdk(tmp_path / "nothing")


def training_file() -> str:
    from studiohub import training
    return str(training.__file__)
