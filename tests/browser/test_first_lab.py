"""A new user's first JupyterLab asks nothing about Jupyter news: the operator decided.

JupyterLab asks every new user "Would you like to get notified about official Jupyter
news?" unless its ``fetchNews`` setting is decided. StudioHub decides it for everyone
(``lab.jupyter_news``, off by default: docs/configuration.md), so a new user's first Lab
opens on the Launcher with no such toast, and the Lab's settings say news and update
checks are off. Screenshot: ``test-artifacts/first-lab.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from studiohub.labdefaults import NOTIFICATION_PLUGIN
from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS
from tests.hubtools import Hub, shut_down
from tests.integration.test_hub_logs import start_hub

pytestmark = BROWSER_MARKS
NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = start_hub(tmp_path_factory, "firstlab")
    hub.start(timeout=300)
    yield hub
    shut_down(hub)


def test_a_new_users_first_lab_asks_nothing_about_jupyter_news(
        hub: Hub, browser: Browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    user = hub.new_user("first")  # a new account: no Lab settings of its own
    user.spawn(image="base", size="tiny")
    page = browser.login(hub.url, user.name, hub.password)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")
        expect(page.locator(".jp-LauncherCard").first).to_be_visible(timeout=120_000)
        # JupyterLab asks once the app is restored: give it time to, then look.
        page.wait_for_timeout(5000)
        expect(page.get_by_text(NEWS_PROMPT)).to_have_count(0)
        expect(page.locator(".jp-Notification-Toast")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "first-lab.png"))
        r = user.server_api("GET", "/../lab/api/settings/" + NOTIFICATION_PLUGIN)
        assert r.status_code == 200, r.text
        # The operator's overrides are the plugin's defaults; the user set nothing.
        defaults = r.json()["schema"]["properties"]
        assert defaults["fetchNews"]["default"] == "false"
        assert defaults["checkForUpdates"]["default"] is False
        assert "fetchNews" not in r.json()["settings"]
    finally:
        user.stop()
