"""Open a folder in TensorBoard from JupyterLab's file browser and see the loss chart.

A real user's JupyterLab (``jupyter lab`` as a unix user, under ``/user/<name>/``),
Debian's Chromium driven by Playwright. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.tensorboard.environments import EVENTS_SCRIPT, ensure_tensorboard_env
from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab_settings
from tests.labservers import UnixUser, UserServer, make_user, remove_user

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def lab_user() -> Iterator[UnixUser]:
    tb_python = ensure_tensorboard_env()
    user = make_user("tbweb")
    done = user.run([str(tb_python), str(EVENTS_SCRIPT), str(user.home / "experiments"),
                     "--framework", "tf-summary", "--runs", "2", "--steps", "300"])
    assert done.returncode == 0, done.stderr
    yield user
    remove_user(user)


@pytest.fixture(scope="module")
def lab(lab_user: UnixUser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserServer]:
    settings = quiet_lab_settings(lab_user.home, lab_user.uid, lab_user.gid)
    server = UserServer(lab_user, {"TensorBoardManager.python": str(ensure_tensorboard_env()),
                                   "LabApp.user_settings_dir": str(settings)}, app="lab")
    server.start(tmp_path_factory.mktemp("lab") / "lab.log")
    yield server
    server.stop()


def test_open_folder_from_file_browser_draws_the_loss_chart(
        lab: UserServer, browser: Browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)  # as browsertools.sign_in: a loaded CI machine
    fonts: list[tuple[str, int]] = []  # TensorBoard's Roboto files, as the browser got them
    page.on("response", lambda r: fonts.append((r.url, r.status))
            if "/font-roboto/" in r.url else None)
    try:
        page.goto(f"{lab.url}lab?token={lab.token}", wait_until="domcontentloaded")
        folder = page.get_by_role("listitem").filter(has_text="experiments").first
        expect(folder).to_be_visible(timeout=60_000)
        folder.click(button="right")
        page.get_by_role("menuitem", name="Open in TensorBoard").click()

        tab = page.get_by_role("tab", name="TensorBoard: experiments")
        expect(tab).to_be_visible(timeout=30_000)
        frame = page.frame_locator("iframe[title='TensorBoard: experiments']")
        # The scalar card for "loss" with its line chart drawn.
        card = frame.locator("card-view").filter(has_text="loss").first
        expect(card).to_be_visible(timeout=60_000)
        card.scroll_into_view_if_needed()
        chart = card.locator("line-chart")
        expect(chart).to_be_visible(timeout=30_000)
        # TensorBoard's settings pane starts closed (it took a quarter of the tab), and
        # its own toolbar button still opens it.
        expect(frame.get_by_role("heading", name="Settings")).to_have_count(0)
        expect(frame.locator("metrics-dashboard-right-pane")).to_have_count(0)
        frame.get_by_role("button", name="Toggle settings side pane").click()
        expect(frame.locator("metrics-dashboard-right-pane")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "tensorboard-settings-opened.png"))
        frame.get_by_role("button", name="Toggle settings side pane").click()
        expect(frame.locator("metrics-dashboard-right-pane")).to_have_count(0)
        page.wait_for_timeout(1500)  # let the chart finish drawing for the screenshot
        page.screenshot(path=str(ARTIFACTS / "tensorboard-loss-chart.png"))
        # Its fonts come from under the board's prefix (they were asked of the hub's root:
        # a redirect to a 404, and fallback fonts).
        assert fonts and all("/studiohub/tensorboard/" in url and status == 200
                   for url, status in fonts), fonts

        # The sidebar lists it with its folder and uptime, and Open/Reload/Stop.
        page.get_by_role("tab", name="TensorBoards").click()
        item = page.get_by_role("listitem", name="TensorBoard for ~/experiments")
        expect(item).to_contain_text("running")
        expect(item.get_by_role("button", name="Stop TensorBoard for ~/experiments")
               ).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "tensorboard-panel.png"))

        # A reload restores the tab, and the board comes back.
        page.reload(wait_until="domcontentloaded")
        frame = page.frame_locator("iframe[title='TensorBoard: experiments']")
        expect(frame.locator("card-view").filter(has_text="loss").first
               ).to_be_visible(timeout=60_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "tensorboard-failure.png"))
        raise
    finally:
        browser.close()
