"""The jobs service's HTTP contract on its real handlers, with no hub: a hub that cannot
be reached is a 503 (never a 500), bad bodies are 4xx ``{status, message}`` that store
nothing, another user's job is a 404, and a job's JSON has every documented field.

The service is :class:`studiohub.jobs.service.Jobs` over the fakes of
test_jobs_service; the identity check is a stand-in HubOAuth (or JupyterHub's own,
pointed at a closed port).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from studiohub.jobs.app import create_app
from studiohub.jobs.service import Jobs
from studiohub.sharing.base import HUB_UNREACHABLE
from tests.jobfakes import make_jobs
from tests.unit.test_sharing_http import closed_port

PREFIX = "/services/jobs/"


class Users(HubOAuth):
    """A hub that knows users by their token (``token <name>``)."""

    async def _get_user(self, handler: Any) -> dict[str, Any] | None:
        name = handler.request.headers.get("Authorization", "").removeprefix("token ")
        handler._cached_hub_user = {"kind": "user", "name": name, "groups": [],
                                    "scopes": [], "admin": name == "root"} if name else None
        return handler._cached_hub_user


def auth(cls: type[HubOAuth] = Users) -> HubOAuth:
    return cls(api_token="service-token", base_url=PREFIX, hub_prefix="/hub/",
               api_url=f"http://127.0.0.1:{closed_port()}/hub/api",
               oauth_client_id="service-jobs", cache_max_age=0)


def calls(jobs: Jobs, *requests: tuple[str, str, str, bytes | None],
          hub: HubOAuth | None = None) -> list[HTTPResponse]:
    """Requests ``(user, method, path, body)`` in order, on one app."""
    app = create_app(jobs, hub or auth())

    async def go() -> list[HTTPResponse]:
        sock, port = bind_unused_port()
        server = HTTPServer(app, max_body_size=1024 * 1024)
        server.add_sockets([sock])
        answers = []
        try:
            for user, method, path, body in requests:
                answers.append(await AsyncHTTPClient().fetch(
                    f"http://127.0.0.1:{port}{PREFIX}{path}", method=method, body=body,
                    headers={"Authorization": f"token {user}"} if user else {},
                    raise_error=False, allow_nonstandard_methods=True, request_timeout=60))
        finally:
            server.stop()
        return answers

    return asyncio.run(go())


def message(response: HTTPResponse, status: int) -> str:
    assert response.code == status, response.body[:300]
    body = json.loads(response.body)
    assert body["status"] == status
    return str(body["message"])


SPEC = json.dumps({"script": "train.py", "image": "base", "size": "small"}).encode()


def test_the_root_says_where_the_api_is(tmp_path: Path) -> None:
    (r,) = calls(make_jobs(tmp_path)[0], ("", "GET", "", None))
    assert r.code == 200 and json.loads(r.body)["api"] == f"{PREFIX}api/jobs"


def test_an_unreachable_hub_is_a_503(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)[0]
    (r,) = calls(jobs, ("ada", "GET", "api/jobs", None), hub=auth(HubOAuth))
    assert message(r, 503) == HUB_UNREACHABLE


def test_submit_describe_and_owner_checks(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)[0]
    (created,) = calls(jobs, ("ada", "POST", "api/jobs", SPEC))
    assert created.code == 201
    job = json.loads(created.body)
    assert set(job) >= {"id", "name", "user", "status", "reason", "spec", "attempt",
                        "max_retries", "created", "started", "finished", "queue_reason",
                        "replicas", "dirs"}
    assert job["dirs"]["outputs"] == f"studiohub-jobs/{job['id']}/outputs"
    mine, theirs, admin, anonymous, listed = calls(
        jobs, ("ada", "GET", f"api/jobs/{job['id']}", None),
        ("bob", "GET", f"api/jobs/{job['id']}/events", None),
        ("root", "GET", "api/jobs?user=ada", None),
        ("", "GET", "api/jobs", None),
        ("bob", "GET", "api/jobs?user=ada", None))
    assert mine.code == 200 and message(theirs, 404) == f"no job {job['id']!r}"
    assert [j["id"] for j in json.loads(admin.body)["jobs"]] == [job["id"]]
    assert "authentication required" in message(anonymous, 403)
    assert message(listed, 403) == "only admins may list another user's jobs"


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"", 400, "request body is empty"),
    (b"{nope", 400, "not valid JSON"),
    (b"[" * 50000, 400, "nests too deeply"),
    (b"[" * 100000, 413, "at most 65536"),
    (json.dumps({"script": "x.py", "workers": 10**6}).encode(), 400, "workers: 1000000"),
    (json.dumps({"script": "x.py", "image": "nope"}).encode(), 400, "unknown image 'nope'"),
    (json.dumps({"command": ["true"], "timeout": "9" * 5000 + "d"}).encode(), 400,
     "is not a duration"),
    (b'{"notebook": "n.ipynb", "parameters": {"x": 1e400}}', 400,
     "parameters.x: must be a string, finite number"),
])
def test_bad_bodies_are_4xx_and_store_nothing(tmp_path: Path, body: bytes, status: int,
                                              words: str) -> None:
    jobs = make_jobs(tmp_path)[0]
    (r,) = calls(jobs, ("ada", "POST", "api/jobs", body))
    assert words in message(r, status)
    assert jobs.store.jobs() == []


def test_logs_of_an_attempt_and_bad_log_arguments(tmp_path: Path) -> None:
    jobs, executor, _, _ = make_jobs(tmp_path)
    (created,) = calls(jobs, ("ada", "POST", "api/jobs", SPEC))
    job_id = json.loads(created.body)["id"]
    asyncio.run(jobs.tick())
    log = tmp_path / "jobs" / job_id / "logs" / "attempt-1" / "worker-0.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"epoch 1\nepoch 2\n")
    executor.exit(job_id, 1, 0)
    asyncio.run(jobs.tick())
    whole, tail, followed, bad_replica, bad_attempt = calls(
        jobs, ("ada", "GET", f"api/jobs/{job_id}/logs", None),
        ("ada", "GET", f"api/jobs/{job_id}/logs?offset=8", None),
        ("ada", "GET", f"api/jobs/{job_id}/logs?follow=true", None),
        ("ada", "GET", f"api/jobs/{job_id}/logs?replica=../../x", None),
        ("ada", "GET", f"api/jobs/{job_id}/logs?attempt=-1", None))
    superscript, = calls(jobs, ("ada", "GET", f"api/jobs/{job_id}/logs?offset=%C2%B2", None))
    assert "offset '²': an integer from 0" in message(superscript, 400)
    assert whole.body == b"epoch 1\nepoch 2\n" and tail.body == b"epoch 2\n"
    assert followed.body == whole.body  # the job is over: the stream ends
    assert "a name like worker-0" in message(bad_replica, 400)
    assert "an integer from 1" in message(bad_attempt, 400)


def test_delete_only_the_owners_finished_job_and_it_stays_gone(tmp_path: Path) -> None:
    """Another user: 404, an admin: 403, a running job: 409, each changing nothing; a
    finished one: 204, its rows and logs gone, its home files handed to ``discard``
    (outputs kept unless asked), and still gone for a service started on the same store."""
    jobs, executor, _, _ = make_jobs(tmp_path)
    discarded: list[tuple[str, str, bool]] = []

    async def discard(job: Any, account: Any, outputs: bool) -> None:
        discarded.append((job.id, account.unix_user, outputs))

    jobs.discard = discard
    (created,) = calls(jobs, ("ada", "POST", "api/jobs", SPEC))
    job_id = json.loads(created.body)["id"]
    asyncio.run(jobs.tick())
    logs = tmp_path / "jobs" / job_id / "logs" / "attempt-1"
    logs.mkdir(parents=True)
    (logs / "worker-0.log").write_text("epoch 1\n")
    theirs, admin, running = calls(jobs, ("bob", "DELETE", f"api/jobs/{job_id}", None),
                                   ("root", "DELETE", f"api/jobs/{job_id}", None),
                                   ("ada", "DELETE", f"api/jobs/{job_id}", None))
    assert message(theirs, 404) == f"no job {job_id!r}"
    assert message(admin, 403) == f"only ada can delete job {job_id}"
    assert message(running, 409) == f"job {job_id} is running: cancel it first, then " \
        "delete it"
    assert jobs.store.get(job_id).status == "running" and logs.exists() and not discarded
    executor.exit(job_id, 1, 0)
    asyncio.run(jobs.tick())
    assert jobs.store.get(job_id).status == "succeeded"
    deleted, again, listed, events = calls(
        jobs, ("ada", "DELETE", f"api/jobs/{job_id}", None),
        ("ada", "DELETE", f"api/jobs/{job_id}", None), ("ada", "GET", "api/jobs", None),
        ("ada", "GET", f"api/jobs/{job_id}/events", None))
    assert deleted.code == 204 and deleted.body == b""
    assert message(again, 404) == f"no job {job_id!r}" and message(events, 404)
    assert json.loads(listed.body)["jobs"] == []
    assert not (tmp_path / "jobs" / job_id).exists()
    assert discarded == [(job_id, "jupyter-ada", False)]
    assert jobs.store.events(job_id) == [] and jobs.store.attempt(job_id, 1) is None
    # The service again, on the same database: the job does not come back.
    restarted = make_jobs(tmp_path)[0]
    asyncio.run(restarted.reconcile())
    (listed,) = calls(restarted, ("ada", "GET", "api/jobs", None))
    assert json.loads(listed.body)["jobs"] == [] and restarted.store.get(job_id) is None


def test_delete_with_outputs_and_a_failed_removal_keeps_the_job(tmp_path: Path) -> None:
    jobs, _, _, _ = make_jobs(tmp_path)
    asked: list[bool] = []

    async def discard(job: Any, account: Any, outputs: bool) -> None:
        asked.append(outputs)
        if len(asked) == 1:
            raise OSError("rm: cannot remove: Device or resource busy")

    jobs.discard = discard
    (created,) = calls(jobs, ("ada", "POST", "api/jobs", SPEC))
    job_id = json.loads(created.body)["id"]
    (cancelled,) = calls(jobs, ("ada", "POST", f"api/jobs/{job_id}/cancel", None))
    assert json.loads(cancelled.body)["status"] == "cancelled"
    (failed,) = calls(jobs, ("ada", "DELETE", f"api/jobs/{job_id}?outputs=true", None))
    assert "Device or resource busy" in message(failed, 503)
    assert jobs.store.get(job_id).status == "cancelled" and jobs.store.events(job_id)
    (deleted,) = calls(jobs, ("ada", "DELETE", f"api/jobs/{job_id}?outputs=true", None))
    assert deleted.code == 204 and asked == [True, True]
    assert jobs.store.get(job_id) is None


async def open_follow(port: int, user: str, job_id: str
                      ) -> tuple[int, bytes, asyncio.StreamWriter]:
    """A ``follow=true`` request on its own connection: (status, what came, the
    connection); a refusal's whole answer, a follow's headers and first bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {PREFIX}api/jobs/{job_id}/logs?follow=true HTTP/1.1\r\n"
                 f"Host: x\r\nAuthorization: token {user}\r\nConnection: close\r\n\r\n"
                 .encode())
    got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(got.split(b" ", 2)[1])
    got += await asyncio.wait_for(reader.read(4096), 10)
    return status, got, writer


def test_follows_are_capped_per_user_and_a_closed_one_frees_its_slot(tmp_path: Path
                                                                      ) -> None:
    """Each follow holds one of root's few inotify instances: a user's third (cap 2
    here) is a 429 saying what to do, another user's still streams, and closing a view
    lets the next one in."""
    jobs, executor, _, _ = make_jobs(tmp_path)
    ids = {}
    for user in ("ada", "bob"):
        (created,) = calls(jobs, (user, "POST", "api/jobs", SPEC))
        ids[user] = json.loads(created.body)["id"]
    asyncio.run(jobs.tick())
    for job_id in ids.values():
        log = tmp_path / "jobs" / job_id / "logs" / "attempt-1" / "worker-0.log"
        log.parent.mkdir(parents=True)
        log.write_bytes(b"epoch 1\n")
    app = create_app(jobs, auth(), max_follows_per_user=2)

    async def go() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        open_ones: list[asyncio.StreamWriter] = []
        try:
            for _ in range(2):
                status, got, writer = await open_follow(port, "ada", ids["ada"])
                open_ones.append(writer)
                assert status == 200 and got.endswith(b"epoch 1\n\r\n"), got
            status, got, writer = await open_follow(port, "ada", ids["ada"])
            writer.close()
            assert status == 429, got
            assert b"you already follow 2 job logs: close another log view" in got
            status, got, writer = await open_follow(port, "bob", ids["bob"])
            open_ones.append(writer)
            assert status == 200, got
            open_ones.pop(0).close()
            for _ in range(50):  # the service notices the closed view within 0.2 s
                status, got, writer = await open_follow(port, "ada", ids["ada"])
                open_ones.append(writer)
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert status == 200, got
        finally:
            for writer in open_ones:
                writer.close()
            server.stop()

    asyncio.run(go())
    for job_id in ids.values():
        executor.exit(job_id, 1, 0)


def test_a_refusal_is_one_line_under_the_jobs_logger_with_percent_signs_as_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Not also a ``studiohub.sharing`` line nor a second request line; a path's ``%0a``
    is not shown as ``%%0a``, and a long path is shortened."""
    jobs = make_jobs(tmp_path)[0]
    with caplog.at_level(logging.DEBUG):
        unknown, missing = calls(jobs, ("ada", "GET", f"api/nope%0a{'g' * 300}", None),
                                 ("ada", "GET", "api/jobs/nosuchjob", None))
    assert "%0a" in message(unknown, 404) and "%%" not in message(unknown, 404)
    assert message(missing, 404) == "no job 'nosuchjob'"
    lines = [r for r in caplog.records if " 404 " in f" {r.getMessage()}"]
    assert [r.name for r in lines] == ["studiohub.jobs"] * 2, [r.getMessage() for r in lines]
    assert "%%" not in lines[0].getMessage() and "g" * 201 not in lines[0].getMessage()
