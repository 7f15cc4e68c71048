"""What a job's replica runs (studiohub.jobs.runner), against literal argv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from studiohub.jobs.runner import entry_path, make_base_env, make_command, parameter_args
from studiohub.jobs.spec import parse_spec

PY = "/opt/studiohub/envs/pytorch/bin/python"
CODE, OUT = "/home/jupyter-a/studiohub-jobs/0123456789ab/code", "/home/o/outputs"


def command(data: dict[str, object], **kw: str) -> list[str]:
    return make_command(parse_spec({"image": "pytorch", **data}), PY, code_dir=CODE,
                        output_dir=OUT, **kw)


def test_script_runs_from_the_snapshot_with_its_args() -> None:
    assert command({"script": "proj/train.py", "args": ["--lr", "0.1"]}) == \
        [PY, f"{CODE}/train.py", "--lr", "0.1"]


def test_script_from_git_keeps_its_path_in_the_repository() -> None:
    assert command({"script": "src/train.py", "git": {"url": "file:///r"}}) == \
        [PY, f"{CODE}/src/train.py"]


def test_module_and_command() -> None:
    assert command({"module": "trainer.main", "args": ["-x"]}) == [PY, "-m", "trainer.main",
                                                                   "-x"]
    assert command({"command": "torchrun --nproc-per-node 2 t.py"}) == \
        ["torchrun", "--nproc-per-node", "2", "t.py"]


def test_notebook_runs_papermill_with_the_images_kernel() -> None:
    argv = command({"notebook": "nb/Train.ipynb", "parameters": {"lr": 1e-05, "name": "007",
                                                                  "on": True, "n": None}},
                   hub_python="/hub/bin/python")
    assert argv == ["/hub/bin/python", "-m", "papermill", f"{CODE}/Train.ipynb",
                    f"{OUT}/Train.ipynb", "-k", "studiohub-pytorch", "--language", "python",
                    "--cwd", CODE, "--log-output", "--no-progress-bar", "-p", "lr", "1e-05",
                    "-r", "name", "007", "-p", "on", "True", "-p", "n", "None"]


def test_notebook_needs_the_hub_python() -> None:
    with pytest.raises(ValueError, match="papermill"):
        command({"notebook": "a.ipynb"})


def test_entry_path() -> None:
    assert entry_path(parse_spec({"script": "a/b/c.py"})) == "c.py"
    assert entry_path(parse_spec({"module": "m"})) == ""


def test_base_env_puts_the_image_first_and_unbuffers() -> None:
    env = make_base_env("/e/bin", jupyter_data="/opt/studiohub/share/jupyter")
    assert env == {"PATH": "/e/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "PYTHONUNBUFFERED": "1", "JUPYTER_PATH": "/opt/studiohub/share/jupyter"}


def test_papermill_gives_each_parameter_its_type(tmp_path: Path) -> None:
    """The argv's parameters, read back by papermill itself, keep their Python types."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("lr = 0.1\nname = 'x'\non = False\nn = 3")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(1)")]
    source, target = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    args = parameter_args({"lr": 1e-05, "name": "007", "on": True, "n": None})
    subprocess.run([sys.executable, "-m", "papermill", str(source), str(target),
                    "--prepare-only", "-k", "python3", "--language", "python", *args],
                   check=True, capture_output=True)
    injected = next(c for c in json.loads(target.read_text())["cells"]
                    if "injected-parameters" in c["metadata"].get("tags", []))
    assert set("".join(injected["source"]).splitlines()) >= {
        "lr = 1e-05", 'name = "007"', "on = True", "n = None"}
