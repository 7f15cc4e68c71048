"""The service's HTTP contract on its real handlers, with no hub: bad bodies, body bounds,
short messages and log lines, and a hub that cannot be reached (503, never 500).

The app is :func:`studiohub.sharing.app.create_app` served on a free port; the hub's
identity check is either a stand-in that knows one user, or JupyterHub's own
``HubOAuth`` pointed at a closed port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from studiohub.catalog import load_catalog
from studiohub.sharing.app import create_app
from studiohub.sharing.base import HUB_UNREACHABLE
from studiohub.sharing.config import AUDIT_SCOPE
from studiohub.sharing.inputs import MAX_DEPTH, check_body, path_of, quoted
from studiohub.sharing.service import Limits, Sharing
from studiohub.sharing.snapshots import SnapshotFiles
from studiohub.sharing.store import Store
from tests.sharinghub import code_cell, make_notebook, stream

PREFIX = "/services/sharing/"
MAX_NOTEBOOK = 200_000
ADA = {"kind": "user", "name": "ada", "groups": ["ml-research"], "scopes": []}


class KnownUser(HubOAuth):
    """A hub that knows one user, for any token (no hub process needed)."""

    scopes: tuple[str, ...] = ()

    async def _get_user(self, handler: Any) -> dict[str, Any]:
        handler._cached_hub_user = {**ADA, "scopes": list(self.scopes)}
        return handler._cached_hub_user


class KnownAuditor(KnownUser):
    scopes = (AUDIT_SCOPE,)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


@pytest.fixture
def sharing(tmp_path: Path) -> Sharing:
    return Sharing(Store(f"sqlite:///{tmp_path / 'db.sqlite'}"),
                   SnapshotFiles(tmp_path / "snapshots"), Limits(MAX_NOTEBOOK, 5, 5),
                   load_catalog())


def hub_auth(cls: type[HubOAuth] = KnownUser, port: int | None = None) -> HubOAuth:
    return cls(api_token="service-token", base_url=PREFIX, hub_prefix="/hub/",
               api_url=f"http://127.0.0.1:{port or closed_port()}/hub/api",
               oauth_client_id="service-sharing", cache_max_age=0)


def fetch(sharing: Sharing, method: str, path: str, body: bytes | None = None,
          auth: HubOAuth | None = None) -> HTTPResponse:
    """One request to a fresh app; the response, whatever its status."""
    app = create_app(sharing, auth or hub_auth(), servers_url="http://127.0.0.1:1")

    async def go() -> HTTPResponse:
        sock, port = bind_unused_port()
        server = HTTPServer(app, max_body_size=1024 * 1024)
        server.add_sockets([sock])
        try:
            return await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}{PREFIX}{path}", method=method, body=body,
                headers={"Authorization": "token user-token"}, raise_error=False,
                allow_nonstandard_methods=True, request_timeout=60)
        finally:
            server.stop()

    return asyncio.run(go())


def refusal(response: HTTPResponse, status: int, fragment: str = "") -> str:
    """The JSON refusal's message, checked to be short and to contain ``fragment``."""
    assert response.code == status, response.body[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert len(response.body) < 1024, response.body[:300]
    body = json.loads(response.body)
    assert body["status"] == status
    assert fragment in body["message"], body["message"]
    return str(body["message"])


def share_body(**changes: Any) -> bytes:
    body = {"domain": "ml-research", "name": "a.ipynb",
            "notebook": make_notebook(code_cell("1", stream("1\n"))), **changes}
    return json.dumps(body).encode()


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def assert_nothing_stored(sharing: Sharing) -> None:
    assert sharing.store.shared_by("ada") == []
    assert list(sharing.files.root.iterdir()) == []


# --- a hub that cannot be reached ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["api/v1/domains", "api/v1/shares?filter=mine",
                                  "api/v1/recent"])
def test_an_unreachable_hub_is_a_503_saying_to_wait(sharing: Sharing, path: str) -> None:
    """JupyterHub's HubAuth answers a refused connection with a 500."""
    r = fetch(sharing, "GET", path, auth=hub_auth(HubOAuth))
    assert refusal(r, 503) == HUB_UNREACHABLE


def test_an_unreachable_hub_is_a_503_page_too(sharing: Sharing) -> None:
    r = fetch(sharing, "GET", "", auth=hub_auth(HubOAuth))
    assert r.code == 503
    assert "the hub is not reachable" in r.body.decode()


def test_an_oauth_callback_without_its_state_is_a_400(sharing: Sharing) -> None:
    """JupyterHub's callback answers a missing state with a 500: it is the request's fault."""
    r = fetch(sharing, "GET", "oauth_callback?code=abc", auth=hub_auth(HubOAuth))
    assert r.code == 400, r.body[:300]
    assert b"state is missing" in r.body


# --- bodies no later step could handle -----------------------------------------------------------


@pytest.mark.parametrize(("body", "fragment"), [
    (b"[" * 100_000, "nests too deeply"),
    (share_body(notebook={**make_notebook(), "metadata": nested(900)}),
     f"nests deeper than {MAX_DEPTH} levels (at 'notebook'.'metadata'.'a'"),
    (share_body(name="\ud800.ipynb"), "lone UTF-16 surrogate ('\\ud800') in 'name'"),
    (share_body(note="ok \udfff"), "lone UTF-16 surrogate ('\\udfff') in 'note'"),
    (share_body(notebook=make_notebook(code_cell("x = '\udc80'", cell_id="c1"))),
     "in 'notebook'.'cells'[0].'source'"),
    (share_body(note="a\x00b"), "note has the control character '\\x00'"),
    (b'{"domain": NaN}', "NaN is not a JSON value"),
    (b"", "request body is empty"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "must be a JSON object, not an array"),
    (b"null", "must be a JSON object, not null"),
])
def test_bad_bodies_are_400s_naming_the_problem(sharing: Sharing, body: bytes,
                                                fragment: str) -> None:
    refusal(fetch(sharing, "POST", "api/v1/shares", body), 400, fragment)
    assert_nothing_stored(sharing)


def test_big_bad_values_are_quoted_short(sharing: Sharing) -> None:
    """A long value is named by its first characters and its length, not echoed."""
    big = "d" * 150_000
    message = refusal(fetch(sharing, "POST", "api/v1/shares", share_body(domain=big)), 400)
    assert message.startswith(f"domain {quoted('d' * 40)}… (150000 characters) is not one")
    refusal(fetch(sharing, "POST", "api/v1/shares", share_body(**{big: 1})), 400,
            "unknown key(s) 'ddd")
    refusal(fetch(sharing, "POST", "api/v1/shares", share_body(name=big + ".ipynb")), 400,
            "name is longer than 255 bytes")
    refusal(fetch(sharing, "GET", f"api/v1/shares?filter={big[:60_000]}"), 400,
            "(60000 characters) is not known")
    assert_nothing_stored(sharing)


def test_refusals_are_logged_in_one_short_line(sharing: Sharing,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        fetch(sharing, "POST", "api/v1/shares", share_body(domain="e" * 150_000))
        fetch(sharing, "GET", f"api/v1/shares/{'f' * 30_000}")
    assert any("domain 'eee" in r.getMessage() for r in caplog.records)
    assert max(len(r.getMessage()) for r in caplog.records) < 1024


def test_an_unknown_api_path_is_one_line_with_its_percent_signs_as_sent(
        sharing: Sharing, caplog: pytest.LogCaptureFixture) -> None:
    """Tornado doubles the ``%`` of a message given without arguments: neither the answer
    nor the log shows ``%%``; the request's own line does not repeat the refusal."""
    with caplog.at_level(logging.DEBUG):
        answer = fetch(sharing, "GET", f"api/v1/nope%0a{'g' * 300}")
    message = refusal(answer, 404, "no API at ")
    assert "%0a" in message and "%%" not in message and "g" * 201 not in message
    lines = [r for r in caplog.records if "404" in r.getMessage()]
    assert [r.name for r in lines] == ["studiohub.sharing"], [r.getMessage() for r in lines]
    assert "%0a" in lines[0].getMessage() and "%%" not in lines[0].getMessage()


# --- bodies bounded per endpoint ---------------------------------------------------------------


def test_a_copy_body_is_bounded_small_and_a_notebook_body_by_the_notebook_limit(
        sharing: Sharing) -> None:
    refusal(fetch(sharing, "POST", "api/v1/shares/x/copy", b'{"version": 1}' + b" " * 2000),
            413, "at most 1024 are accepted here")
    # The same size is fine where a notebook comes (and refused for its own reasons).
    refusal(fetch(sharing, "POST", "api/v1/shares", share_body(name="a" * 2000)), 400,
            "must end in .ipynb")
    refusal(fetch(sharing, "POST", "api/v1/shares", b" " * (MAX_NOTEBOOK + 70_000)), 413,
            "notebooks may be at most 0.2 MiB")


def test_a_body_where_none_is_read_is_bounded_too(sharing: Sharing) -> None:
    refusal(fetch(sharing, "GET", "api/v1/domains", b"x" * 5000), 413, "at most 1024")


@pytest.mark.parametrize("query", ["limit=%00", "limit=%20", "before=%01", "limit=bogus",
                                   f"before={'9' * 5000}"])
def test_bad_audit_numbers_are_400s(sharing: Sharing, query: str) -> None:
    """A control character is a bad number, not an absent one (tornado makes it a space)."""
    refusal(fetch(sharing, "GET", f"api/v1/audit?{query}", auth=hub_auth(KnownAuditor)), 400,
            "must be an integer from 0 to")


def test_a_share_id_that_could_not_exist_is_unknown(sharing: Sharing) -> None:
    for share_id in ("%00abcdefghijklmnopqrst", "a" * 65, "abcdefghijklmnopqrstuv%0A"):
        refusal(fetch(sharing, "GET", f"api/v1/shares/{share_id}"), 404, "no shared notebook")
    # Not UTF-8 at all (an encoded lone surrogate): tornado's own 400, as JSON.
    refusal(fetch(sharing, "GET", "api/v1/shares/%ED%A0%80"), 400, "Invalid unicode")
    recorded = [e.share_id or "" for e in sharing.store.events()]
    assert len(recorded) == 3
    assert all(r.isprintable() and len(r) <= 64 for r in recorded), recorded


# --- the pure checks -----------------------------------------------------------------------------


def test_quoted_keeps_short_values_and_cuts_long_ones() -> None:
    assert quoted("a.ipynb") == "'a.ipynb'"
    assert quoted(3) == "3"
    assert quoted("\x00\ud800") == "'\\x00\\ud800'"
    assert quoted("x" * 1000) == f"{'x' * 40!r}… (1000 characters)"


def test_check_body_walks_deep_values_without_recursion() -> None:
    check_body(nested(MAX_DEPTH - 1))
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH} levels"):
        check_body({"k": deep})
    assert path_of(None) == "the top level"
    assert path_of(((None, "cells"), 3)) == "'cells'[3]"
