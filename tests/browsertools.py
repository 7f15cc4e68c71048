"""Shared set-up of the Playwright tests: Debian's Chromium, its flags, and artifacts.

A tools module (the switch benchmark drives Chromium with it too). The browser tests'
fixtures, one Chromium per session and ``browser.login``, are in tests/browser/conftest.py.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium on a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates unix users: run as root"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (apt-get install chromium)"),
]

#: Playwright's default of 5 s per expectation is short for a loaded 2-core CI machine,
#: where a save, a service's render or a hub round trip can take longer.
EXPECT_TIMEOUT_MS = 30_000
try:
    from playwright.sync_api import expect
except ImportError:  # a test dependency: absent only outside `make test`
    pass
else:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def sign_in(page: Any, hub_url: str, name: str, password: str) -> Any:
    """Log in through the hub's own form and wait until the hub has let the user in."""
    page.set_default_timeout(60_000)
    page.goto(f"{hub_url}/hub/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    # (A "**/hub/**" pattern would match the login page itself and wait for nothing.)
    page.wait_for_url(lambda url: "/hub/login" not in url)
    return page


def run_from_palette(page: Any, label: str) -> None:
    """Run a notebook command from the command palette until its dialog is open. A
    freshly reloaded Lab may drop the shortcut, or close the palette as it finishes
    restoring: click a cell of the open notebook and try again."""
    palette = page.locator(".lm-CommandPalette-input")
    for _ in range(10):
        try:
            page.locator(".jp-NotebookPanel:visible .jp-Cell").first.click()
            page.keyboard.press("Control+Shift+C")
            palette.fill(label, timeout=2000)
            page.keyboard.press("Enter")
            page.locator(".jp-Dialog").wait_for(state="visible", timeout=5000)
            return
        except Exception:  # Playwright's TimeoutError: try again
            page.keyboard.press("Escape")
    raise TimeoutError(f"could not run {label!r} from the command palette")


class Navigations:
    """Where the page went, each with when it was asked for, redirects included.
    ``wait_for_url`` cannot tell a navigation to come from the URL the page is already
    on, and misses a page that redirects on (the hub's progress page, once the server
    is up, answers with a redirect to the Lab)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[tuple[float, str]] = []
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.seen.append((time.monotonic(), request.url))

    def wait_for(self, url: re.Pattern[str], after: float, timeout: float = 120) -> float:
        """When the page first went to a URL matching ``url`` after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, seen in self.seen:
                if when >= after and url.search(seen):
                    return when
            self.page.wait_for_timeout(20)  # lets Playwright deliver the page's events
        raise TimeoutError(f"no navigation to {url.pattern} in {timeout} s: {self.seen}")


def quiet_lab_settings(home: Path, uid: int, gid: int) -> Path:
    """No news or update toasts in the Lab of the account with this home (they would
    cover ours and dialogs); its Lab user-settings directory."""
    settings = home / ".jupyter" / "lab" / "user-settings"
    path = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checkForUpdates": False, "fetchNews": "false"}))
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(home / ".jupyter")], check=True)
    return settings


def quiet_lab(name: str) -> None:
    """:func:`quiet_lab_settings` for the unix account of the hub user ``name``."""
    from studiohub.slugs import unix_name

    account = pwd.getpwnam(unix_name(name))
    quiet_lab_settings(Path(account.pw_dir), account.pw_uid, account.pw_gid)
