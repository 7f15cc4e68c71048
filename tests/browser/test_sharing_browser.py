"""The whole sharing flow in Debian's Chromium, between two users, with screenshots.

Alice shares a notebook with Team A (through the API, as the Lab panel will); Bob, a
member, logs in, opens the link, reads the preview and copies the notebook, which opens
in his JupyterLab; Alice sees the view in "Shared by me"; Carol, outside Team A, is
refused; the admin reads the audit trail. The notebook carries script in every form we
know: none of it may run, in the preview or in Bob's Lab. Screenshots go to
``test-artifacts/sharing-*.png``.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS
from tests.hubtools import User
from tests.sharinghub import (
    SharingHub,
    code_cell,
    display,
    malicious_notebook,
    markdown_cell,
    running_sharing_hub,
    share,
    stream,
)

pytestmark = BROWSER_MARKS


def chart_png(width: int = 360, height: int = 140) -> str:
    """A small falling "loss curve" PNG (base64), so the preview shows a real image output."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            curve = int(height * 0.1 + height * 0.8 * (1 - (1 - x / width) ** 3))
            row += bytes((25, 118, 210) if abs(y - curve) <= 1 else (250, 250, 250))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingHub]:
    with running_sharing_hub(tmp_path_factory.mktemp("sharing-browser")) as hub:
        yield hub


def flow_notebook() -> dict[str, Any]:
    notebook = malicious_notebook()
    notebook["cells"][:0] = [
        markdown_cell("# Churn model, first results\nTrained on **Q3** data; see the plot.",
                      cell_id="intro"),
        code_cell("model.fit(X, y)\nplot(history)", stream("epoch 10: loss 0.213\n"),
                  display({"image/png": chart_png(), "text/plain": "<Figure>"}), cell_id="fit"),
    ]
    return notebook


def watched(page: Any) -> Any:
    """``page``, failing the test if any script on it opens a dialog."""
    page.on("dialog", lambda dialog: pytest.fail(f"a script opened a dialog: {dialog.message}"))
    return page


def assert_nothing_ran(page: Any) -> None:
    assert page.evaluate("() => window.pwned === undefined"), page.evaluate("window.pwned")


def test_two_users_share_preview_copy_and_open_in_lab(
        hub: SharingHub, browser: Browser) -> None:
    from playwright.sync_api import expect

    alice = hub.new_user("alice", groups=("team-a",))
    bob: User = hub.new_user("bob", groups=("team-a",))
    carol = hub.new_user("carol", groups=("team-b",))
    bob.spawn(image="base", size="tiny")
    s = share(hub, alice, flow_notebook(), name="churn-model.ipynb",
              note="First results: please check the feature list before Friday.")
    link = hub.url + s["url"]

    ARTIFACTS.mkdir(exist_ok=True)
    page = watched(browser.login(hub.url, bob.name, hub.password))
    try:
        # Bob opens the link: the hub's OAuth is silent, the preview renders.
        page.goto(link)
        expect(page.get_by_role("heading", name="churn-model")).to_be_visible()
        info = page.get_by_role("complementary", name="About this notebook")
        for text in (alice.name, "Team A", "Base Python 3.11 · CPU · 1 vCPU + 512 MiB",
                     "please check the feature list"):
            expect(info).to_contain_text(text)
        preview = page.get_by_role("main", name="Notebook preview")
        expect(preview.get_by_role("heading", name="Churn model, first results")
               ).to_be_visible()
        expect(preview.get_by_role("img").first).to_be_visible()
        expect(preview).to_contain_text("JavaScript output is not run in a preview")
        preview.get_by_text("hover").hover()
        # The javascript: links lost their href: clicking them does nothing.
        preview.get_by_text("click me").click()
        preview.get_by_text("link", exact=True).click()
        assert_nothing_ran(page)
        page.screenshot(path=str(ARTIFACTS / "sharing-preview.png"), full_page=True)

        # Copy to my workspace: the copy opens in Bob's JupyterLab, untrusted.
        page.get_by_role("button", name="Copy to my workspace").click()
        page.wait_for_url(f"**/user/{bob.name}/lab/tree/churn-model.ipynb",
                      wait_until="commit", timeout=60_000)
        expect(page.get_by_role("tab", name="churn-model.ipynb")).to_be_visible(
            timeout=60_000)
        expect(page.locator(".jp-Notebook").get_by_role(
            "heading", name="Churn model, first results")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        assert_nothing_ran(page)
        page.screenshot(path=str(ARTIFACTS / "sharing-copied-in-lab.png"))

        # Alice sees the view in "Shared by me".
        mine = watched(browser.login(hub.url, alice.name, hub.password))
        mine.goto(hub.service_url)
        row = mine.get_by_role("row").filter(has_text="churn-model")
        expect(row.first).to_contain_text("live")
        expect(mine.get_by_role("region", name="Shared by me")).to_contain_text("churn-model")
        mine.screenshot(path=str(ARTIFACTS / "sharing-shared-by-me.png"), full_page=True)

        # Carol is not in Team A: refused, told which domain, never the title.
        stranger = watched(browser.login(hub.url, carol.name, hub.password))
        response = stranger.goto(link)
        assert response is not None and response.status == 403
        expect(stranger.get_by_role("heading", name="403 · Forbidden")).to_be_visible()
        expect(stranger.get_by_role("main")).to_contain_text("Team A")
        assert "churn" not in stranger.content()
        stranger.screenshot(path=str(ARTIFACTS / "sharing-refused.png"))

        # The admin's audit trail has all of it.
        auditor = watched(browser.login(hub.url, hub.admin, (
            hub.state_dir / "admin-password").read_text().strip()))
        auditor.goto(f"{hub.service_url}audit?share={s['id']}")
        table = auditor.get_by_role("table")
        for action in ("share", "open", "copy", "refuse"):
            expect(table).to_contain_text(action)
        auditor.screenshot(path=str(ARTIFACTS / "sharing-audit.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "sharing-failure.png"))
        raise
    finally:
        browser.close()


def test_the_preview_blocks_script_even_if_the_sanitizer_missed_it(
        hub: SharingHub, browser: Browser) -> None:
    """The CSP alone: a page of the service with an inline script does not run it."""
    author = hub.new_user("csp", groups=("team-a",))
    s = share(hub, author, flow_notebook(), name="csp.ipynb")
    try:
        page = watched(browser.login(hub.url, author.name, hub.password))
        page.goto(hub.url + s["url"])
        # Inject markup the way a sanitizer bug would let it through; the browser
        # reports the policy refusing it.
        with page.expect_console_message(
                lambda m: "Content Security Policy" in m.text, timeout=10_000):
            page.evaluate("""() => {
                const main = document.querySelector('main');
                main.insertAdjacentHTML('beforeend', '<img src=x onerror="window.pwned=1">'
                  + '<a id=j href="javascript:window.pwned=2">j</a>');
            }""")
            page.locator("#j").click()
        assert_nothing_ran(page)
    finally:
        browser.close()
