"""An image built while a user's Lab is open appears there whole, without a restart.

The hub's picker offers it at once; opening the picker also fetches the kernel specs
(Lab polls them only each minute), so the Launcher gains its card and a notebook
switched to it shows its display name in the toolbar and status bar, never the raw
kernel name. Screenshot: ``test-artifacts/new-image-launcher.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

from studiohub import contract
from studiohub.catalog import load_catalog
from studiohub.envbuild import env_python
from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab
from tests.hubtools import Hub
from tests.integration.test_new_images import hub, kernels_dir, register  # noqa: F401

pytestmark = BROWSER_MARKS
VIEWPORT = {"width": 1500, "height": 950}


def test_an_image_built_while_the_lab_is_open_gets_its_card_and_name(
        hub: Hub, kernels_dir: Path, browser: Browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    label = load_catalog(hub.workdir / "catalog.yaml").images["fresh"].label
    user = hub.new_user("freshlab")
    user.spawn(image="base", size="tiny")
    nb = {"cells": [{"cell_type": "code", "source": "print('hi')", "metadata": {},
                     "outputs": [], "execution_count": None}],
          "metadata": {"kernelspec": {"name": contract.kernel_name("base"),
                                      "language": "python", "display_name": "Base"}},
          "nbformat": 4, "nbformat_minor": 5}
    assert user.server_api("PUT", "/contents/n.ipynb",
                           json={"type": "notebook", "content": nb}).ok
    quiet_lab(user.name)
    page = browser.login(hub.url, user.name, hub.password, viewport=VIEWPORT)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")
        cards = page.locator(".jp-Launcher-section").filter(
            has=page.locator(".jp-Launcher-sectionTitle", has_text="Notebook")
        ).locator(".jp-LauncherCard")
        expect(cards).to_have_count(1, timeout=60_000)
        page.get_by_role("listitem").filter(has_text="n.ipynb").first.dblclick()
        panel = page.locator(".jp-NotebookPanel:visible")
        status = page.locator(".jp-StatusBar-Widget")
        expect(status.filter(has_text=re.compile(r"\| Idle")).first).to_be_visible(
            timeout=120_000)

        # Built now (what `studiohub env build fresh` ends with), the Lab left open.
        register(hub, kernels_dir, "fresh", env_python("base"))
        panel.locator(".jp-StudioHub-KernelChoice").click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_text(label, exact=True).click()
        dialog.get_by_text("1 vCPU + 512 MiB", exact=True).click()
        dialog.get_by_role("button", name="Switch").click()
        expect(status.filter(has_text=f"{label} | Idle").first).to_be_visible(
            timeout=120_000)
        expect(panel.locator(".jp-KernelName")).to_have_text(label)
        expect(page.get_by_text(contract.kernel_name("fresh"), exact=True)).to_have_count(0)
        page.get_by_role("tab", name="Launcher").click()
        expect(cards).to_have_count(2)
        expect(cards.filter(has_text=label)).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "new-image-launcher.png"))
    finally:
        user.stop()
