"""Small things a new user saw in screenshots (issue 14, item 11), each as they see it.

In Debian's Chromium against a real hub with the sharing service: the share result names
the domain once and shows the whole link; a notebook copied from a share opens saved (no
unsaved marker); a kernel stopped for memory is explained in a dialog on top, whole,
instead of under JupyterLab's "Kernel Restarting" dialog. (TensorBoard opening with its
settings pane closed is in test_tensorboard_lab.) Screenshots: ``test-artifacts/polish-*``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab
from tests.hubtools import User
from tests.sharinghub import (
    SharingHub,
    code_cell,
    make_notebook,
    markdown_cell,
    running_sharing_hub,
    stream,
)

pytestmark = BROWSER_MARKS
NOTEBOOK = "forecast.ipynb"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingHub]:
    with running_sharing_hub(tmp_path_factory.mktemp("polish")) as hub:
        yield hub


def lab_user(hub: SharingHub, stem: str, files: dict[str, dict[str, Any]]) -> User:
    """A user in no group (so in the built-in domain "Everyone") on base/tiny."""
    user = hub.new_user(stem)
    user.spawn(image="base", size="tiny")
    for name, content in files.items():
        assert user.server_api("PUT", f"/contents/{name}",
                               json={"type": "notebook", "content": content}).ok
    quiet_lab(user.name)
    return user


def forecast() -> dict[str, Any]:
    return make_notebook(markdown_cell("# Forecast", cell_id="intro"),
                         code_cell("print('mape', 0.07)", stream("mape 0.07\n"), cell_id="fit"))


def visible_in_full(page: Any, selector: str) -> dict[str, Any]:
    """How the first element matching ``selector`` shows: its text, whether its content
    overflows its box (cut off), whether it lies in the viewport, and whether the element
    at its centre (what a click there hits) is inside it, i.e. nothing covers it."""
    return dict(page.evaluate("""selector => {
        const el = document.querySelector(selector);
        const box = el.getBoundingClientRect();
        const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
        return {
            text: el.innerText,
            clipped: el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1,
            inViewport: box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight
                && box.right <= innerWidth && box.width > 0 && box.height > 0,
            onTop: !!top && el.contains(top),
        };
    }""", selector))


def what_saving_changes(page: Any, user: User, path: str) -> str:
    """Save the open notebook and say what the save changed in the file (for a failure
    message: what the front end modified after opening it)."""
    before = user.server_api("GET", f"/contents/{path}").json()["content"]
    page.keyboard.press("Control+s")
    page.wait_for_timeout(3000)
    after = user.server_api("GET", f"/contents/{path}").json()["content"]
    changes = [f"metadata.{k}: {before['metadata'].get(k)!r} -> {after['metadata'].get(k)!r}"
               for k in sorted(set(before["metadata"]) | set(after["metadata"]))
               if before["metadata"].get(k) != after["metadata"].get(k)]
    for old, new in zip(before["cells"], after["cells"], strict=False):
        changes += [f"cell {old.get('id')}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                    for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    for k in ("nbformat", "nbformat_minor"):
        if before[k] != after[k]:
            changes.append(f"{k}: {before[k]} -> {after[k]}")
    return "; ".join(changes) or "nothing"


def test_share_result_names_the_domain_once_and_shows_the_whole_link_and_the_copy_opens_saved(
        hub: SharingHub, browser: Browser) -> None:
    from playwright.sync_api import expect

    alice = lab_user(hub, "polisha", {NOTEBOOK: forecast()})
    bob = lab_user(hub, "polishb", {})
    ARTIFACTS.mkdir(exist_ok=True)
    page = current = browser.login(hub.url, alice.name, hub.password)
    try:
        page.goto(f"{hub.url}/user/{alice.name}/lab/tree/{NOTEBOOK}")
        notebook = page.locator(".jp-NotebookPanel")
        expect(notebook.get_by_role("heading", name="Forecast")).to_be_visible(timeout=60_000)
        notebook.get_by_role("button", name="Share", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Share with")).to_have_value("everyone")
        dialog.get_by_role("button", name="Share", exact=True).click()

        done = page.get_by_role("dialog").filter(has_text="Notebook shared")
        expect(done).to_contain_text("Members of the Everyone domain can open this link:")
        expect(done).not_to_contain_text("Everyone in Everyone")
        link = done.get_by_role("link", name="Open preview").get_attribute("href")
        assert link and link.startswith(f"{hub.url}/services/sharing/s/"), link
        # The whole link is on screen: in the dialog's text, not cut off, not covered.
        url = visible_in_full(page, ".jp-StudioHub-ShareLink-url")
        assert url["text"] == link, (url, link)
        assert not url["clipped"] and url["inViewport"] and url["onTop"], url
        page.screenshot(path=str(ARTIFACTS / "polish-share-link.png"))
        done.get_by_role("button", name="Done").click()

        # Bob copies it into his home from the preview: it opens saved, kernel and all.
        current = bob_page = browser.login(hub.url, bob.name, hub.password)
        bob_page.goto(link)
        bob_page.get_by_role("button", name="Copy to my workspace").click()
        bob_page.wait_for_url(f"**/user/{bob.name}/lab/tree/{NOTEBOOK}",
                              wait_until="commit", timeout=60_000)
        panel = bob_page.locator(".jp-NotebookPanel")
        expect(panel.get_by_role("heading", name="Forecast")).to_be_visible(timeout=60_000)
        expect(bob_page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")
               .first).to_be_visible(timeout=120_000)
        bob_page.wait_for_timeout(3000)  # the kernel's info and StudioHub's checks land
        tab = bob_page.get_by_role("tab", name=NOTEBOOK)
        expect(tab).to_be_visible()
        if "jp-mod-dirty" in (tab.get_attribute("class") or ""):
            pytest.fail("the copy opened marked unsaved; saving it changes: "
                        + what_saving_changes(bob_page, bob, NOTEBOOK))
        bob_page.screenshot(path=str(ARTIFACTS / "polish-copy-saved.png"))
    except Exception:
        current.screenshot(path=str(ARTIFACTS / "polish-share-failure.png"))
        raise


def test_a_kernel_stopped_for_memory_is_explained_on_top_in_full(
        hub: SharingHub, browser: Browser) -> None:
    from playwright.sync_api import expect

    hog = make_notebook(code_cell("big = b'x' * (700 * 1024 * 1024)", cell_id="hog"))
    user = lab_user(hub, "polisho", {"hog.ipynb": hog})
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.login(hub.url, user.name, hub.password)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab/tree/hog.ipynb")
        expect(page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")
               .first).to_be_visible(timeout=120_000)
        page.locator(".jp-NotebookPanel .jp-Cell").first.locator(
            ".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")

        notice = page.locator(".jp-StudioHub-KernelExitDialog")
        expect(notice).to_be_visible(timeout=90_000)
        expect(notice).to_contain_text("hog.ipynb: the kernel ran out of memory")
        # JupyterLab's own "Kernel Restarting" dialog is gone: ours says it all.
        expect(page.locator(".jp-Dialog")).to_have_count(1)
        seen = visible_in_full(page, ".jp-StudioHub-KernelExitDialog .jp-Dialog-content")
        assert seen["inViewport"] and seen["onTop"] and not seen["clipped"], seen
        for words in ("Your kernel was stopped: it went past the 512 MiB memory limit of size "
                      "tiny (1 vCPU + 512 MiB). Free memory (del large objects) or restart "
                      "with a larger size.", "restarts the kernel automatically"):
            assert words in seen["text"], seen["text"]
        page.screenshot(path=str(ARTIFACTS / "polish-oom-dialog.png"))
        # The restarted kernel is ready: the status bar says so without running a cell
        # (it stayed at "Starting" until a cell ran). The wait is the restart's on a busy
        # machine (a second kernel's start), not a goal.
        expect(page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")
               .first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "polish-oom-idle.png"))

        # "Change size…" opens the picker on this notebook.
        notice.get_by_role("button", name="Change size…").click()
        expect(page.locator(".jp-Dialog").get_by_text("Change Image and Size")
               ).to_be_visible()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "polish-oom-failure.png"))
        raise
