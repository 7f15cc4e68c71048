"""``studiohub jobs …`` against the jobs service's real API (tests/jobsapi.py): a spec from
flags and from a YAML file, refusals and malformed files as one line and a non-zero exit
(never a traceback), ``logs -f`` exiting with the job's outcome, and the other verbs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studiohub import contract
from studiohub.cli import main
from tests.jobsapi import JobsAPI, serve


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsAPI]:
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", contract.JOBS_URL):
        monkeypatch.delenv(name, raising=False)
    for service in serve(tmp_path):
        monkeypatch.setenv(contract.JOBS_URL, service.url)
        monkeypatch.setenv(contract.API_TOKEN, "alice-token")
        yield service


def jobs(*argv: str) -> int:
    return main(["jobs", *argv])


def only_job(api: JobsAPI) -> Any:
    [job] = api.all_jobs()
    return job


def test_submit_with_flags(api: JobsAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert jobs("submit", "--notebook", "nb/train.ipynb", "--image", "base", "--size",
                "small", "--workers", "2", "--max-retries", "3", "--timeout", "90m",
                "-p", "lr=0.1", "-p", "name=abc", "-p", "fast=true",
                "-e", "SEED=7", "--name", "try") == 0
    job = only_job(api)
    assert capsys.readouterr().out == f"submitted job {job.id} (queued)\n"
    spec = job.spec
    assert spec["notebook"] == "nb/train.ipynb" and spec["workers"] == 2
    assert spec["max_retries"] == 3 and spec["timeout"] == 5400 and spec["name"] == "try"
    assert spec["parameters"] == {"lr": 0.1, "name": "abc", "fast": True}
    assert spec["env"] == {"SEED": "7"} and job.user == "alice"


def test_submit_a_script_with_args_and_git(api: JobsAPI) -> None:
    assert jobs("submit", "--script", "train.py", "--arg=--epochs", "--arg", "3",
                "--image", "base", "--size", "small", "--git-url", "file:///srv/repo.git",
                "--git-ref", "v1", "--parameter-servers", "0") == 0
    spec = only_job(api).spec
    assert spec["args"] == ["--epochs", "3"]
    assert spec["git"] == {"url": "file:///srv/repo.git", "ref": "v1"}


def test_submit_from_a_yaml_file_with_flags_winning(api: JobsAPI, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("script: train.py\nimage: base\nsize: small\nworkers: 2\n"
                    "args: [--fast]\n")
    assert jobs("submit", "-f", str(spec), "--workers", "3", "--module", "pkg.train") == 0
    job = only_job(api)
    assert job.spec["workers"] == 3 and job.spec["module"] == "pkg.train"
    assert job.spec.get("script") in (None, "") and job.spec["args"] == ["--fast"]
    (tmp_path / "spec.json").write_text(json.dumps({"command": ["python", "-V"],
                                                    "image": "base", "size": "small"}))
    assert jobs("submit", "-f", str(tmp_path / "spec.json")) == 0


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("spec.yaml", "script: [unclosed\n", "malformed YAML (line 2"),
    ("spec.json", '{"script": "a.py",}', "malformed JSON (line 1, column 19)"),
    ("spec.yaml", "- script: a.py\n", "a job spec is a mapping"),
    ("spec.yaml", "script: a.py\nscript: b.py\n", "script twice"),
])
def test_a_malformed_spec_file_says_so_and_creates_nothing(
        api: JobsAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
        content: str, fragment: str) -> None:
    (tmp_path / name).write_text(content)
    assert jobs("submit", "-f", str(tmp_path / name)) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert api.all_jobs() == []


def test_a_refusal_prints_the_services_message(api: JobsAPI,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert jobs("submit", "--script", "../etc/x.py", "--image", "base", "--size",
                "small") == 3
    err = capsys.readouterr().err
    assert err.startswith("error: script: ") and err.endswith("(400)\n")
    assert "Traceback" not in err
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small",
                "--workers", "1000000") == 3
    assert "workers" in capsys.readouterr().err
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small",
                "-p", "novalue") == 3
    assert "-p 'novalue': write NAME=VALUE" in capsys.readouterr().err
    assert api.all_jobs() == []
    assert jobs("describe", "000000000000") == 3
    assert "(404)" in capsys.readouterr().err


def test_check_is_the_dry_run(api: JobsAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert jobs("submit", "--check", "--script", "a.py", "--image", "base",
                "--size", "small") == 0
    assert "would be accepted" in capsys.readouterr().out
    assert api.all_jobs() == []


def test_no_token_is_an_error_not_a_traceback(api: JobsAPI, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(contract.API_TOKEN)
    assert jobs("list") == 3
    assert contract.API_TOKEN in capsys.readouterr().err
    assert jobs("--token", "bob-token", "list") == 0


def test_a_root_shell_without_url_or_token_is_told_the_flags(
        api: JobsAPI, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The tour's step 8 from a root shell: the CLI names its own flags, not the SDK's."""
    monkeypatch.delenv(contract.JOBS_URL)
    monkeypatch.delenv(contract.API_TOKEN)
    assert jobs("list") == 3
    err = capsys.readouterr().err
    assert contract.JOBS_URL in err and "pass --url" in err and "url=" not in err
    assert jobs("--url", api.url, "list") == 3
    err = capsys.readouterr().err
    assert contract.API_TOKEN in err and "pass --token" in err and "token=" not in err
    assert jobs("--url", api.url, "--token", "bob-token", "list") == 0


@pytest.mark.parametrize(("end", "code"), [("succeeded", 0), ("failed", 1),
                                           ("cancelled", 2)])
def test_logs_follow_exits_with_the_jobs_outcome(api: JobsAPI, end: str, code: int,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small") == 0
    job = only_job(api)
    api.tick()
    api.write_log(job.id, 1, "step 1\n")
    result: list[int] = []
    follower = threading.Thread(target=lambda: result.append(jobs("logs", "-f", job.id)))
    follower.start()
    follower.join(timeout=1.5)
    assert follower.is_alive()  # following while the job runs
    api.write_log(job.id, 1, "step 2\n")
    if end == "cancelled":
        assert jobs("cancel", job.id) == 0
    else:
        api.exit(job.id, 1, 0 if end == "succeeded" else 1)
    follower.join(timeout=30)
    assert result == [code]
    out, err = capfd.readouterr()
    assert [line for line in out.splitlines() if line.startswith("step")] == \
        ["step 1", "step 2"]
    assert f"job {job.id} {end}" in err


def test_list_describe_events_logs_rerun(api: JobsAPI,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small",
                "--name", "first") == 0
    job = only_job(api)
    api.tick()
    api.write_log(job.id, 1, "hello\n")
    api.exit(job.id, 1, 0)
    capsys.readouterr()
    assert jobs("list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ID", "STATUS", "ATTEMPT", "IMAGE", "SIZE",
                                           "CREATED", "NAME", "/", "REASON"]
    assert job.id in out and "succeeded" in out and "first" in out
    assert jobs("describe", job.id) == 0
    out = capsys.readouterr().out
    assert "status:       succeeded" in out and "replica:      worker-0 exited 0" in out
    assert f"outputs:      ~/studiohub-jobs/{job.id}/outputs" in out
    assert jobs("describe", "--json", job.id) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job.id
    assert jobs("events", job.id) == 0
    assert "queued" in capsys.readouterr().out
    assert jobs("logs", job.id) == 0
    assert capsys.readouterr().out == "hello\n"
    assert jobs("rerun", job.id) == 0
    assert "the same spec as" in capsys.readouterr().out
    assert len(api.all_jobs()) == 2
    assert jobs("cancel", job.id) == 3  # already succeeded: the service's 409
    assert "already succeeded" in capsys.readouterr().err


def test_delete_a_finished_job_only(api: JobsAPI, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small") == 0
    job = only_job(api)
    api.tick()
    capsys.readouterr()
    assert jobs("delete", job.id) == 3
    assert capsys.readouterr().err == f"error: job {job.id} is running: cancel it first, " \
        "then delete it (409)\n"
    api.exit(job.id, 1, 0)
    assert jobs("delete", job.id, "--token", "bob-token") == 3
    assert f"no job {job.id!r} (404)" in capsys.readouterr().err
    assert api.job(job.id).status == "succeeded"
    assert jobs("delete", job.id) == 0
    assert capsys.readouterr().out == f"deleted job {job.id}; its outputs and checkpoints " \
        f"stay in ~/studiohub-jobs/{job.id}/\n"
    assert api.all_jobs() == []
    assert jobs("describe", job.id) == 3


def test_url_and_token_go_before_or_after_the_verb(api: JobsAPI,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from studiohub.cli import make_parser

    parse = make_parser().parse_args
    for argv in (["jobs", "--url", "U", "--token", "T", "describe", "x"],
                 ["jobs", "describe", "x", "--url", "U", "--token", "T"],
                 ["jobs", "--url", "U", "describe", "--token", "T", "x"]):
        args = parse(argv)
        assert (args.url, args.token, args.job) == ("U", "T", "x"), argv
    args = parse(["jobs", "list"])
    assert (args.url, args.token) == (None, None)
    # Against the service: nothing in the environment, both after the verb.
    monkeypatch.delenv(contract.JOBS_URL)
    monkeypatch.delenv(contract.API_TOKEN)
    assert jobs("list", "--url", api.url, "--token", "bob-token", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"jobs": []}
    assert jobs("submit", "--script", "a.py", "--image", "base", "--size", "small",
                "--url", api.url, "--token", "bob-token") == 0
    assert only_job(api).user == "bob"
