"""studiohub.checkpoints: save at step 3, resume at step 3, in each framework's real
environment (the SDK package as studiohub.sdk installs it, run by the image's python).

The environments are the integration tests' (``$STUDIOHUB_TEST_ENVS``, default
/var/tmp/studiohub-test-envs); a missing one is a skip that says so (a failure under
PYTEST_REQUIRE_ALL=1, tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studiohub import checkpoints, contract, sdk

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
                                                       "contract.py", "training.py"]
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
