"""The Lab extension's sharing routes on a real Jupyter server (pytest-jupyter), forwarding to
a stand-in sharing service: the server's token goes along, notebooks are read from disk,
and the service's refusals reach the browser with their own status and message.

(The real service behind a real hub: tests/browser/test_sharing_lab.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer

from studiohub_lab.sharing.client import service_url_from
from studiohub_lab.sharing.notebooks import with_environment
from tests.ports import free_port

pytest.importorskip("pytest_jupyter")
pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOKEN = "server-token-123"
FORBIDDEN = ("this notebook is shared with the domain 'Team B' and you are not a member: "
             "ask an administrator to add you")


class FakeService(web.RequestHandler):
    """Records each request; answers by path like the sharing service would."""

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

    def get(self, path: str) -> None:
        if path == "domains":
            self.answer(200, {"domains": [{"id": "team-a", "name": "Team A"}]})
        elif path == "shares":
            self.answer(200, {"shares": [], "query": self.request.query})
        elif path == "shares/boom":
            self.refuse(500, "internal error in the sharing service")
        else:
            self.refuse(404, "no shared notebook at this link")

    def post(self, path: str) -> None:
        body = json.loads(self.request.body)
        if path == "shares" and body["domain"] == "team-b":
            self.refuse(403, FORBIDDEN)
        elif path == "shares":
            self.answer(201, {"id": "abc", "url": "/services/sharing/s/abc", "version": 1})
        elif path == "shares/abc/versions":
            self.answer(201, {"number": 2})
        elif path == "shares/abc/copy":
            self.refuse(409, "your server is not running: start it, then copy again")
        else:
            self.refuse(404, "no shared notebook at this link")

    def delete(self, path: str) -> None:
        self.refuse(410, "this shared notebook was revoked by its author")


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def service(seen: list[dict[str, Any]], jp_asyncio_loop: Any,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    app = web.Application([(r"/services/sharing/api/v1/(.*)", FakeService, {"seen": seen})])
    server = HTTPServer(app)

    async def listen() -> None:
        server.listen(port, "127.0.0.1")

    jp_asyncio_loop.run_until_complete(listen())
    url = f"http://127.0.0.1:{port}/services/sharing/"
    monkeypatch.setenv("STUDIOHUB_SHARING_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    yield url
    server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "work").mkdir(parents=True)
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "studiohub-base", "display_name": "Base", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "c1", "source": "print(42)", "metadata": {},
                   "execution_count": 1, "outputs": [
                       {"output_type": "stream", "name": "stdout", "text": "42\n"}]}]}
    (path / "work" / "churn.ipynb").write_text(json.dumps(notebook))
    (path / "notes.txt").write_text("not a notebook")
    return path


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"studiohub_lab": True}}}


@pytest.fixture
def jp_root_dir(home: Path) -> Path:
    return home


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: Any) -> Any:
    def call(*parts: str, **kwargs: Any) -> Any:
        return jp_asyncio_loop.run_until_complete(
            jp_fetch("studiohub", "api", "v1", "sharing", *parts, **kwargs))
    return call


def fetch_error(fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as info:
        fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    body = json.loads(response.body)
    assert body["status"] == info.value.code
    return info.value.code, str(body["message"])


def post(body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body)}


def test_lists_are_forwarded_with_the_servers_token(fetch: Any, service: str,
                                                    seen: list[dict[str, Any]]) -> None:
    r = fetch("domains")
    assert json.loads(r.body) == {"domains": [{"id": "team-a", "name": "Team A"}]}
    assert seen[-1]["auth"] == f"token {TOKEN}"
    r = fetch("shares", params={"filter": "domains", "q": "churn", "other": "dropped"})
    assert seen[-1]["path"] == "/services/sharing/api/v1/shares"
    assert dict(p.split("=") for p in seen[-1]["query"].split("&")) == {
        "filter": "domains", "q": "churn"}


def test_share_reads_the_saved_notebook_and_sends_its_environment(
        fetch: Any, service: str, seen: list[dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_IMAGE", "base")
    monkeypatch.setenv("STUDIOHUB_SIZE", "tiny")
    r = fetch("shares", **post({"path": "work/churn.ipynb", "domain": "team-a",
                                "include_outputs": False, "note": "see cell 1"}))
    assert r.code == 201 and json.loads(r.body)["id"] == "abc"
    sent = seen[-1]["body"]
    assert (sent["domain"], sent["name"], sent["include_outputs"], sent["note"]) == \
        ("team-a", "churn.ipynb", False, "see cell 1")
    assert sent["notebook"]["cells"][0]["outputs"][0]["text"] == "42\n"
    assert sent["notebook"]["metadata"]["studiohub"] == {"image": "base", "size": "tiny"}

    r = fetch("shares", "abc", "versions", **post({"path": "work/churn.ipynb"}))
    assert r.code == 201 and seen[-1]["path"].endswith("/shares/abc/versions")
    assert set(seen[-1]["body"]) == {"notebook"}


def test_service_refusals_keep_their_status_and_message(fetch: Any, service: str) -> None:
    assert fetch_error(fetch, "shares", **post({"path": "work/churn.ipynb",
                                                "domain": "team-b"})) == (403, FORBIDDEN)
    assert fetch_error(fetch, "shares", "gone", method="DELETE") == \
        (410, "this shared notebook was revoked by its author")
    assert fetch_error(fetch, "shares", "nope") == (404, "no shared notebook at this link")
    assert fetch_error(fetch, "shares", "abc", "copy", **post({})) == \
        (409, "your server is not running: start it, then copy again")
    status, message = fetch_error(fetch, "shares", "boom")
    assert status == 502 and "the sharing service failed (500)" in message


def test_bad_input_is_refused_here_and_nothing_is_forwarded(
        fetch: Any, service: str, seen: list[dict[str, Any]]) -> None:
    cases = {
        "work/missing.ipynb": (404, "no notebook at 'work/missing.ipynb'"),
        "notes.txt": (400, "is not a notebook"),
        "": (400, "path: the notebook's path"),
    }
    for path, (status, fragment) in cases.items():
        code, message = fetch_error(fetch, "shares", **post({"path": path,
                                                             "domain": "team-a"}))
        assert code == status and fragment in message, message
    code, message = fetch_error(fetch, "shares", **post({"path": "work/churn.ipynb",
                                                         "domain": "team-a", "public": True}))
    assert code == 400 and "unknown field(s) public" in message
    code, message = fetch_error(fetch, "shares", **post({"path": "work/churn.ipynb",
                                                         "domain": "team-a",
                                                         "include_outputs": "yes"}))
    assert code == 400 and "include_outputs must be bool" in message
    code, message = fetch_error(fetch, "shares", **post({"path": "work/churn.ipynb"}))
    assert code == 400 and "domain" in message
    assert seen == []


def test_unreachable_or_unconfigured_service_says_so(fetch: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("STUDIOHUB_SHARING_URL", f"http://127.0.0.1:{free_port()}/s/")
    status, message = fetch_error(fetch, "domains")
    assert status == 502 and "cannot reach the sharing service" in message
    monkeypatch.delenv("STUDIOHUB_SHARING_URL")
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    status, message = fetch_error(fetch, "domains")
    assert status == 503 and "not available on this server" in message


def test_service_url_from_the_environment() -> None:
    assert service_url_from({"STUDIOHUB_SHARING_URL": "http://proxy/services/sharing/"}) == \
        "http://proxy/services/sharing/"
    assert service_url_from({"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/x/",
                             "JUPYTERHUB_BASE_URL": "/x/"}) == \
        "https://hub.example.org/x/services/sharing/"
    assert service_url_from({"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org"}) == \
        "https://hub.example.org/services/sharing/"
    assert service_url_from({}) == ""


def test_environment_is_filled_only_where_missing() -> None:
    env = {"STUDIOHUB_IMAGE": "base", "STUDIOHUB_SIZE": "tiny"}
    kernel = {"kernelspec": {"name": "studiohub-base"}}
    assert with_environment({"metadata": kernel}, env)["metadata"]["studiohub"] == \
        {"image": "base", "size": "tiny"}
    chosen = {**kernel, "studiohub": {"image": "pytorch", "size": "large"}}
    assert with_environment({"metadata": chosen}, env)["metadata"]["studiohub"] == \
        {"image": "pytorch", "size": "large"}
    other = {"kernelspec": {"name": "studiohub-pytorch"}}
    assert with_environment({"metadata": other}, env)["metadata"]["studiohub"] == \
        {"image": "pytorch"}
    assert "studiohub" not in with_environment(
        {"metadata": {"kernelspec": {"name": "python3"}}}, env)["metadata"]
