"""Click to idle kernel in JupyterLab itself (Debian's Chromium driven by Playwright).

The API rounds of ``run.py`` time what the front end asks of the servers; these time what
a user sees, from the click on the picker's button to the notebook's new kernel idle on
the new size: the toolbar shows that kernel's size and usage, and the server has the
notebook's session on a kernel other than the one before, idle. (Not the status bar's
"Idle": JupyterLab may keep showing the old kernel's until the new one's first status.)

* **switch**: the notebook toolbar's picker, a size, **Switch**;
* **server restart**: "Change Server Image and Size…" from the command palette, a size,
  **Restart Server**; the Lab goes to the hub's progress page, comes back when the server
  is up, reopens the notebook and starts its kernel.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.browsertools import (
    CHROMIUM_ARGS,
    Navigations,
    quiet_lab,
    run_from_palette,
    sign_in,
)
from tests.hubtools import Hub, User

SWITCH_NB = "lab-switch.ipynb"
RESTART_NB = "lab-restart.ipynb"
# True once the visible notebook's toolbar reports a kernel on size ``arg`` with its live
# usage (the report of the kernel the notebook is connected to now).
TOOLBAR_ON = """(size) => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
    .find(p => !p.classList.contains('lm-mod-hidden'));
  const item = panel && panel.querySelector('.jp-StudioHub-KernelChoice');
  if (!item || item.classList.contains('jp-mod-pending') || item.dataset.size !== size) {
    return false;
  }
  const usage = item.querySelector('.jp-StudioHub-KernelChoice-usage');
  return !!(usage && usage.textContent);
}"""
POLL = 0.01
FAILURE_SHOT = Path("test-artifacts/benchmark-switch-lab-failure.png")


def _notebook() -> dict[str, Any]:
    return {"type": "notebook", "content": {
        "cells": [{"cell_type": "code", "source": "1 + 1", "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": {"kernelspec": {"name": "studiohub-base", "language": "python",
                                    "display_name": "Base Python 3.11 · CPU"}},
        "nbformat": 4, "nbformat_minor": 5}}


def _pick(page: Any, size: str, button: str) -> float:
    """Choose ``size`` in the open picker, click ``button``; the click's time."""
    dialog = page.locator(".jp-Dialog")
    dialog.locator(f"label[data-value='{size}']").click()
    start = time.monotonic()
    dialog.get_by_role("button", name=button).click()
    return start


def _keep_open(page: Any, path: str) -> None:
    """Make sure the notebook ``path`` is open and stays open. A Lab that has just
    loaded can restore an empty layout over the notebook its URL opened (seen on this
    machine; the Launcher alone is left): open it again from the file browser then."""
    tab = page.get_by_role("tab", name=re.compile(re.escape(path)))
    for _ in range(5):
        with contextlib.suppress(Exception):  # Playwright's TimeoutError: open it again
            tab.wait_for(state="visible", timeout=20_000)
            page.wait_for_timeout(3000)  # before the clock starts: let the Lab settle
            if tab.is_visible():
                return
        page.get_by_role("listitem").filter(has_text=path).first.dblclick()
    raise TimeoutError(f"{path} does not stay open in JupyterLab")


def _kernel_of(user: User, path: str) -> dict[str, Any] | None:
    sessions = user.server_api("GET", "/sessions", timeout=10, allow_redirects=False)
    if sessions.status_code != 200:  # the server is restarting
        return None
    return next((s["kernel"] for s in sessions.json() if s["path"] == path), None)


def _idle_on(page: Any, user: User, path: str, size: str, before: str | None) -> str:
    """Wait until the notebook runs a kernel other than ``before`` on ``size``, idle;
    that kernel's id."""
    page.wait_for_function(TOOLBAR_ON, arg=size, polling="raf", timeout=180_000)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        kernel = _kernel_of(user, path)
        if kernel and kernel["id"] != before and kernel["execution_state"] == "idle":
            return str(kernel["id"])
        time.sleep(POLL)
    raise TimeoutError(f"{path}: no new idle kernel on {size}")


def measure_in_lab(hub: Hub, user: User, sizes: tuple[str, str], server_size: str,
                   rounds: int, restarts: bool = True) -> dict[str, list[dict[str, float]]]:
    """``rounds`` switches, then (with ``restarts``) ``rounds`` server restarts, each to
    the other size (one warm-up of each not counted); the time of each and its steps."""
    from playwright.sync_api import sync_playwright

    def other(size: str) -> str:
        return sizes[1] if size == sizes[0] else sizes[0]

    for name in (SWITCH_NB, RESTART_NB):
        assert user.server_api("PUT", f"/contents/{name}", json=_notebook()).ok
    quiet_lab(user.name)
    switches: list[dict[str, float]] = []
    restarted: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = sign_in(browser.new_page(viewport={"width": 1400, "height": 900}),
                           hub.url, user.name, hub.password)
            navigations = Navigations(page)
            page.goto(f"{hub.url}/user/{user.name}/lab/tree/{SWITCH_NB}")
            size = server_size
            kernel = _idle_on(page, user, SWITCH_NB, size, None)
            for round_ in range(rounds + 1):
                size = other(size)
                page.locator(".jp-NotebookPanel:visible .jp-StudioHub-KernelChoice").click()
                start = _pick(page, size, "Switch")
                kernel = _idle_on(page, user, SWITCH_NB, size, kernel)
                took = time.monotonic() - start
                if round_:
                    switches.append({"total": took})
                print(f"lab switch {round_ or 'warm-up'}: {took:.2f} s")
            if not restarts:
                return {"switch": switches, "restart": restarted}
            # The restarts run a notebook that never chose a size: it follows the server.
            page.keyboard.press("Control+s")  # its saved choice: nothing left unsaved
            page.wait_for_function(
                "() => !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')")
            # Only the restart notebook open (its kernel alone restarts with the server):
            # leave the Lab, forget its saved layout, come back to that notebook.
            page.goto("about:blank")
            forget = requests.delete(
                f"{hub.url}/user/{user.name}/lab/api/workspaces/default",
                headers={"Authorization": f"token {user.token}"}, timeout=30)
            assert forget.status_code in (204, 404), forget.text
            page.goto(f"{hub.url}/user/{user.name}/lab/tree/{RESTART_NB}")
            _keep_open(page, RESTART_NB)
            size = server_size
            kernel = _idle_on(page, user, RESTART_NB, size, None)
            for round_ in range(rounds + 1):
                size = other(size)
                run_from_palette(page, "Change Server Image and Size")
                start = _pick(page, size, "Restart Server")
                left = navigations.wait_for(re.compile("/hub/spawn-pending/"), start)
                back = navigations.wait_for(re.compile(f"/user/{user.name}/lab"), left, 180)
                kernel = _idle_on(page, user, RESTART_NB, size, kernel)
                done = time.monotonic()
                if round_:
                    restarted.append({"total": done - start, "to progress page": left - start,
                                      "server up": back - left, "Lab and kernel": done - back})
                print(f"lab restart {round_ or 'warm-up'}: {done - start:.2f} s")
        except Exception:
            FAILURE_SHOT.parent.mkdir(exist_ok=True)
            browser.contexts[0].pages[-1].screenshot(path=str(FAILURE_SHOT))
            print(f"the page as it was: {FAILURE_SHOT}", file=sys.stderr)
            raise
        finally:
            browser.close()
    return {"switch": switches, "restart": restarted}
