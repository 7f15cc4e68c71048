"""The Python environments TensorBoard's tests and benchmark need, built once and reused.

* ``tensorboard``: the light environment StudioHub serves TensorBoard from
  (``images/tensorboard/requirements.txt``: TensorBoard without TensorFlow), built with
  :func:`studiohub.envbuild.build_env` like every StudioHub environment.
* the writers' environment: PyTorch (CPU) + tensorboardX + tensorboard, to write event
  files the way users' training code does. Cached under ``<prefix>/cache``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "images" / "tensorboard" / "requirements.txt"
EVENTS_SCRIPT = Path(__file__).with_name("events.py")
WRITERS = ("torch==2.13.0", "tensorboard==2.21.0", "tensorboardX==2.6.5")


def ensure_tensorboard_env() -> Path:
    """The light environment's interpreter (``envs/tensorboard/bin/python``)."""
    from studiohub.envbuild import build_env, env_python

    build_env("tensorboard", [REQUIREMENTS], imports=["tensorboard"])
    return env_python("tensorboard")


def ensure_writers_env() -> Path:
    from studiohub.paths import paths

    venv = paths().prefix / "cache" / "tensorboard-writers"
    python = venv / "bin" / "python"
    check = "import torch.utils.tensorboard, tensorboardX"
    if python.exists() and subprocess.run([str(python), "-c", check],
                                          capture_output=True).returncode == 0:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *WRITERS], check=True)
    return python


if __name__ == "__main__":
    print(ensure_tensorboard_env())
    print(ensure_writers_env())
