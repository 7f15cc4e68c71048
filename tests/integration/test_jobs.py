"""Training jobs through a real hub: the jobs service, the hub's placements, JB's local
executor, real unix accounts and real processes.

The hub runs StudioHub's own ``jupyterhub_config.py`` with ``jobs: {enabled: true}``, so
the service, its role and scopes are what production registers. Users are real hub
users with API tokens (as the SDK and the CLI use them); their scripts are files in their
own homes, run as their own accounts.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from studiohub.slugs import unix_name
from studiohub.users import ensure_user
from tests.hubtools import User, shut_down
from tests.jobtools import (
    CATALOG,
    JobsHub,
    call,
    finished,
    logs,
    submit,
    wait_for,
    write_script,
)

if os.geteuid() != 0:
    pytest.skip("jobs run as other unix accounts: run as root", allow_module_level=True)

@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsHub]:
    workdir = tmp_path_factory.mktemp("jobs")
    workdir.chmod(0o755)
    started = JobsHub(workdir, catalog=CATALOG)
    try:
        started.start()
        yield started
    finally:
        shut_down(started)


@pytest.fixture(scope="module")
def alice(hub: JobsHub) -> User:
    return hub.new_user("jalice")


@pytest.fixture(scope="module")
def bob(hub: JobsHub) -> User:
    return hub.new_user("jbob")


def test_a_script_job_runs_as_the_user_and_succeeds_with_its_log(hub: JobsHub,
                                                                 alice: User) -> None:
    write_script(alice, "hello.py", "import getpass, os\n"
                 "print('hello from', getpass.getuser(), os.environ['STUDIOHUB_JOB_ID'])\n")
    job = submit(hub, alice, script="hello.py", name="hello")
    assert job["status"] == "queued" and job["dirs"]["home"] == f"studiohub-jobs/{job['id']}"
    done = wait_for(hub, alice, job["id"], finished)
    assert done["status"] == "succeeded", done
    assert done["replicas"] == [{"name": "worker-0", "running": False, "exit_code": 0}]
    text = logs(hub, alice, job["id"])
    assert f"hello from {unix_name(alice.name)} {job['id']}" in text
    events = [e["kind"] for e in call(hub, alice, "GET", f"jobs/{job['id']}/events")
              .json()["events"]]
    assert events[:3] == ["queued", "placed", "started"] and events[-1] == "succeeded"
    listed = call(hub, alice, "GET", "jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    # The hub released the job's placement.
    book = (hub.state_dir / "placements.json").read_text()
    assert job["id"] not in book


def test_exit_code_two_fails_without_retry(hub: JobsHub, alice: User) -> None:
    write_script(alice, "usage.py", "import sys\nprint('bad usage', file=sys.stderr)\n"
                 "sys.exit(2)\n")
    job = submit(hub, alice, script="usage.py", max_retries=2)
    done = wait_for(hub, alice, job["id"], finished)
    assert (done["status"], done["reason"], done["attempt"]) == \
        ("failed", "exit code 2 (worker-0)", 1)
    assert "bad usage" in logs(hub, alice, job["id"])


def test_another_user_gets_404_for_a_job_that_is_not_theirs(hub: JobsHub, alice: User,
                                                            bob: User) -> None:
    write_script(alice, "sleepy.py", "import time\ntime.sleep(600)\n")
    job = submit(hub, alice, script="sleepy.py")
    for method, path in (("GET", ""), ("GET", "/logs"), ("GET", "/events"),
                         ("GET", "/metrics"), ("POST", "/cancel"), ("POST", "/rerun")):
        r = call(hub, bob, method, f"jobs/{job['id']}{path}")
        assert r.status_code == 404, (path, r.text)
        assert r.json()["message"] == f"no job {job['id']!r}"
    assert job["id"] not in [j["id"] for j in call(hub, bob, "GET", "jobs").json()["jobs"]]
    assert call(hub, bob, "GET", "jobs", params={"user": alice.name}).status_code == 403
    assert call(hub, None, "GET", f"jobs/{job['id']}").status_code == 403
    # Cancel: the owner may; the process is gone and the reason says who.
    wait_for(hub, alice, job["id"], lambda j: j["status"] == "running")
    r = call(hub, alice, "POST", f"jobs/{job['id']}/cancel")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"]) == ("cancelled", f"cancelled by {alice.name}")
    account = pwd.getpwnam(unix_name(alice.name))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
            "sleepy.py" in " ".join(p.info["cmdline"] or []) for p in
            psutil.process_iter(["cmdline", "uids"]) if p.info["uids"] and
            p.info["uids"].real == account.pw_uid):
        time.sleep(0.2)
    assert not any("sleepy.py" in " ".join(p.info["cmdline"] or []) for p in
                   psutil.process_iter(["cmdline", "uids"]) if p.info["uids"] and
                   p.info["uids"].real == account.pw_uid)


def test_delete_a_finished_job_keeps_its_outputs_unless_asked(hub: JobsHub, alice: User,
                                                             bob: User) -> None:
    """Another user's delete is a 404 and a running job's a 409, and neither removes
    anything; the owner's delete of a finished job removes its rows, its logs and its
    code snapshot and keeps its outputs; ``?outputs=true`` removes its home folder."""
    write_script(alice, "saver.py", "import os\nout = os.environ['STUDIOHUB_OUTPUT_DIR']\n"
                 "open(os.path.join(out, 'model.txt'), 'w').write('weights')\n"
                 "print('saved', flush=True)\n")
    write_script(alice, "holder.py", "import time\nprint('holding', flush=True)\n"
                 "time.sleep(600)\n")
    done = wait_for(hub, alice, submit(hub, alice, script="saver.py")["id"], finished)
    assert done["status"] == "succeeded", done
    running = submit(hub, alice, script="holder.py")
    wait_for(hub, alice, running["id"], lambda j: j["status"] == "running")
    home = Path(ensure_user(alice.name).pw_dir) / "studiohub-jobs"
    state = hub.state_dir / "jobs"
    for job in (done, running):
        assert (state / job["id"] / "logs").is_dir() and (home / job["id"] / "code").is_dir()
    r = call(hub, bob, "DELETE", f"jobs/{done['id']}")
    assert r.status_code == 404 and r.json()["message"] == f"no job {done['id']!r}", r.text
    r = call(hub, alice, "DELETE", f"jobs/{running['id']}")
    assert r.status_code == 409, r.text
    assert r.json()["message"] == f"job {running['id']} is running: cancel it first, " \
        "then delete it"
    assert wait_for(hub, alice, running["id"], lambda j: True)["status"] == "running"
    assert "holding" in logs(hub, alice, running["id"])
    for job in (done, running):
        assert (state / job["id"] / "logs").is_dir() and (home / job["id"] / "code").is_dir()

    r = call(hub, alice, "DELETE", f"jobs/{done['id']}")
    assert r.status_code == 204 and r.content == b"", r.text
    assert call(hub, alice, "GET", f"jobs/{done['id']}").status_code == 404
    assert done["id"] not in [j["id"] for j in call(hub, alice, "GET", "jobs").json()["jobs"]]
    assert not (state / done["id"]).exists() and not (home / done["id"] / "code").exists()
    assert (home / done["id"] / "outputs" / "model.txt").read_text() == "weights"

    assert call(hub, alice, "POST", f"jobs/{running['id']}/cancel").status_code == 200
    r = call(hub, alice, "DELETE", f"jobs/{running['id']}", params={"outputs": "true"})
    assert r.status_code == 204, r.text
    assert not (home / running["id"]).exists() and not (state / running["id"]).exists()


def test_only_the_jobs_service_may_place_jobs_at_the_hub(hub: JobsHub, alice: User) -> None:
    """A user's own token (or an admin's) cannot place or release job replicas."""
    path = f"/studiohub/users/{alice.name}/jobs/0123456789ab/placement"
    body = {"image": "base", "size": "tiny", "replicas": ["worker-0"]}
    for token in (alice.token, None):  # None: the admin's
        r = hub.api("POST", path, token=token, json=body)
        assert r.status_code == 403 and "only the jobs service" in r.json()["message"]
        assert hub.api("DELETE", path, token=token).status_code == 403
    book = hub.state_dir / "placements.json"
    assert not book.exists() or "0123456789ab" not in book.read_text()


@pytest.mark.parametrize(("spec", "status", "words"), [
    ({"script": "hello.py", "image": "nope"}, 400, "unknown image 'nope'"),
    ({"script": "hello.py", "size": "nosuch"}, 400, "unknown size 'nosuch'"),
    ({"script": "hello.py", "workers": -1}, 400, "workers: -1 is out of range"),
    ({"script": "hello.py", "workers": 10**6}, 400, "workers: 1000000 is out of range"),
    ({"script": "../../etc/passwd.py"}, 400, "outside your home"),
    ({"script": "hello.py", "size": "giant"}, 400, "cannot run here"),
    ("{not json", 400, "not valid JSON"),
    ("[" * 50000, 400, "nests too deeply"),
    ("[" * 100000, 413, "at most 65536"),
    ({"script": "hello.py", "bogus": 1}, 400, "bogus: unknown field"),
])
def test_bad_specs_are_refused_and_create_nothing(hub: JobsHub, alice: User, spec: Any,
                                                  status: int, words: str) -> None:
    before = len(call(hub, alice, "GET", "jobs").json()["jobs"])
    folders = Path(ensure_user(alice.name).pw_dir) / "studiohub-jobs"
    made = set(folders.iterdir()) if folders.exists() else set()
    if isinstance(spec, str):
        r = call(hub, alice, "POST", "jobs", data=spec)
    else:
        r = call(hub, alice, "POST", "jobs", json={"image": "base", "size": "tiny", **spec})
    assert r.status_code == status, r.text
    assert words in r.json()["message"] and r.json()["status"] == status
    assert len(call(hub, alice, "GET", "jobs").json()["jobs"]) == before
    # No snapshot left behind (one made while the hub refused the size is removed).
    assert (set(folders.iterdir()) if folders.exists() else set()) == made


def test_the_dry_run_finds_a_missing_script_before_the_submit(hub: JobsHub,
                                                              alice: User) -> None:
    """``?check=true`` probes the code as the user, as the submit does: the form shows
    a missing script (or package) before the submit, and makes nothing."""
    folders = Path(ensure_user(alice.name).pw_dir) / "studiohub-jobs"
    made = set(folders.iterdir()) if folders.exists() else set()
    write_script(alice, "present.py", "print('here')\n")
    for spec, status, words in (({"script": "absent.py"}, 400, "absent.py is not a file"),
                                ({"module": "nopkg.train"}, 400, "nopkg (or nopkg.py)"),
                                ({"script": "present.py"}, 200, "")):
        r = call(hub, alice, "POST", "jobs", params={"check": "true"},
                 json={"image": "base", "size": "tiny", **spec})
        assert r.status_code == status, r.text
        assert words in r.json().get("message", ""), r.text
    assert (set(folders.iterdir()) if folders.exists() else set()) == made


def test_a_quota_of_two_queues_the_third_job_until_one_ends(hub: JobsHub) -> None:
    carol = hub.new_user("jcarol", groups=("team-q",))
    account = ensure_user(carol.name)
    write_script(carol, "wait.py", "import os, sys, time\n"
                 "flag = os.path.expanduser('~/release-' + sys.argv[1])\n"
                 "while not os.path.exists(flag):\n    time.sleep(0.1)\nprint('released')\n")
    ids = [submit(hub, carol, script="wait.py", args=[str(i)])["id"] for i in range(3)]
    for job_id in ids[:2]:
        wait_for(hub, carol, job_id, lambda j: j["status"] == "running")
    third = wait_for(hub, carol, ids[2], lambda j: bool(j["queue_reason"]))
    assert third["status"] == "queued"
    assert third["queue_reason"] == \
        "domain team-q runs 2 jobs at once at most (2 running): queued"
    r = call(hub, carol, "POST", "jobs", params={"check": "true"},
             json={"image": "base", "size": "tiny", "script": "wait.py"})
    assert r.status_code == 409 and "2 jobs at once" in r.json()["message"]
    flag = Path(account.pw_dir) / "release-0"
    flag.touch()
    assert wait_for(hub, carol, ids[0], finished)["status"] == "succeeded"
    assert wait_for(hub, carol, ids[2], lambda j: j["status"] == "running")["queue_reason"] == ""
    for i in (1, 2):
        (Path(account.pw_dir) / f"release-{i}").touch()
    for job_id in ids[1:]:
        assert wait_for(hub, carol, job_id, finished)["status"] == "succeeded"


def test_timeout_fails_the_job_and_stops_it(hub: JobsHub, alice: User) -> None:
    write_script(alice, "forever.py", "import time\nprint('started', flush=True)\n"
                 "time.sleep(600)\n")
    job = submit(hub, alice, script="forever.py", timeout="3s", max_retries=1)
    done = wait_for(hub, alice, job["id"], finished)
    assert (done["status"], done["reason"]) == ("failed", "timed out after 3s")
    assert done["replicas"][0]["running"] is False or done["attempt"] == 1


def test_the_service_restarted_while_a_job_runs_keeps_it_and_never_runs_it_twice(
        hub: JobsHub, alice: User) -> None:
    """Killed with SIGKILL, the service is started again by the hub (at its next poll of
    its services): a job still running is adopted, one that ended meanwhile is reported
    with its outcome, and neither is started again."""
    account = ensure_user(alice.name)
    write_script(alice, "gone.py", "print('soon forgotten')\n")
    gone = submit(hub, alice, script="gone.py")
    wait_for(hub, alice, gone["id"], finished)
    assert call(hub, alice, "DELETE", f"jobs/{gone['id']}").status_code == 204
    write_script(alice, "gate.py", "import os, time\nprint('gate started', flush=True)\n"
                 "while not os.path.exists(os.path.expanduser('~/open-gate')):\n"
                 "    time.sleep(0.1)\nprint('gate passed', flush=True)\n")
    write_script(alice, "quick.py", "import time\ntime.sleep(3)\nprint('quick done')\n")
    long = submit(hub, alice, script="gate.py")
    wait_for(hub, alice, long["id"], lambda j: j["status"] == "running")
    quick = submit(hub, alice, script="quick.py")
    wait_for(hub, alice, quick["id"], lambda j: j["status"] == "running")
    old = hub.service_process().pid
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(LookupError, psutil.Error):
            if hub.service_process().pid != old:
                break
        time.sleep(0.3)
    hub.wait_service()
    assert hub.service_process().pid != old
    running = wait_for(hub, alice, long["id"], lambda j: True)
    assert (running["status"], running["attempt"]) == ("running", 1), running
    # A job deleted before the restart stays deleted.
    assert call(hub, alice, "GET", f"jobs/{gone['id']}").status_code == 404
    assert gone["id"] not in [j["id"] for j in call(hub, alice, "GET", "jobs").json()["jobs"]]
    ended = wait_for(hub, alice, quick["id"], finished)
    assert (ended["status"], ended["attempt"]) == ("succeeded", 1), ended
    (Path(account.pw_dir) / "open-gate").touch()
    done = wait_for(hub, alice, long["id"], finished)
    assert (done["status"], done["attempt"]) == ("succeeded", 1), done
    text = logs(hub, alice, long["id"])
    assert text.count("gate started") == 1 and "gate passed" in text
    kinds = [e["kind"] for e in call(hub, alice, "GET", f"jobs/{long['id']}/events")
             .json()["events"]]
    assert "adopted" in kinds and kinds.count("started") == 1
    kinds = [e["kind"] for e in call(hub, alice, "GET", f"jobs/{quick['id']}/events")
             .json()["events"]]
    assert "reconciled" in kinds and kinds.count("started") == 1


def test_a_hub_restart_while_a_job_runs_keeps_it_running_and_reported(
        hub: JobsHub, alice: User) -> None:
    """The hub stops (its services with it) and starts again: the job's keeper is no
    process of either, so the job runs on, and the new service adopts it."""
    account = ensure_user(alice.name)
    write_script(alice, "gate2.py", "import os, time\nprint('gate2 started', flush=True)\n"
                 "while not os.path.exists(os.path.expanduser('~/open-gate2')):\n"
                 "    time.sleep(0.1)\nprint('gate2 passed', flush=True)\n")
    job = submit(hub, alice, script="gate2.py")
    wait_for(hub, alice, job["id"], lambda j: j["status"] == "running")
    hub.stop()
    hub.start()
    running = wait_for(hub, alice, job["id"], lambda j: True)
    assert (running["status"], running["attempt"]) == ("running", 1), running
    (Path(account.pw_dir) / "open-gate2").touch()
    done = wait_for(hub, alice, job["id"], finished)
    assert (done["status"], done["attempt"]) == ("succeeded", 1), done
    text = logs(hub, alice, job["id"])
    assert text.count("gate2 started") == 1 and "gate2 passed" in text


def test_logs_follow_streams_until_the_job_ends(hub: JobsHub, alice: User) -> None:
    write_script(alice, "slow.py", "import time\nfor i in range(5):\n"
                 "    print('line', i, flush=True)\n    time.sleep(0.3)\n")
    job = submit(hub, alice, script="slow.py")
    wait_for(hub, alice, job["id"], lambda j: j["status"] == "running")
    r = call(hub, alice, "GET", f"jobs/{job['id']}/logs", params={"follow": "true"},
             timeout=60)
    assert r.status_code == 200
    assert [f"line {i}" in r.text for i in range(5)] == [True] * 5
    assert call(hub, alice, "GET", f"jobs/{job['id']}").json()["status"] == "succeeded"
