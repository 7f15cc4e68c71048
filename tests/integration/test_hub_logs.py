"""The hub log of refused requests: one warning line each with the reason, no traceback.

A 4xx is the client's mistake, answered with a message: the hub log says which request
and why in one line, never an ``[E]`` line with a Python traceback (a bad ``user_options``
on a user's first start was one: JupyterHub logs any exception of its
``apply_user_options`` hook so). Server errors (5xx) keep their tracebacks.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.hubtools import TEST_CATALOG, Hub, shut_down

#: A hub log line's level, as JupyterHub writes it: ``[W 2026-... StudioHubApp ...]``.
LEVEL = re.compile(r"^\[([DIWEC]) \d{4}-")
#: Neither the sharing nor the jobs service: not needed by these tests, and their start
#: is most of a hub's on a loaded machine (the session's hub may not be up in time).
LEAN = {"sharing": {"enabled": False}, "jobs": {"enabled": False}}


def start_hub(tmp_path_factory: pytest.TempPathFactory, name: str,
              settings: dict[str, Any] | None = None) -> Hub:
    workdir = tmp_path_factory.mktemp(name)
    workdir.chmod(0o755)
    return Hub(workdir, catalog=TEST_CATALOG, settings=LEAN if settings is None else settings)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """This module's own lean hub (overrides the session's)."""
    hub = start_hub(tmp_path_factory, "logs")
    hub.start(timeout=300)
    yield hub
    shut_down(hub)


def refusals(hub: Hub, user: Any) -> list[tuple[str, requests.Response]]:
    """A few refused requests of a newcomer, each with the path it names."""
    me, admin = f"/users/{user.name}/server", f"/studiohub/users/{hub.admin}/kernels"
    return [
        # A size that does not exist, on the user's first start (no spawner yet).
        (me, user.api("POST", me, json={"user_options": {"size": "nope"}})),
        # A size too big for this machine, allowed by the user's domains.
        (me, user.api("POST", me, json={"user_options": {"size": "giant"}})),
        (me, user.api("POST", me, data=b"{not json")),
        ("/users/nosuchuser/server", hub.api("POST", "/users/nosuchuser/server")),
        # Someone else's kernels.
        (admin, user.api("POST", admin, json={"image": "base", "size": "tiny"})),
        # The user's own kernels while their server is not running.
        (f"/studiohub/users/{user.name}/kernel-options",
         user.api("GET", f"/studiohub/users/{user.name}/kernel-options")),
    ]


def log_after(hub: Hub, offset: int, settle: float = 1.0) -> list[str]:
    time.sleep(settle)  # the hub writes its request lines as each answer finishes
    with hub.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def test_refused_requests_are_one_warning_line_each_without_traceback(hub: Hub) -> None:
    user = hub.new_user("lg")
    offset = hub.log_path.stat().st_size
    answers = refusals(hub, user)
    statuses = [r.status_code for _, r in answers]
    assert statuses == [400, 409, 400, 404, 403, 409], [r.text for _, r in answers]
    lines = log_after(hub, offset)
    text = "\n".join(lines)
    assert "Traceback" not in text, text
    assert not [line for line in lines if line.startswith(("[E", "[C"))], text
    for path, answer in answers:
        message = answer.json()["message"]
        assert message, answer.text
        about = [line for line in lines if f"/hub/api{path} " in line or
                 line.endswith(f"/hub/api{path}")]
        # JupyterHub's request line (status, user, time) and the reason's line: warnings.
        assert about and all(LEVEL.match(line) and LEVEL.match(line)[1] == "W"
                             for line in about), (path, about)
        with_reason = [line for line in lines if message[:60] in line]
        assert len(with_reason) == 1, (message, with_reason)
        assert str(answer.status_code) in with_reason[0]
    # Nothing was started by any of them.
    assert not user.api("GET", f"/users/{user.name}").json().get("servers")


def test_start_is_quiet_and_early_requests_hear_it_is_starting(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Requests that reach the proxy before the hub has routes (a browser tab of a server
    that outlived a restart) are answered 503 "starting"; the start log has no error."""
    hub = start_hub(tmp_path_factory, "quiet", settings={})  # every service, as `up` runs
    starting = threading.Thread(target=hub.start, kwargs={"timeout": 300}, daemon=True)
    starting.start()
    seen: list[tuple[int, str]] = []
    try:
        while starting.is_alive():
            with contextlib.suppress(requests.RequestException):
                r = requests.get(f"{hub.url}/user/someone/api/kernels", timeout=2)
                seen.append((r.status_code, r.text))
            time.sleep(0.05)
        starting.join()
        assert hub.process is not None and hub.process.poll() is None, hub.log_tail()
        log = hub.log_path.read_text(errors="replace")
    finally:
        hub.stop()
    assert (503, '{"status":503,"message":"StudioHub is starting: try again in a few '
                 'seconds"}') in seen, seen[:5]
    for noise in ("ECONNREFUSED", "Traceback", "    at ", "[ConfigProxy] \x1b[31merror"):
        assert noise not in log, log
    assert not [line for line in log.splitlines() if line.startswith(("[E", "[C"))], log
    # JupyterHub's notes on StudioHub's deliberate settings are info lines; the warnings
    # left are the operator's to act on (no TLS in front) or the culler's (no pycurl).
    warnings = [line for line in log.splitlines() if line.startswith("[W")]
    assert all("without SSL" in line or "pycurl" in line for line in warnings), warnings


def test_jupyterhubs_own_refusals_are_warnings_without_traceback(hub: Hub) -> None:
    """Refusals logged by JupyterHub's own handlers with ``exc_info`` (the spawn page's
    form, a body that is not JSON) are one warning line with the reason (hubapp.py)."""
    user = hub.new_user("lj")
    offset = hub.log_path.stat().st_size
    form = user.session.post(f"{hub.url}/hub/spawn/{user.name}", timeout=60,
                             data={"image": "base", "size": "nope",
                                   "_xsrf": user.session.cookies.get("_xsrf", "")})
    not_json = user.api("POST", f"/users/{user.name}/tokens", data=b"{not json")
    assert (form.status_code, not_json.status_code) == (400, 400), (form.text, not_json.text)
    assert "nope" in form.text  # the page says what was refused
    lines = log_after(hub, offset)
    text = "\n".join(lines)
    assert "Traceback" not in text, text
    assert not [line for line in lines if line.startswith(("[E", "[C"))], text
    for said in ("Failed to spawn single-user server with form: 400 ",
                 "Couldn't parse JSON: 400 "):
        found = [line for line in lines if said in line]
        assert len(found) == 1 and LEVEL.match(found[0])[1] == "W", (said, text)  # type: ignore[index]
    assert not user.api("GET", f"/users/{user.name}").json().get("servers")
