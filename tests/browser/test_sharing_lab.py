"""Sharing from JupyterLab, between two users, in Debian's Chromium against a real hub.

Alice opens a notebook in her JupyterLab, uses Share… in its toolbar, picks Team A,
writes a note and copies the link from the dialog. Bob, in Team A, opens the link, reads
the preview and copies the notebook into his workspace, where it opens in his Lab; his
Shared sidebar lists it under "Shared with my domains" and "Recently opened". Alice's
sidebar shows Bob's views; the palette opens the same dialog from the keyboard; from the
file browser's context menu she publishes a new version to the same link, then revokes it.
Everything goes through the Lab extension's server side, which forwards to the hub's
sharing service with the server's own token. Screenshots: ``test-artifacts/sharing-lab-*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
    share,
    stream,
)

pytestmark = BROWSER_MARKS
NOTEBOOK = "churn-model.ipynb"
CLIPBOARD = ["clipboard-read", "clipboard-write"]
NOTE = "First results: please check the feature list before Friday."


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingHub]:
    with running_sharing_hub(tmp_path_factory.mktemp("sharing-lab")) as hub:
        yield hub


def lab_user(hub: SharingHub, stem: str, groups: tuple[str, ...]) -> User:
    user = hub.new_user(stem, groups=groups)
    user.spawn(image="base", size="tiny")
    quiet_lab(user.name)
    return user


def churn_notebook(text: str) -> dict[str, Any]:
    return {"type": "notebook", "content": make_notebook(
        markdown_cell(f"# Churn model\n{text}", cell_id="intro"),
        code_cell("print('loss', 0.213)", stream("loss 0.213\n"), cell_id="fit"))}


def open_shared_sidebar(page: Any) -> Any:
    tab = page.get_by_role("tab", name="Shared notebooks")
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    sidebar = page.get_by_role("region", name="Shared notebooks")
    sidebar.get_by_role("button", name="Refresh shared notebooks").click()
    return sidebar


def test_share_from_lab_then_a_member_opens_copies_and_both_sidebars_list_it(
        hub: SharingHub, browser: Browser) -> None:
    from playwright.sync_api import expect

    alice = lab_user(hub, "alice", ("team-a",))
    bob = lab_user(hub, "bob", ("team-a",))
    assert alice.server_api("PUT", f"/contents/{NOTEBOOK}",
                            json=churn_notebook("Trained on Q3 data.")).ok

    # Through the real stack, the service's refusals keep their status and message.
    refused = alice.lab_api("POST", "/sharing/shares",
                            json={"path": NOTEBOOK, "domain": "team-b"})
    assert (refused.status_code, refused.json()["message"]) == (
        400, "domain 'team-b' is not one of your domains; your domains: 'team-a'")
    carol = hub.new_user("carol", groups=("team-b",))
    theirs = share(hub, carol, make_notebook(markdown_cell("# Team B only")), domain="team-b")
    refused = alice.lab_api("GET", f"/sharing/shares/{theirs['id']}")
    assert refused.status_code == 403 and "Team B" in refused.json()["message"], refused.text
    assert "Team B only" not in refused.text

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.login(hub.url, alice.name, hub.password, permissions=CLIPBOARD)
    current = page
    try:
        # Alice: Share… from the notebook's toolbar.
        page.goto(f"{hub.url}/user/{alice.name}/lab/tree/{NOTEBOOK}")
        notebook = page.locator(".jp-NotebookPanel")
        expect(notebook.get_by_role("heading", name="Churn model")).to_be_visible(
            timeout=60_000)
        notebook.get_by_role("button", name="Share", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Share {NOTEBOOK}")
        dialog.get_by_label("Share with").select_option(label="Team A")
        expect(dialog.get_by_label("Include outputs")).to_be_checked()
        dialog.get_by_label("Note (optional)").fill(NOTE)
        page.screenshot(path=str(ARTIFACTS / "sharing-lab-dialog.png"))
        dialog.get_by_role("button", name="Share", exact=True).click()

        done = page.get_by_role("dialog").filter(has_text="Notebook shared")
        expect(done).to_contain_text("Members of the Team A domain can open this link:")
        link = done.locator(".jp-StudioHub-ShareLink-url").inner_text()
        assert link.startswith(f"{hub.url}/services/sharing/s/"), link
        done.get_by_role("button", name="Copy link").click()
        expect(done.get_by_role("button", name="Copy link")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == link
        page.screenshot(path=str(ARTIFACTS / "sharing-lab-link.png"))
        done.get_by_role("button", name="Done").click()

        # Bob opens the link: the preview; copy to his workspace opens it in his Lab.
        current = bob_page = browser.login(hub.url, bob.name, hub.password, permissions=CLIPBOARD)
        bob_page.goto(link)
        expect(bob_page.get_by_role("heading", name="churn-model")).to_be_visible()
        about = bob_page.get_by_role("complementary", name="About this notebook")
        expect(about).to_contain_text(NOTE)
        expect(about).to_contain_text(alice.name)  # the author, and when it was shared
        # Shared today (or yesterday, for a run that crossed midnight UTC).
        days = {(datetime.now(UTC) - timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)}
        expect(about).to_contain_text(re.compile("|".join(days)))
        bob_page.get_by_role("button", name="Copy to my workspace").click()
        bob_page.wait_for_url(f"**/user/{bob.name}/lab/tree/{NOTEBOOK}",
                          wait_until="commit", timeout=60_000)
        expect(bob_page.locator(".jp-NotebookPanel").get_by_role(
            "heading", name="Churn model")).to_be_visible(timeout=60_000)

        # Bob's Shared sidebar: shared with his domains, and recently opened.
        sidebar = open_shared_sidebar(bob_page)
        shared_with = sidebar.get_by_role("region", name="Shared with my domains")
        item = shared_with.get_by_role("listitem", name="churn-model")
        expect(item).to_contain_text(f"by {alice.name} · Team A · v1")
        expect(sidebar.get_by_role("region", name="Recently opened")
               .get_by_role("listitem", name="churn-model")).to_be_visible()
        sidebar.get_by_role("searchbox").fill(alice.name)
        expect(item).to_be_visible()
        sidebar.get_by_role("searchbox").fill("no-such-notebook")
        expect(shared_with).to_contain_text("Nothing matches")
        sidebar.get_by_role("searchbox").fill("")
        expect(item).to_be_visible()
        bob_page.screenshot(path=str(ARTIFACTS / "sharing-lab-sidebar-member.png"))
        # A title opens the preview in a new browser tab.
        with bob_page.context.expect_page() as opened:
            item.get_by_role("link", name="churn-model").click()
        preview = opened.value
        preview.wait_for_load_state()
        assert preview.url == link
        preview.close()

        # Alice's sidebar: her link with Bob's two views (the link, then the new tab).
        current = page
        sidebar = open_shared_sidebar(page)
        mine = sidebar.get_by_role("region", name="Shared by me").get_by_role(
            "listitem", name="churn-model")
        expect(mine).to_contain_text("Team A · v1 · 2 views")
        page.screenshot(path=str(ARTIFACTS / "sharing-lab-sidebar.png"))

        # The command palette, from the keyboard: the same dialog (cancelled here).
        page.locator(".jp-NotebookPanel").click()
        page.keyboard.press("Control+Shift+C")
        palette = page.locator(".lm-CommandPalette-input")
        expect(palette).to_be_focused()
        palette.fill("Share Notebook")
        page.keyboard.press("Enter")
        expect(page.get_by_role("dialog")).to_contain_text(f"Share {NOTEBOOK}")
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)

        # A new version to the same link, from the file browser's context menu.
        page.get_by_role("tab", name="File Browser").click()
        page.locator(".jp-DirListing-item").filter(has_text=NOTEBOOK).click(button="right")
        page.get_by_role("menuitem", name="Share…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("You already share this notebook")
        expect(dialog.get_by_label("Publish a new version to the same link",
                                   exact=False)).to_be_checked()
        expect(dialog.get_by_label("Share with")).to_be_disabled()
        page.screenshot(path=str(ARTIFACTS / "sharing-lab-new-version.png"))
        dialog.get_by_role("button", name="Share", exact=True).click()
        done = page.get_by_role("dialog").filter(has_text="New version published")
        expect(done).to_contain_text("Version 2 is published")
        expect(done.locator(".jp-StudioHub-ShareLink-url")).to_have_text(link)
        done.get_by_role("button", name="Done").click()
        open_shared_sidebar(page)
        expect(mine).to_contain_text("Team A · v2")
        # And from the sidebar's own button: version 3 at the same link.
        mine.get_by_role("button", name="Publish a new version of churn-model").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Publish a new version to the same link",
                                   exact=False)).to_be_checked()
        dialog.get_by_role("button", name="Share", exact=True).click()
        done = page.get_by_role("dialog").filter(has_text="New version published")
        expect(done).to_contain_text("Version 3 is published")
        done.get_by_role("button", name="Done").click()
        open_shared_sidebar(page)
        expect(mine).to_contain_text("Team A · v3")

        # Another browser has not seen where the notebook was shared from: with it
        # neither open nor selected, "New version…" asks for it, never guesses a file.
        current = elsewhere = browser.login(hub.url, alice.name, hub.password,
                                            permissions=CLIPBOARD)
        elsewhere.goto(f"{hub.url}/user/{alice.name}/lab?reset")
        theirs_mine = open_shared_sidebar(elsewhere).get_by_role(
            "region", name="Shared by me").get_by_role("listitem", name="churn-model")
        theirs_mine.get_by_role("button", name="Publish a new version of churn-model").click()
        asked = elsewhere.get_by_role("dialog").filter(has_text="Which notebook?")
        expect(asked).to_contain_text(f"where {NOTEBOOK} was shared from: open it")
        elsewhere.screenshot(path=str(ARTIFACTS / "sharing-lab-which-notebook.png"))
        elsewhere.keyboard.press("Escape")
        expect(elsewhere.get_by_role("dialog")).to_have_count(0)
        # Selected in the file browser, it is the one.
        elsewhere.get_by_role("tab", name="File Browser").click()
        elsewhere.locator(".jp-DirListing-item").filter(has_text=NOTEBOOK).click()
        open_shared_sidebar(elsewhere)
        theirs_mine.get_by_role("button", name="Publish a new version of churn-model").click()
        dialog = elsewhere.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Share {NOTEBOOK}")
        dialog.get_by_role("button", name="Share", exact=True).click()
        done = elsewhere.get_by_role("dialog").filter(has_text="New version published")
        expect(done).to_contain_text("Version 4 is published")
        elsewhere.context.close()
        current = page

        # Revoke, with confirmation: the link stops working for Bob.
        mine.get_by_role("button", name="Revoke the link to churn-model").click()
        confirm = page.get_by_role("dialog").filter(has_text="Revoke the link")
        expect(confirm).to_contain_text("cannot be undone")
        confirm.get_by_role("button", name="Revoke", exact=True).click()
        expect(mine).to_contain_text("revoked")
        gone = bob_page.goto(link)
        assert gone is not None and gone.status == 410
    except Exception:
        current.screenshot(path=str(ARTIFACTS / "sharing-lab-failure.png"))
        raise
    finally:
        browser.close()
