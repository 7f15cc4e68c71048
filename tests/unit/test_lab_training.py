"""The Lab extension's training routes on a real Jupyter server (pytest-jupyter), forwarding
to a stand-in jobs service: the server's token goes along, a followed log streams through
chunk by chunk, and the service's refusals reach the browser with their own status and
message; bad input is refused here and nothing is forwarded.

(The real service behind a real hub, in Chromium: tests/browser/test_training_lab.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer

from studiohub_lab.training.client import service_url_from
from tests.ports import free_port

pytest.importorskip("pytest_jupyter")
pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOKEN = "server-token-456"
NO_ROOM = "no room: the machine has 2 of 4 GiB free; size 'large' needs 8 GiB"
JOB = {"id": "0123456789ab", "name": "train.py", "status": "running", "attempt": 1,
       "dirs": {"tensorboard": "studiohub-jobs/0123456789ab/tensorboard"}}
#: The followed log's chunks and the pause between them (seconds).
CHUNKS = [b"epoch 1 loss 0.9\n", b"epoch 2 loss 0.5\n", b"epoch 3 loss 0.2\n"]
PAUSE = 0.4


class FakeJobs(web.RequestHandler):
    """Records each request; answers by path like the jobs service would."""

    def initialize(self, seen: list[dict[str, Any]]) -> None:
        self.seen = seen

    def prepare(self) -> None:
        self.seen.append({"method": self.request.method, "path": self.request.path,
                          "query": self.request.query,
                          "auth": self.request.headers.get("Authorization"),
                          "body": json.loads(self.request.body) if self.request.body else None})

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def refuse(self, status: int, message: str) -> None:
        self.answer(status, {"status": status, "message": message})

    async def get(self, path: str) -> None:
        if path == "jobs":
            self.answer(200, {"jobs": [JOB]})
        elif path == "jobs/0123456789ab":
            self.answer(200, JOB)
        elif path == "jobs/0123456789ab/events":
            self.answer(200, {"events": [{"time": "t", "kind": "queued", "message": "queued"}]})
        elif path == "jobs/0123456789ab/metrics":
            self.answer(200, {"tags": {"loss": {"latest": 0.2, "step": 3,
                                                "points": [[1, 0.9], [3, 0.2]]}}})
        elif path == "jobs/0123456789ab/logs":
            await self.logs()
        elif path == "jobs/boom":
            self.refuse(500, "internal error in the jobs service")
        else:
            self.refuse(404, "no job 'ffffffffffff'")

    async def logs(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if self.get_argument("follow", "") != "true":
            self.finish(b"".join(CHUNKS))
            return
        for chunk in CHUNKS:
            self.write(chunk)
            await self.flush()
            await asyncio.sleep(PAUSE)
        self.finish()

    def post(self, path: str) -> None:
        body = json.loads(self.request.body) if self.request.body else None
        if path == "jobs" and body.get("size") == "large":
            self.refuse(409, NO_ROOM)
        elif path == "jobs" and self.get_argument("check", "") == "true":
            self.answer(200, {"ok": True})
        elif path == "jobs":
            self.answer(201, {**JOB, "status": "queued"})
        elif path == "jobs/0123456789ab/cancel":
            self.answer(200, {**JOB, "status": "cancelled", "reason": "cancelled by alice"})
        elif path == "jobs/0123456789ab/rerun":
            self.answer(201, {**JOB, "id": "ba9876543210", "status": "queued"})
        elif path == "jobs/done/cancel":
            self.refuse(409, "job done is already succeeded: nothing to cancel")
        else:
            self.refuse(404, "no job 'ffffffffffff'")


    def delete(self, path: str) -> None:
        if path == "jobs/0123456789ab":
            self.set_status(204)
            self.finish()
        elif path == "jobs/busy":
            self.refuse(409, "job busy is running: cancel it first, then delete it")
        else:
            self.refuse(404, "no job 'ffffffffffff'")


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def service(seen: list[dict[str, Any]], jp_asyncio_loop: Any,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    app = web.Application([(r"/services/jobs/api/(.*)", FakeJobs, {"seen": seen})])
    server = HTTPServer(app)

    async def listen() -> None:
        server.listen(port, "127.0.0.1")

    jp_asyncio_loop.run_until_complete(listen())
    url = f"http://127.0.0.1:{port}/services/jobs/"
    monkeypatch.setenv("STUDIOHUB_JOBS_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    yield url
    server.stop()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"studiohub_lab": True}}}


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    (tmp_path / "lab-root").mkdir(exist_ok=True)
    return tmp_path / "lab-root"


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: Any) -> Any:
    def call(*parts: str, **kwargs: Any) -> Any:
        return jp_asyncio_loop.run_until_complete(
            jp_fetch("studiohub", "api", "v1", "training", *parts, **kwargs))
    return call


def fetch_error(fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as info:
        fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    body = json.loads(response.body)
    assert body["status"] == info.value.code
    return info.value.code, str(body["message"])


def post(body: dict[str, Any] | None = None, **params: str) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body or {}), "params": params}


SPEC = {"script": "train.py", "image": "pytorch", "size": "small", "workers": 2,
        "args": ["--epochs", "3"], "max_retries": 1, "timeout": "1h"}


def test_reads_are_forwarded_with_the_servers_token(fetch: Any, service: str,
                                                    seen: list[dict[str, Any]]) -> None:
    assert json.loads(fetch("jobs").body) == {"jobs": [JOB]}
    assert seen[-1]["auth"] == f"token {TOKEN}"
    assert seen[-1]["path"] == "/services/jobs/api/jobs"
    assert json.loads(fetch("jobs", "0123456789ab").body) == JOB
    assert json.loads(fetch("jobs", "0123456789ab", "events").body)["events"][0]["kind"] == \
        "queued"
    assert json.loads(fetch("jobs", "0123456789ab", "metrics").body)["tags"]["loss"][
        "latest"] == 0.2
    assert [s["path"].rsplit("/", 1)[-1] for s in seen] == [
        "jobs", "0123456789ab", "events", "metrics"]


def test_submit_dry_run_and_actions(fetch: Any, service: str,
                                    seen: list[dict[str, Any]]) -> None:
    r = fetch("jobs", **post(SPEC, check="true"))
    assert r.code == 200 and json.loads(r.body) == {"ok": True}
    assert seen[-1]["query"] == "check=true" and seen[-1]["body"] == SPEC
    r = fetch("jobs", **post(SPEC))
    assert r.code == 201 and json.loads(r.body)["status"] == "queued"
    assert seen[-1]["query"] == "" and seen[-1]["body"] == SPEC
    r = fetch("jobs", "0123456789ab", "cancel", **post())
    assert r.code == 200 and json.loads(r.body)["reason"] == "cancelled by alice"
    r = fetch("jobs", "0123456789ab", "rerun", **post())
    assert r.code == 201 and json.loads(r.body)["id"] == "ba9876543210"


def test_delete_is_forwarded_and_its_refusals_kept(fetch: Any, service: str,
                                                   seen: list[dict[str, Any]]) -> None:
    r = fetch("jobs", "0123456789ab", method="DELETE")
    assert r.code == 204 and r.body == b""
    assert (seen[-1]["method"], seen[-1]["path"], seen[-1]["query"], seen[-1]["auth"]) == \
        ("DELETE", "/services/jobs/api/jobs/0123456789ab", "", f"token {TOKEN}")
    r = fetch("jobs", "0123456789ab", method="DELETE", params={"outputs": "true"})
    assert r.code == 204 and seen[-1]["query"] == "outputs=true"
    assert fetch_error(fetch, "jobs", "busy", method="DELETE") == \
        (409, "job busy is running: cancel it first, then delete it")
    assert fetch_error(fetch, "jobs", "ffffffffffff", method="DELETE") == \
        (404, "no job 'ffffffffffff'")


def test_service_refusals_keep_their_status_and_message(fetch: Any, service: str) -> None:
    assert fetch_error(fetch, "jobs", **post({**SPEC, "size": "large"}, check="true")) == \
        (409, NO_ROOM)
    assert fetch_error(fetch, "jobs", "ffffffffffff") == (404, "no job 'ffffffffffff'")
    assert fetch_error(fetch, "jobs", "done", "cancel", **post()) == \
        (409, "job done is already succeeded: nothing to cancel")
    assert fetch_error(fetch, "jobs", "ffffffffffff", "logs") == (404, "no job 'ffffffffffff'")
    assert fetch_error(fetch, "jobs", "ffffffffffff", "logs",
                       params={"follow": "true"}) == (404, "no job 'ffffffffffff'")
    status, message = fetch_error(fetch, "jobs", "boom")
    assert status == 502 and "the jobs service failed (500)" in message


def test_bad_input_is_refused_here_and_nothing_is_forwarded(
        fetch: Any, service: str, seen: list[dict[str, Any]]) -> None:
    cases = [
        ({**SPEC, "gpus": 2}, "unknown field(s) gpus"),
        ({**SPEC, "workers": "two"}, "workers must be int, not str"),
        ({**SPEC, "workers": True}, "workers must be int, not bool"),
        ({**SPEC, "args": "--epochs 3"}, "args must be list, not str"),
    ]
    for body, fragment in cases:
        code, message = fetch_error(fetch, "jobs", **post(body))
        assert code == 400 and fragment in message, message
    code, message = fetch_error(fetch, "jobs", method="POST", body="[" * 100_000)
    assert code in (400, 413)
    code, message = fetch_error(fetch, "jobs", method="POST", body="{not json")
    assert code == 400 and "not valid JSON" in message
    code, message = fetch_error(fetch, "jobs", "0123456789ab", "cancel", **post({"x": 1}))
    assert code == 400 and "unknown field" in message
    for name, value in [("replica", "../../etc"), ("offset", "-1"), ("attempt", "x"),
                        ("follow", "maybe")]:
        code, message = fetch_error(fetch, "jobs", "0123456789ab", "logs",
                                    params={name: value})
        assert code == 400 and message.startswith(f"{name}:"), message
    assert seen == []


def test_logs_pass_their_arguments_and_can_be_downloaded(
        fetch: Any, service: str, seen: list[dict[str, Any]]) -> None:
    r = fetch("jobs", "0123456789ab", "logs",
              params={"replica": "worker-1", "attempt": "2", "offset": "17", "other": "x"})
    assert r.body == b"".join(CHUNKS)
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "Content-Disposition" not in r.headers
    assert dict(p.split("=") for p in seen[-1]["query"].split("&")) == {
        "replica": "worker-1", "attempt": "2", "offset": "17"}
    r = fetch("jobs", "0123456789ab", "logs", params={"replica": "worker-1", "download": "1"})
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="job-0123456789ab-worker-1-attempt-latest.log"'


def test_a_followed_log_streams_chunk_by_chunk(fetch: Any, service: str) -> None:
    arrivals: list[tuple[float, bytes]] = []
    start = time.monotonic()
    r = fetch("jobs", "0123456789ab", "logs", params={"follow": "true"},
              streaming_callback=lambda data: arrivals.append((time.monotonic() - start,
                                                               data)))
    assert r.code == 200
    assert b"".join(d for _, d in arrivals) == b"".join(CHUNKS)
    # The first line reached the browser long before the service finished (3 pauses).
    first = next(t for t, d in arrivals if d)
    assert first < PAUSE * 2, arrivals
    assert arrivals[-1][0] >= PAUSE * 2


def test_no_service_is_a_503_saying_so(fetch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STUDIOHUB_JOBS_URL", "JUPYTERHUB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    code, message = fetch_error(fetch, "jobs")
    assert code == 503 and "training jobs are not available on this server" in message


def test_service_url_from_the_environment() -> None:
    assert service_url_from({"STUDIOHUB_JOBS_URL": "http://h/services/jobs/"}) == \
        "http://h/services/jobs/"
    assert service_url_from({"JUPYTERHUB_PUBLIC_URL": "https://hub.example/",
                             "JUPYTERHUB_BASE_URL": "/base/"}) == \
        "https://hub.example/base/services/jobs/"
    assert service_url_from({}) == ""
