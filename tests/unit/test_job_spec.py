"""A training job's spec: every field checked, every refusal naming the field and what to do."""

from __future__ import annotations

from typing import Any

import pytest

from studiohub.jobs.spec import SpecError, parse_duration, parse_spec, resolve_in_home


def test_a_notebook_job_with_parameters_and_everything_else_defaulted() -> None:
    spec = parse_spec({"notebook": "experiments/train.ipynb", "image": "pytorch",
                       "size": "small", "parameters": {"lr": 0.1, "epochs": 3}})
    assert spec.entry == "notebook"
    assert (spec.notebook, spec.workers, spec.parameter_servers, spec.max_retries,
            spec.timeout) == ("experiments/train.ipynb", 1, 0, 0, None)
    assert spec.as_dict()["notebook"] == "experiments/train.ipynb"
    assert spec.as_dict()["parameters"] == {"lr": 0.1, "epochs": 3}


def test_a_distributed_script_job_from_git() -> None:
    spec = parse_spec({"script": "train.py", "args": ["--epochs", "2"], "workers": 2,
                       "parameter_servers": 1, "max_retries": 3, "timeout": "1h",
                       "git": {"url": "file:///srv/repo.git", "ref": "v1.2"},
                       "env": {"DATA": "/data"}})
    assert (spec.workers, spec.parameter_servers, spec.max_retries, spec.timeout) == \
        (2, 1, 3, 3600)
    assert spec.git is not None and (spec.git.url, spec.git.ref) == ("file:///srv/repo.git",
                                                                     "v1.2")
    assert spec.as_dict()["git"] == {"url": "file:///srv/repo.git", "ref": "v1.2"}


def test_a_command_given_as_one_string_is_split_like_a_shell() -> None:
    assert parse_spec({"command": "python -c 'print(1)'"}).command == \
        ("python", "-c", "print(1)")


def test_home_relative_paths_are_normalised() -> None:
    assert parse_spec({"script": "~/a/../b/train.py"}).script == "b/train.py"


@pytest.mark.parametrize(("spec", "message"), [
    ([], "a job spec is a JSON object"),
    ({"script": "t.py", "gpus": 1}, "gpus: unknown field; allowed:"),
    ({}, "give exactly one of notebook, script, module or command (got none)"),
    ({"script": "t.py", "command": ["ls"]}, "(got script, command)"),
    ({"script": "t.py", "workers": -1}, "workers: -1 is out of range: 1 to 64"),
    ({"script": "t.py", "workers": 10**6}, "workers: 1000000 is out of range: 1 to 64"),
    ({"script": "t.py", "workers": "2"}, "workers: must be an integer, not '2'"),
    ({"script": "t.py", "workers": True}, "workers: must be an integer, not True"),
    ({"script": "../other/t.py"}, "script: '../other/t.py' is outside your home"),
    ({"script": "/etc/passwd.py"}, "script: '/etc/passwd.py' is outside your home"),
    ({"notebook": "train.py"}, "notebook: 'train.py' is not a .ipynb file"),
    ({"script": "t.py", "parameters": {"a": 1}}, "parameters: only for a notebook"),
    ({"notebook": "n.ipynb", "args": ["x"]}, "args: only for a script, a module or a command"),
    ({"notebook": "n.ipynb", "parameters": {"1x": 1}}, "parameters: '1x' is not a Python name"),
    ({"notebook": "n.ipynb", "parameters": {"x": [1]}}, "parameters.x: must be a string"),
    ({"script": "t.py", "timeout": "soon"}, "timeout: 'soon' is not a duration"),
    ({"script": "t.py", "env": {"RANK": "3"}}, "env: RANK is set by StudioHub"),
    ({"script": "t.py", "env": {"STUDIOHUB_JOB_ID": "x"}}, "env: STUDIOHUB_JOB_ID is set"),
    ({"module": "os; rm"}, "module: 'os; rm' is not a Python module name"),
    ({"script": "t.py", "git": {"url": "--upload-pack=x"}}, "git.url: a repository URL"),
    ({"script": "t.py", "git": {"url": "file:///r", "ref": "--x"}}, "git.ref: a branch"),
    ({"script": "t\x00.py"}, "script: 't\\x00.py' is too long or holds a NUL character"),
])
def test_bad_specs_are_refused_naming_the_field(spec: Any, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec)
    assert message in str(error.value)


def test_a_huge_value_is_quoted_short() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({"script": "t.py", "image": "x" * 20_000_000})
    assert len(str(error.value)) < 200


def test_durations() -> None:
    assert [parse_duration(v) for v in (None, 0, 90, "90", "90s", "15m", "2h", "1d")] == \
        [None, None, 90, 90, 90, 900, 7200, 86400]


def test_resolve_in_home_never_leaves_the_home() -> None:
    assert resolve_in_home("/home/alice", "runs/train.py") == "/home/alice/runs/train.py"
    with pytest.raises(SpecError, match="outside your home"):
        resolve_in_home("/home/alice", "../bob/train.py")
