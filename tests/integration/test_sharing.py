"""Notebook sharing against a real hub, proxy, sharing service and users' servers.

Authors, members and strangers are real hub users in real groups (domains); browsers are
``requests`` sessions that went through the hub's login form and the service's OAuth;
copies land through the recipients' own running Jupyter servers.
"""

from __future__ import annotations

import base64
import os
import pwd
import re
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from studiohub.slugs import unix_name
from tests.hubtools import User
from tests.sharinghub import (
    SharingHub,
    call,
    code_cell,
    make_notebook,
    malicious_notebook,
    markdown_cell,
    running_sharing_hub,
    share,
    stream,
)

MAX_SHARES = 4
AUTH_CACHE_SECONDS = 1
CSP_NO_SCRIPT = "script-src 'none'"


@pytest.fixture(scope="module")
def sharing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingHub]:
    if os.geteuid() != 0:
        pytest.skip("integration tests create unix users: run them as root")
    with running_sharing_hub(tmp_path_factory.mktemp("sharing"), max_notebook_size="1M",
                             max_shares_per_user=MAX_SHARES, max_versions_per_share=3,
                             auth_cache_seconds=AUTH_CACHE_SECONDS) as hub:
        yield hub


@pytest.fixture
def alice(sharing: SharingHub) -> User:
    """An author in team-a, new for each test (so per-user limits never carry over)."""
    return sharing.new_user("alice", groups=("team-a",))


@pytest.fixture(scope="module")
def bob(sharing: SharingHub) -> User:
    """A member of team-a whose server runs (copies need it)."""
    user = sharing.new_user("bob", groups=("team-a",))
    user.spawn(image="base", size="tiny")
    return user


@pytest.fixture(scope="module")
def carol(sharing: SharingHub) -> User:
    """A stranger: team-b only."""
    return sharing.new_user("carol", groups=("team-b",))


def simple_notebook(text: str = "hello from alice") -> dict[str, Any]:
    return make_notebook(markdown_cell(f"# Results\n{text}", cell_id="intro"),
                         code_cell("print(42)", stream("the answer is 42\n"), cell_id="calc"))


def page(hub: SharingHub, user: User, path: str, **kwargs: Any) -> requests.Response:
    """A page of the service in ``user``'s browser session (OAuth on first visit)."""
    return user.session.get(hub.url + path, timeout=30, **kwargs)


def xsrf(html: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert match, "no _xsrf field in the page"
    return match.group(1)


def assert_json_error(r: requests.Response, status: int, *fragments: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and isinstance(body["message"], str)
    for fragment in fragments:
        assert fragment in body["message"], body["message"]


def home_file(user: User, name: str) -> Path:
    return Path(pwd.getpwnam(unix_name(user.name)).pw_dir) / name


# --- the happy path --------------------------------------------------------------------------


def test_share_then_a_member_previews_and_copies(sharing: SharingHub, alice: User,
                                                 bob: User) -> None:
    s = share(sharing, alice, simple_notebook(), note="First results, see cell 2")
    assert s["url"] == f"/services/sharing/s/{s['id']}"
    assert (s["author"], s["domain"], s["domain_name"], s["version"]) == \
        (alice.name, "team-a", "Team A", 1)

    r = page(sharing, bob, s["url"])
    assert r.status_code == 200
    assert CSP_NO_SCRIPT in r.headers["Content-Security-Policy"]
    for text in ("analysis", alice.name, "First results, see cell 2", "Team A",
                 "Base Python 3.11 · CPU · 1 vCPU + 512 MiB", "the answer is 42",
                 "Copy to my workspace"):
        assert text in r.text, text

    copied = bob.session.post(f"{sharing.url}{s['url']}/copy", allow_redirects=False,
                              data={"_xsrf": xsrf(r.text), "version": "1"}, timeout=30)
    assert copied.status_code == 303, copied.text
    assert copied.headers["Location"] == f"/user/{bob.name}/lab/tree/analysis.ipynb"
    path = home_file(bob, "analysis.ipynb")
    assert path.stat().st_uid == pwd.getpwnam(unix_name(bob.name)).pw_uid
    assert "the answer is 42" in path.read_text()


def test_copy_never_overwrites_and_opens_in_lab(sharing: SharingHub, alice: User,
                                                bob: User) -> None:
    s = share(sharing, alice, simple_notebook(), name="report.ipynb")
    first = call(sharing, bob, "POST", f"shares/{s['id']}/copy")
    second = call(sharing, bob, "POST", f"shares/{s['id']}/copy")
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert first.json() == {"path": "report.ipynb",
                            "url": f"/user/{bob.name}/lab/tree/report.ipynb"}
    assert second.json()["path"] == "report-2.ipynb"
    lab = bob.session.get(sharing.url + second.json()["url"], timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text


def test_concurrent_copies_get_distinct_names_and_none_overwrites_another(
        sharing: SharingHub, alice: User, bob: User) -> None:
    """Five "Copy to my workspace" at once: five files, five names (issue 12.7)."""
    s = share(sharing, alice, simple_notebook("five at once"), name="race.ipynb")
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: call(sharing, bob, "POST", f"shares/{s['id']}/copy"),
                                range(5)))
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    names = sorted(a.json()["path"] for a in answers)
    assert names == ["race-2.ipynb", "race-3.ipynb", "race-4.ipynb", "race-5.ipynb",
                     "race.ipynb"]
    for name in names:
        assert "five at once" in home_file(bob, name).read_text()


def test_the_server_token_of_a_users_lab_can_use_the_service(sharing: SharingHub, alice: User,
                                                             bob: User) -> None:
    """What the Lab extension's server side will do: call with $JUPYTERHUB_API_TOKEN."""
    state = sharing.api("GET", f"/users/{bob.name}").json()["servers"][""]["state"]
    environ = Path(f"/proc/{state['pid']}/environ").read_bytes().split(b"\0")
    token = dict(v.decode().split("=", 1) for v in environ if b"=" in v)["JUPYTERHUB_API_TOKEN"]
    server = User(sharing, bob.name, bob.session, token)
    assert call(sharing, server, "GET", "domains").json() == {
        "domains": [{"id": "team-a", "name": "Team A"}]}
    s = share(sharing, alice, simple_notebook(), name="from-lab.ipynb")
    r = call(sharing, server, "POST", f"shares/{s['id']}/copy")
    assert r.status_code == 201 and r.json()["path"] == "from-lab.ipynb"


def test_new_version_at_the_same_link(sharing: SharingHub, alice: User, bob: User) -> None:
    s = share(sharing, alice, simple_notebook("version one text"), note="v1")
    r = call(sharing, alice, "POST", f"shares/{s['id']}/versions",
             json={"notebook": simple_notebook("version two text"), "note": "v2"})
    assert r.status_code == 201, r.text
    assert r.json()["number"] == 2

    newest = page(sharing, bob, s["url"])
    assert "version two text" in newest.text and "version one text" not in newest.text
    assert "2 of 2" in newest.text and "?version=1" in newest.text
    older = page(sharing, bob, s["url"] + "?version=1")
    assert "version one text" in older.text and "This is an older version" in older.text
    details = call(sharing, bob, "GET", f"shares/{s['id']}").json()
    assert [v["number"] for v in details["versions"]] == [2, 1]
    assert [v["note"] for v in details["versions"]] == ["v2", "v1"]
    v1 = call(sharing, bob, "GET", f"shares/{s['id']}/versions/1").json()
    assert "version one text" in v1["cells"][0]["source"]
    copied = call(sharing, bob, "POST", f"shares/{s['id']}/copy", json={"version": 1})
    assert "version one text" in home_file(bob, copied.json()["path"]).read_text()

    stranger = call(sharing, bob, "POST", f"shares/{s['id']}/versions",
                    json={"notebook": simple_notebook("hijack")})
    assert_json_error(stranger, 403, "only the author")
    assert_json_error(call(sharing, bob, "GET", f"shares/{s['id']}/versions/7"), 404,
                      "version 7 does not exist")


def test_versions_per_link_are_limited(sharing: SharingHub, alice: User) -> None:
    s = share(sharing, alice, simple_notebook())
    for _ in range(2):
        r = call(sharing, alice, "POST", f"shares/{s['id']}/versions",
                 json={"notebook": simple_notebook()})
        assert r.status_code == 201
    r = call(sharing, alice, "POST", f"shares/{s['id']}/versions",
             json={"notebook": simple_notebook()})
    assert_json_error(r, 403, "already has 3 versions")
    call(sharing, alice, "DELETE", f"shares/{s['id']}")


def test_outputs_excluded_on_request(sharing: SharingHub, alice: User, bob: User) -> None:
    s = share(sharing, alice, simple_notebook(), include_outputs=False)
    snapshot = call(sharing, bob, "GET", f"shares/{s['id']}/versions/latest").json()
    calc = next(c for c in snapshot["cells"] if c["id"] == "calc")
    assert calc["outputs"] == [] and calc["execution_count"] is None
    r = page(sharing, bob, s["url"])
    assert "the answer is 42" not in r.text and "outputs not included" in r.text
    assert "print" in r.text  # the code itself is there


# --- refusals -----------------------------------------------------------------------------------


def test_non_member_is_refused_with_the_domain_and_never_the_title(
        sharing: SharingHub, alice: User, carol: User) -> None:
    s = share(sharing, alice, simple_notebook(), name="secret-plans.ipynb")
    for method, path in (("GET", f"shares/{s['id']}"), ("GET", f"shares/{s['id']}/versions/1"),
                         ("POST", f"shares/{s['id']}/copy"), ("DELETE", f"shares/{s['id']}")):
        r = call(sharing, carol, method, path)
        assert_json_error(r, 403, "shared with the domain 'Team A'", "not a member")
        assert "secret" not in r.text
    r = page(sharing, carol, s["url"])
    assert r.status_code == 403 and "Team A" in r.text and "secret" not in r.text
    assert CSP_NO_SCRIPT in r.headers["Content-Security-Policy"]
    listed = call(sharing, carol, "GET", "shares").json()["shares"]
    assert s["id"] not in {x["id"] for x in listed}


def test_anonymous_visitor_is_sent_to_login_and_the_api_refuses(sharing: SharingHub,
                                                                alice: User) -> None:
    s = share(sharing, alice, simple_notebook(), name="secret-anon.ipynb")
    r = requests.get(sharing.url + s["url"], allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]
    landed = requests.get(sharing.url + s["url"], timeout=30)
    assert landed.url.startswith(f"{sharing.url}/hub/login") and "secret" not in landed.text
    for method, path in (("GET", f"shares/{s['id']}"), ("POST", f"shares/{s['id']}/copy"),
                         ("GET", "shares"), ("POST", "shares")):
        r = call(sharing, None, method, path)
        assert_json_error(r, 403, "authentication required")
        assert "secret" not in r.text
    bogus = requests.get(f"{sharing.service_url}api/v1/shares/{s['id']}", timeout=30,
                         headers={"Authorization": "token not-a-token"})
    assert_json_error(bogus, 403)


def test_unknown_links_are_404(sharing: SharingHub, bob: User) -> None:
    assert_json_error(call(sharing, bob, "GET", "shares/AAAAAAAAAAAAAAAAAAAAAA"), 404,
                      "no shared notebook at this link")
    r = page(sharing, bob, "/services/sharing/s/..%2F..%2Fetc%2Fpasswd")
    assert r.status_code == 404 and "root:" not in r.text
    assert_json_error(call(sharing, bob, "GET", "nothing/here"), 404, "no API at")


def test_revoke_stops_the_link_for_everyone(sharing: SharingHub, alice: User,
                                            bob: User) -> None:
    s = share(sharing, alice, simple_notebook(), name="revoked-title.ipynb")
    assert page(sharing, bob, s["url"]).status_code == 200
    assert_json_error(call(sharing, bob, "DELETE", f"shares/{s['id']}"), 403, "only the author")
    r = call(sharing, alice, "DELETE", f"shares/{s['id']}")
    assert r.status_code == 200 and r.json() == {"id": s["id"], "revoked": True}

    for method, path in (("GET", f"shares/{s['id']}"), ("POST", f"shares/{s['id']}/copy"),
                         ("GET", f"shares/{s['id']}/versions/1")):
        r = call(sharing, bob, method, path)
        assert_json_error(r, 410, "revoked by its author")
        assert "revoked-title" not in r.text
    r = page(sharing, bob, s["url"])
    assert r.status_code == 410 and "revoked-title" not in r.text
    assert not (sharing.data_dir / "snapshots" / s["id"]).exists()
    mine = {x["id"]: x for x in call(sharing, alice, "GET", "shares?filter=mine").json()["shares"]}
    assert mine[s["id"]]["revoked"]
    for listing in ("shares", "recent"):
        ids = {x["id"] for x in call(sharing, bob, "GET", listing).json()["shares"]}
        assert s["id"] not in ids


def test_shares_per_user_are_limited(sharing: SharingHub) -> None:
    erin = sharing.new_user("erin", groups=("team-a",))
    made = [share(sharing, erin, simple_notebook()) for _ in range(MAX_SHARES)]
    r = call(sharing, erin, "POST", "shares", json={"domain": "team-a", "name": "x.ipynb",
                                                    "notebook": simple_notebook()})
    assert_json_error(r, 403, f"you already have {MAX_SHARES} shared notebooks")
    call(sharing, erin, "DELETE", f"shares/{made[0]['id']}")
    share(sharing, erin, simple_notebook())


def test_copy_needs_a_running_server(sharing: SharingHub, alice: User) -> None:
    idle = sharing.new_user("idle", groups=("team-a",))
    s = share(sharing, alice, simple_notebook())
    assert_json_error(call(sharing, idle, "POST", f"shares/{s['id']}/copy"), 409,
                      "your server is not running")
    preview = page(sharing, idle, s["url"])
    r = idle.session.post(f"{sharing.url}{s['url']}/copy", data={"_xsrf": xsrf(preview.text)},
                          allow_redirects=False, timeout=30)
    assert r.status_code == 409 and "Start my server" in r.text
    start = f"/hub/spawn/{idle.name}?next=%2Fservices%2Fsharing%2Fs%2F{s['id']}"
    assert start in r.text

    # "Start my server": the hub's spawn form, then back to the preview, then the copy works.
    form = idle.session.get(sharing.url + start, timeout=30)
    assert form.status_code == 200
    started = idle.session.post(form.url, data={"image": "base", "size": "tiny",
                                                "_xsrf": idle.session.cookies.get(
                                                    "_xsrf", path="/hub/") or ""},
                                timeout=120)
    preview_url = sharing.url + s["url"]
    # A quick spawn redirects straight to the preview; a slow one to the pending page.
    assert started.url == preview_url or \
        f"next=%2Fservices%2Fsharing%2Fs%2F{s['id']}" in started.url, started.url
    idle.wait_ready()
    back = started if started.url == preview_url else idle.session.get(started.url, timeout=30)
    assert back.url == preview_url
    again = idle.session.post(f"{sharing.url}{s['url']}/copy", allow_redirects=False,
                              data={"_xsrf": xsrf(back.text)}, timeout=30)
    assert again.status_code == 303 and again.headers["Location"].endswith("/analysis.ipynb")


def test_leaving_a_domain_takes_effect_within_the_auth_cache(sharing: SharingHub,
                                                             alice: User) -> None:
    frank = sharing.new_user("frank", groups=("team-a",))
    s = share(sharing, alice, simple_notebook())
    assert call(sharing, frank, "GET", f"shares/{s['id']}").status_code == 200
    r = sharing.api("DELETE", "/groups/team-a/users", json={"users": [frank.name]})
    assert r.status_code == 200
    time.sleep(AUTH_CACHE_SECONDS + 0.5)
    assert_json_error(call(sharing, frank, "GET", f"shares/{s['id']}"), 403, "Team A")


# --- bad input: every case a 4xx with a message, and nothing stored ----------------------------

def bad(**changes: Any) -> dict[str, Any]:
    """A request body that would be fine but for ``changes``."""
    return {"domain": "team-a", "name": "ok.ipynb", "notebook": simple_notebook(), **changes}


BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"domain": "team-a", "notebook": {', 400, "not valid JSON"),
    ("not an object", [1, 2], 400, "must be a JSON object"),
    ("missing notebook", {"domain": "team-a", "name": "a.ipynb"}, 400,
     "missing key 'notebook'"),
    ("unknown key", bad(nb={}), 400, "unknown key(s) 'nb'"),
    ("wrong type", bad(include_outputs="yes"), 400, "'include_outputs' must be true or false"),
    ("nbformat 3", bad(notebook={"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                                 "worksheets": []}), 400, "nbformat 3 is not supported"),
    ("nbformat 5", bad(notebook={**make_notebook(), "nbformat": 5}), 400,
     "nbformat 5 is not supported"),
    ("no nbformat", bad(notebook={"cells": [], "metadata": {}}), 400,
     "nbformat None is not supported"),
    ("invalid cell", bad(notebook=make_notebook({"cell_type": "bogus", "source": ""})), 400,
     "not a valid nbformat 4 notebook"),
    ("traversal", bad(name="../../etc/evil.ipynb"), 400, "must be a file name"),
    ("subdirectory", bad(name="sub/dir.ipynb"), 400, "must be a file name"),
    ("backslash", bad(name="..\\evil.ipynb"), 400, "must be a file name"),
    ("dot-dot", bad(name=".."), 400, "must be a file name"),
    ("hidden", bad(name=".bashrc.ipynb"), 400, "hidden file name"),
    ("not ipynb", bad(name="notes.txt"), 400, "must end in .ipynb"),
    ("NUL", bad(name="a\x00.ipynb"), 400, "must be a file name"),
    ("unknown domain", bad(domain="nope"), 400, "domain 'nope' is not one of your"),
    ("other domain", bad(domain="team-b"), 400, "domain 'team-b' is not one of your"),
    ("huge notebook", bad(notebook=make_notebook(code_cell("x", stream("y" * 1_070_000)))),
     413, "the limit is 1.0 MiB"),
    ("huge request", bad(notebook=make_notebook(markdown_cell("z" * 1_300_000))), 413,
     "notebooks may be at most 1.0 MiB"),
    ("40 MB of junk", b"x" * 40_000_000, 413, "notebooks may be at most 1.0 MiB"),
]


def stored(hub: SharingHub) -> tuple[int, int, int]:
    """Rows in the shares and versions tables, and snapshot directories."""
    with sqlite3.connect(hub.data_dir / "sharing.sqlite") as db:
        shares = db.execute("select count(*) from sharing_shares").fetchone()[0]
        versions = db.execute("select count(*) from sharing_versions").fetchone()[0]
    return shares, versions, len(list((hub.data_dir / "snapshots").iterdir()))


@pytest.fixture(scope="module")
def dave(sharing: SharingHub) -> User:
    return sharing.new_user("dave", groups=("team-a",))


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_is_stored(sharing: SharingHub, dave: User, case: str,
                                                    body: Any, status: int, message: str) -> None:
    before = stored(sharing)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    r = call(sharing, dave, "POST", "shares", **kwargs)
    assert_json_error(r, status, message)
    assert stored(sharing) == before
    assert call(sharing, dave, "GET", "shares?filter=mine").json() == {"shares": []}


def test_bad_new_versions_are_refused_and_nothing_is_stored(sharing: SharingHub,
                                                            alice: User) -> None:
    s = share(sharing, alice, simple_notebook())
    before = stored(sharing)
    for body, status in (({"notebook": {"nbformat": 4}}, 400), ({"notebook": "x"}, 400),
                         ({"notebook": simple_notebook(), "name": "a.ipynb"}, 400),
                         ({"notebook": make_notebook(code_cell("x", stream("y" * 1_200_000)))},
                          413)):
        assert_json_error(call(sharing, alice, "POST", f"shares/{s['id']}/versions", json=body),
                          status)
    assert stored(sharing) == before
    assert call(sharing, alice, "GET", f"shares/{s['id']}").json()["version"] == 1


def test_oversized_bodies_elsewhere_are_413(sharing: SharingHub, bob: User) -> None:
    r = call(sharing, bob, "POST", "shares/x/copy", data=b"{" + b" " * 200_000 + b"}")
    assert_json_error(r, 413, "at most 1024 are accepted here")
    r = call(sharing, None, "POST", "shares", data=b"x" * 5_000_000)
    assert_json_error(r, 403, "authentication required")


def test_bad_query_arguments_are_400(sharing: SharingHub, bob: User) -> None:
    assert_json_error(call(sharing, bob, "GET", "shares?filter=all"), 400, "filter 'all'")
    assert_json_error(call(sharing, bob, "GET", "shares/x/versions/-1"), 400,
                      "must be 'latest' or an integer from 1 to 2147483647")
    # Numbers past the tables' integers are refused, not an overflow 500.
    huge = "9" * 30
    for number in (huge, "9" * 5000):  # past int()'s 4300 digits too
        assert_json_error(call(sharing, bob, "GET", f"shares/x/versions/{number}"), 400,
                          "from 1 to 2147483647")
    assert_json_error(call(sharing, bob, "POST", "shares/x/copy", json={"version": 10**30}),
                      400, "version must be an integer from 1 to 2147483647")
    assert_json_error(call(sharing, bob, "POST", "shares/x/copy", json={"version": "1"}), 400,
                      "'version' must be an integer")
    admin = sharing_admin(sharing)
    assert_json_error(call(sharing, admin, "GET", "audit?limit=lots"), 400, "limit 'lots'")
    assert_json_error(call(sharing, admin, "GET", f"audit?before={huge}"), 400,
                      "from 0 to 2147483647")


# --- malicious notebooks ------------------------------------------------------------------------


def test_malicious_outputs_are_inert_in_the_preview(sharing: SharingHub, alice: User,
                                                    bob: User) -> None:
    s = share(sharing, alice, malicious_notebook(), name="evil.ipynb")
    r = page(sharing, bob, s["url"])
    assert r.status_code == 200
    html = r.text.lower()
    for forbidden in ("<script", "javascript:", "<svg", "<iframe", "onerror", "onload",
                      "onmouseover", "pwned"):
        assert forbidden not in html, forbidden
    # What is safe survives; the SVG is shown as an image (where browsers run no script),
    # and what is inside that image was scrubbed too.
    for kept in ("bold survives", "plain text survives", "javascript output is not run"):
        assert kept in html, kept
    (svg,) = re.findall(r'data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)', r.text)
    svg_text = base64.b64decode(svg).decode().lower()
    assert "<circle" in svg_text
    assert "<script" not in svg_text and "onload" not in svg_text and "pwned" not in svg_text
    policy = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and CSP_NO_SCRIPT in policy
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_a_copied_notebook_is_untrusted_in_the_recipients_lab(sharing: SharingHub, alice: User,
                                                              bob: User) -> None:
    """The author marked the cell trusted; the copy must not run its JavaScript in Lab."""
    s = share(sharing, alice, malicious_notebook(), name="trusting.ipynb")
    snapshot = call(sharing, bob, "GET", f"shares/{s['id']}/versions/latest").json()
    assert "trusted" not in next(c for c in snapshot["cells"] if c["id"] == "evil")["metadata"]
    path = call(sharing, bob, "POST", f"shares/{s['id']}/copy").json()["path"]
    model = bob.server_api("GET", f"/contents/{path}").json()
    evil = next(c for c in model["content"]["cells"] if c["id"] == "evil")
    assert evil["metadata"]["trusted"] is False


# --- lists, views, audit ------------------------------------------------------------------------


def sharing_admin(hub: SharingHub) -> User:
    return User(hub, hub.admin, requests.Session(), hub.admin_token)


def test_lists_views_search_and_recent(sharing: SharingHub, alice: User, bob: User,
                                       carol: User) -> None:
    s = share(sharing, alice, simple_notebook(), name="quarterly-forecast.ipynb")
    for _ in range(2):
        assert page(sharing, bob, s["url"]).status_code == 200
    page(sharing, alice, s["url"])  # the author's own visit is not a view
    mine = {x["id"]: x for x in call(sharing, alice, "GET", "shares?filter=mine").json()["shares"]}
    assert mine[s["id"]]["views"] == 2

    def found(user: User, query: str) -> set[str]:
        return {x["id"] for x in call(sharing, user, "GET", "shares",
                                      params={"q": query}).json()["shares"]}

    assert s["id"] in found(bob, "QUARTERLY") and s["id"] in found(bob, alice.name[:5])
    assert s["id"] not in found(bob, "no-such-title") and s["id"] not in found(carol, "")
    assert "views" not in next(x for x in call(sharing, bob, "GET", "shares").json()["shares"]
                               if x["id"] == s["id"])
    recent = call(sharing, bob, "GET", "recent").json()["shares"]
    assert recent[0]["id"] == s["id"] and recent[0]["opened"]
    index = page(sharing, bob, "/services/sharing/?q=quarterly")
    assert index.status_code == 200 and "quarterly-forecast" in index.text


def test_audit_trail_is_for_auditors_only(sharing: SharingHub, alice: User, bob: User,
                                          carol: User) -> None:
    s = share(sharing, alice, simple_notebook())
    page(sharing, bob, s["url"])
    call(sharing, bob, "POST", f"shares/{s['id']}/copy")
    call(sharing, carol, "GET", f"shares/{s['id']}")
    call(sharing, alice, "DELETE", f"shares/{s['id']}")

    admin = sharing_admin(sharing)
    events = call(sharing, admin, "GET", "audit", params={"share": s["id"]}).json()["events"]
    assert [(e["user"], e["action"]) for e in reversed(events)] == [
        (alice.name, "share"), (bob.name, "open"), (bob.name, "copy"), (carol.name, "refuse"),
        (alice.name, "revoke")]
    assert all(e["time"] for e in events)
    copies = call(sharing, admin, "GET", "audit", params={"action": "copy", "user": bob.name})
    assert {e["action"] for e in copies.json()["events"]} == {"copy"}
    assert_json_error(call(sharing, bob, "GET", "audit"), 403,
                      "custom:studiohub:read:sharing-audit")
    assert page(sharing, bob, "/services/sharing/audit").status_code == 403

    admin_browser = sharing.login(sharing.admin)
    r = admin_browser.get(f"{sharing.service_url}audit?share={s['id']}", timeout=30)
    assert r.status_code == 200
    assert "Sharing audit trail" in r.text and r.text.count("<tr class=\"sh-action-") == 5
