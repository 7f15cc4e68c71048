"""What one replica of a job runs: its argv, its working folder, its base environment.

Pure functions of the checked spec (:class:`~studiohub.jobs.spec.JobSpec`) and a few paths;
the service puts the result in the :class:`~studiohub.jobs.model.AttemptPlan`, the local
executor runs it as the user. Every replica of a job runs the same argv (the generated
variables tell them apart).

- script: ``<python> <code>/<script> args…`` (the image environment's python);
- module: ``<python> -m <module> args…``, the code folder as working folder (so the
  snapshot's packages import);
- command: the user's words as they are, with the image environment's ``bin`` first on
  ``PATH`` (so ``python``, ``torchrun``, ``pip`` are the image's);
- notebook: papermill, from the hub environment, executes ``code/<nb>`` top to bottom into
  ``outputs/<nb>`` (outputs kept, saved after each cell) with the kernel of the image
  (``studiohub-<image>``, its spec found through ``JUPYTER_PATH``; every image's kernel
  is Python, so a notebook without language metadata runs too), parameters injected
  into the cell tagged ``parameters``. Strings go with ``-r`` (raw: ``"007"`` stays a
  string), other values with ``-p`` (papermill reads ``1e-05``, ``True``, ``None``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from .. import contract
from .spec import JobSpec

#: PATH after the image environment's bin (the same as a user's server gets).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def entry_path(spec: JobSpec) -> str:
    """The entry file relative to the snapshot (``code/``).

    From the home, the snapshot is the entry's folder (snapshot.py): the file's own name.
    From Git, the snapshot is the repository: the spec's path as it is in the repository.
    """
    path = spec.notebook or spec.script or ""
    return path if spec.git else posixpath.basename(path)


def make_command(spec: JobSpec, python: str, *, code_dir: str, output_dir: str,
                 hub_python: str = "") -> list[str]:
    """The argv every replica of ``spec`` runs.

    ``python`` is the image environment's interpreter; ``hub_python`` the hub
    environment's (papermill lives there), needed for notebooks only.
    """
    if spec.script:
        return [python, posixpath.join(code_dir, entry_path(spec)), *spec.args]
    if spec.module:
        return [python, "-m", spec.module, *spec.args]
    if spec.command:
        return list(spec.command)
    if spec.notebook:
        if not hub_python:
            raise ValueError("a notebook job needs the hub environment's python (papermill)")
        name = entry_path(spec)
        return [hub_python, "-m", "papermill", posixpath.join(code_dir, name),
                posixpath.join(output_dir, name), "-k", contract.kernel_name(spec.image or ""),
                "--language", "python", "--cwd", code_dir, "--log-output", "--no-progress-bar",
                *parameter_args(spec.parameters)]
    raise ValueError("the spec has no notebook, script, module or command")


def parameter_args(parameters: Mapping[str, Any]) -> list[str]:
    """papermill's ``-r NAME VALUE`` for strings (kept as text) and ``-p`` for the rest."""
    args: list[str] = []
    for name, value in parameters.items():
        if isinstance(value, str):
            args += ["-r", name, value]
        else:
            args += ["-p", name, "None" if value is None else repr(value)]
    return args


def make_base_env(env_bin: str, *, jupyter_data: str = "", path: str = SYSTEM_PATH
                  ) -> dict[str, str]:
    """What every replica runs with besides its generated variables: the image's ``bin``
    first on ``PATH``, kernel specs on ``JUPYTER_PATH`` (notebooks), unbuffered Python
    output (so logs are live, not written when a 8 KiB buffer fills)."""
    env = {"PATH": os.pathsep.join((env_bin, path)), "PYTHONUNBUFFERED": "1"}
    if jupyter_data:
        env["JUPYTER_PATH"] = jupyter_data
    return env
