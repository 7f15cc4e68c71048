"""The bad-input corpus (:mod:`tests.badinput`) against one real hub, one user, one server.

Every StudioHub endpoint that takes input (the hub's API, the Lab extension in the
user's server, the sharing service, the training jobs and models services' APIs) gets
every bad input that has a place to go there, each as its own test. Each must be
refused: a 4xx JSON ``{status, message}``, never a 5xx, a message under 1 KB (also for a
20 MB input), and nothing changed: the same shares and versions, placements,
TensorBoards, running kernels, training jobs and their statuses, model endpoints, files
in the home, and the same server (not restarted), and the idle user still without one.
(The endpoints' data plane answers in the protocols' own error shape: its bad requests
are tests/integration/test_endpoints.py's.)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from studiohub.slugs import unix_name
from tests.badinput import JOBS, MISSING_KERNEL, MODELS, UNREADABLE_LINK, Case, cases, notebook
from tests.hubtools import Hub, User

MAX_MESSAGE_BYTES = 1024
HOME_SKIPPED = (".",)  # hidden files: the server's own runtime and caches change by themselves


class Corpus:
    """The module's hub, its two users, and what the URLs' placeholders stand for."""

    def __init__(self, hub: Hub, user: User, idle: User, share_id: str, job_id: str) -> None:
        self.hub, self.user, self.idle, self.share_id = hub, user, idle, share_id
        self.job_id = job_id
        self.home = Path(pwd.getpwnam(unix_name(user.name)).pw_dir)

    def url(self, template: str) -> str:
        return self.hub.url + template.format(user=self.user.name, idle=self.idle.name,
                                              share=self.share_id, kernel=MISSING_KERNEL,
                                              tb="9999999", job=self.job_id)

    def state(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was."""
        user, hub = self.user, self.hub
        options = hub.api("GET", f"/studiohub/users/{user.name}/kernel-options",
                          token=user.token)
        boards = user.lab_api("GET", "/tensorboards")
        model = hub.api("GET", f"/users/{user.name}").json()
        idle = hub.api("GET", f"/users/{self.idle.name}").json()
        return {
            "shares": stored(hub),
            "placements": sorted(options.json().get("placements", [])) if options.ok
            else options.status_code,
            "tensorboards": sorted(str(b.get("id")) for b in boards.json()["tensorboards"])
            if boards.ok else boards.status_code,
            "kernels": sorted(k["id"] for k in user.server_api("GET", "/kernels").json()),
            "server": (model.get("servers", {}).get("", {}).get("started"),
                       bool(model.get("pending"))),
            "idle": (bool(idle.get("servers")), bool(idle.get("pending"))),
            "jobs": jobs_of(hub, user),
            "endpoints": endpoints_of(hub, user),
            "home": home_files(self.home),
        }


def stored(hub: Hub) -> tuple[int, int, int]:
    """Rows of shares and versions, and snapshot folders, of the hub's sharing service."""
    data = hub.state_dir / "sharing"
    with contextlib.closing(sqlite3.connect(data / "sharing.sqlite")) as db:
        shares = db.execute("select count(*) from sharing_shares").fetchone()[0]
        versions = db.execute("select count(*) from sharing_versions").fetchone()[0]
    return shares, versions, len(list((data / "snapshots").iterdir()))


def jobs_call(hub: Hub, user: User, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, f"{hub.url}{JOBS}/{path}", timeout=60,
                            headers={"Authorization": f"token {user.token}"}, **kw)


def jobs_of(hub: Hub, user: User) -> list[tuple[str, str]]:
    """The user's training jobs and their statuses, as the jobs service lists them."""
    r = jobs_call(hub, user, "GET", "jobs")
    r.raise_for_status()
    return sorted((j["id"], j["status"]) for j in r.json()["jobs"])


def endpoints_of(hub: Hub, user: User) -> list[str]:
    """The user's model endpoints, as the models service lists them."""
    r = requests.get(f"{hub.url}{MODELS}/endpoints", timeout=60,
                     headers={"Authorization": f"token {user.token}"})
    r.raise_for_status()
    return sorted(e["name"] for e in r.json()["endpoints"])


def ended_job(hub: Hub, user: User, timeout: float = 120) -> str:
    """A training job of the user's that has ended (what runs does not matter: its
    status, events and files must not change while the corpus runs)."""
    r = jobs_call(hub, user, "POST", "jobs",
                  json={"image": "base", "size": "tiny", "command": ["true"]})
    assert r.status_code == 201, r.text
    job_id = str(r.json()["id"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if jobs_call(hub, user, "GET", f"jobs/{job_id}").json()["status"] in \
                ("succeeded", "failed", "cancelled"):
            return job_id
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not end: {hub.log_tail(2000)}")


def home_files(home: Path) -> list[tuple[str, int, int]]:
    """The user's visible files: path, size, modification time."""
    found = []
    for root, dirs, files in os.walk(home):
        dirs[:] = [d for d in dirs if not d.startswith(HOME_SKIPPED)]
        for name in files:
            if not name.startswith(HOME_SKIPPED):
                path = Path(root, name)
                with contextlib.suppress(FileNotFoundError):
                    st = path.lstat()
                    found.append((str(path.relative_to(home)), st.st_size, st.st_mtime_ns))
    return sorted(found)


@pytest.fixture(scope="module")
def corpus(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """A user in team-a with a running server, a notebook, a TensorBoard folder, a link
    into a directory they cannot read, one share and one ended training job; and a user
    without a server."""
    user = hub.new_user("bad", groups=("team-a",))
    idle = hub.new_user("idle", groups=("team-a",))
    user.spawn(image="base", size="tiny")
    r = user.server_api("PUT", "/contents/nb.ipynb",
                        json={"type": "notebook", "format": "json", "content": notebook()})
    assert r.status_code in (200, 201), r.text
    assert user.server_api("PUT", "/contents/runs", json={"type": "directory"}).ok
    secret = tmp_path_factory.mktemp("unreadable")
    secret.chmod(0o700)  # root's: the user cannot enter it
    (secret / "x.ipynb").write_text("{}")
    home = Path(pwd.getpwnam(unix_name(user.name)).pw_dir)
    (home / UNREADABLE_LINK).symlink_to(secret / "x.ipynb")
    r = requests.post(f"{hub.url}/services/sharing/api/v1/shares", timeout=60,
                      headers={"Authorization": f"token {user.token}"},
                      json={"domain": "team-a", "name": "nb.ipynb", "notebook": notebook()})
    assert r.status_code == 201, r.text
    yield Corpus(hub, user, idle, r.json()["id"], ended_job(hub, user))
    with contextlib.suppress(Exception):
        hub.stop_server(user.name, timeout=60)


def wait_until_running(corpus: Corpus, timeout: float = 60) -> None:
    """A case before may have restarted the server (a failure of its own): wait for it,
    so one wrongly accepted restart does not fail every case after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = corpus.hub.api("GET", f"/users/{corpus.user.name}").json() \
            .get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(0.5)


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_short_4xx_that_changes_nothing(corpus: Corpus, case: Case) -> None:
    wait_until_running(corpus)
    endpoint, bad = case.endpoint, case.input
    token = corpus.hub.admin_token if endpoint.id == "sharing-audit" else corpus.user.token
    before = corpus.state()
    r = requests.request(endpoint.method, corpus.url(bad.url(endpoint)),
                         data=bad.body(endpoint), timeout=120,
                         headers={"Authorization": f"token {token}",
                                  "Content-Type": "application/json"})
    time.sleep(0.3 if endpoint.restarts or "tensorboard" in endpoint.id else 0)
    after = corpus.state()
    summary = f"{r.status_code} {r.headers.get('Content-Type')} {r.content[:300]!r}"
    assert r.status_code < 500, summary
    assert 400 <= r.status_code < 500, summary
    assert r.headers.get("Content-Type", "").startswith("application/json"), summary
    assert len(r.content) < MAX_MESSAGE_BYTES + 100, summary
    body = r.json()
    assert body.get("status") == r.status_code, summary
    assert isinstance(body.get("message"), str) and body["message"], summary
    assert len(body["message"].encode()) < MAX_MESSAGE_BYTES, summary
    assert after == before, summary
