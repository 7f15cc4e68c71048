"""The SDK (``studiohub.training``) against the jobs service's real API (tests/jobsapi.py):
submit, refusals, another user's job, logs streamed while the job runs and across a
retry, wait, cancel; where it finds the service and the token; the notebook view in an
image environment's real ipywidgets."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub import contract, sdk, training
from tests.jobsapi import JobsAPI, serve

SCRIPT = {"script": "train.py", "image": "base", "size": "small"}
ENVS = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs")) / "envs"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[JobsAPI]:
    yield from serve(tmp_path)


def alice(api: JobsAPI) -> training.Client:
    return training.Client(api.url, "alice-token")


def test_submit_get_list_and_another_users_job_is_a_404(api: JobsAPI) -> None:
    job = alice(api).submit({**SCRIPT, "workers": 2, "args": ["--lr", "0.1"]})
    assert job is not None and job.status == "queued" and len(job.id) == 12
    assert api.job(job.id).spec["workers"] == 2
    assert [j.id for j in alice(api).list()] == [job.id]
    assert alice(api).get(job.id).spec["args"] == ["--lr", "0.1"]
    bob = training.Client(api.url, "bob-token")
    assert bob.list() == []
    for call in (lambda: bob.get(job.id), lambda: bob.cancel(job.id),
                 lambda: list(bob.logs(job.id, follow=False))):
        with pytest.raises(training.TrainingError) as e:
            call()
        assert e.value.status == 404
    assert api.job(job.id).status == "queued"


def test_a_refused_spec_raises_the_services_message_and_creates_nothing(api: JobsAPI) -> None:
    with pytest.raises(training.TrainingError) as e:
        alice(api).submit({**SCRIPT, "workers": -1})
    assert e.value.status == 400 and "workers" in e.value.message
    with pytest.raises(training.TrainingError) as e:
        alice(api).submit({**SCRIPT, "size": "no-such-size"})
    assert e.value.status == 400 and "no-such-size" in e.value.message
    assert alice(api).submit(SCRIPT, check=True) is None  # the dry run
    assert api.all_jobs() == []


def test_a_bad_token_and_an_unreachable_service_are_errors_not_tracebacks(
        api: JobsAPI) -> None:
    with pytest.raises(training.TrainingError) as e:
        training.Client(api.url, "nobody").list()
    assert e.value.status == 403 and "token" in e.value.message
    with pytest.raises(training.TrainingError) as e:
        training.Client("http://127.0.0.1:1/services/jobs/", "x").list()
    assert e.value.status == 0 and "cannot reach the jobs service" in e.value.message


def test_logs_stream_while_the_job_runs_and_end_with_it(api: JobsAPI) -> None:
    job = alice(api).submit(SCRIPT)
    assert job is not None
    api.tick()  # placed and started: attempt 1
    api.write_log(job.id, 1, "epoch 1\n")
    lines = alice(api).logs(job.id)
    assert next(lines) == "epoch 1"  # before the job ended: streamed, not at the end
    assert api.job(job.id).status == "running"
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(lines))
    reader.start()
    api.write_log(job.id, 1, "epoch 2\npartial")
    api.exit(job.id, 1, 0)
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert got == ["epoch 2", "partial"]
    assert alice(api).wait(job.id, timeout=5).status == "succeeded"


def test_logs_of_a_retried_job_go_on_to_the_next_attempt(api: JobsAPI,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(training, "IDLE_CHECK", 0.3)
    job = alice(api).submit({**SCRIPT, "max_retries": 1})
    assert job is not None
    api.tick()
    api.write_log(job.id, 1, "attempt one\n")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(alice(api).logs(job.id)))
    reader.start()
    api.exit(job.id, 1, 137)  # killed: retried as attempt 2
    assert api.job(job.id).attempt == 2
    api.write_log(job.id, 2, "STUDIOHUB_RESUMED_FROM /c/ckpt-3.pt step 3\nattempt two\n")
    for _ in range(100):  # attempt 2's lines arrive while it runs
        if "attempt two" in got:
            break
        threading.Event().wait(0.1)
    assert got == ["attempt one", "STUDIOHUB_RESUMED_FROM /c/ckpt-3.pt step 3",
                   "attempt two"]
    assert api.job(job.id).status == "running"
    api.exit(job.id, 2, 0)
    reader.join(timeout=30)
    assert not reader.is_alive()


def test_wait_times_out_then_cancel_ends_the_job(api: JobsAPI) -> None:
    job = alice(api).submit(SCRIPT)
    assert job is not None
    with pytest.raises(TimeoutError, match="still queued"):
        job.wait(timeout=0.3)
    assert job.cancel().status == "cancelled"
    assert job.reason == "cancelled by alice"
    assert job.wait(timeout=1).final
    again = job.rerun()
    assert again.id != job.id and again.spec["script"] == "train.py"


def test_delete_a_queued_job_is_refused_a_cancelled_one_goes(api: JobsAPI) -> None:
    job = alice(api).submit(SCRIPT)
    assert job is not None
    with pytest.raises(training.TrainingError) as e:
        job.delete()
    assert e.value.status == 409 and "cancel it first" in e.value.message
    with pytest.raises(training.TrainingError) as e:
        training.Client(api.url, "bob-token").delete(job.id)
    assert e.value.status == 404 and api.job(job.id).status == "queued"
    job.cancel()
    assert job.delete() is None
    assert api.all_jobs() == [] and alice(api).list() == []


def test_the_service_and_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/base/hub/api",
           "JUPYTERHUB_API_TOKEN": "server-token"}
    assert training.service_url(env) == "http://127.0.0.1:8081/base/services/jobs/"
    assert training.service_url({**env, contract.JOBS_URL: "http://h:8000/services/jobs"}) \
        == "http://h:8000/services/jobs/"
    assert training.api_token(env) == "server-token"
    assert training.api_token({**env, contract.API_TOKEN: "mine"}) == "mine"
    assert training.jobs_url("https://hub.example.org") == \
        "https://hub.example.org/services/jobs/"
    assert training.jobs_url("https://example.org/lab/hub/") == \
        "https://example.org/lab/services/jobs/"
    assert training.jobs_url("http://h/services/jobs") == "http://h/services/jobs/"
    with pytest.raises(training.TrainingError, match=contract.JOBS_URL):
        training.service_url({})
    with pytest.raises(training.TrainingError, match=contract.API_TOKEN):
        training.api_token({})


WATCH = """
import time
from studiohub import training
box = training.watch(training.get({job!r}), interval=0.1)
view = box.studiohub_view
print("FIRST", view.header.value)
deadline = time.monotonic() + 30
while "succeeded" not in view.header.value and time.monotonic() < deadline:
    time.sleep(0.1)
print("LAST", view.header.value)
print("TAIL", view.tail.value.replace(chr(10), "|"))
print("METRICS", view.metrics.value != None)
"""


def test_watch_updates_live_in_an_image_environment(api: JobsAPI, tmp_path: Path) -> None:
    python = ENVS / "base" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no base test environment at {python.parent.parent}")
    pkg = tmp_path / "sdk"
    pkg.mkdir()
    sdk.write_package(pkg / "studiohub")
    job = alice(api).submit({**SCRIPT, "name": "mnist"})
    assert job is not None
    api.tick()
    api.write_log(job.id, 1, "loss 0.5\nloss 0.25\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pkg), contract.JOBS_URL: api.url,
           contract.API_TOKEN: "alice-token"}
    proc = subprocess.Popen([str(python), "-u", "-c", WATCH.format(job=job.id)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("FIRST <b>mnist</b> running"), first + proc.stderr.read()
    api.exit(job.id, 1, 0)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert "LAST <b>mnist</b> succeeded · attempt 1 of 1" in out, out + err
    assert "TAIL loss 0.5|loss 0.25" in out, out
