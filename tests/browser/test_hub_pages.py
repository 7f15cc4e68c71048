"""The hub's own pages as StudioHub's, in Debian's Chromium against a real hub.

The login page carries StudioHub's name and logo over JupyterHub's own form; the home
page shows the user's server with its image and size (running, then stopped: the last
ones), their domains and working links to the Shared notebooks page and to the user's
training jobs (JupyterLab opened on its Training sidebar); the spawn page's
unavailable choices stay legible and say why on a line of their own, the command in a
reason never broken across lines. Screenshots: ``test-artifacts/hub-pages-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from studiohub.catalog import images_dir
from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab
from tests.hubtools import TEST_CATALOG, Hub, shut_down

pytestmark = BROWSER_MARKS

#: The test catalog, plus an image no machine builds: the spawn page must say how to.
NEVER_BUILT = "text-generation-gpu-free"
CATALOG = {
    **TEST_CATALOG,
    "images": {NEVER_BUILT: {
        "display_name": "Text generation", "framework": "Python", "framework_version": "3.11",
        "accelerator": "cpu", "description": "A large language model toolkit.",
        "requirements": [str(images_dir() / "base-cpu" / "requirements.txt")],
        "container_image": "studiohub/text-generation:0.1.0"}},
    "domains": {**TEST_CATALOG["domains"],
                "everyone": {**TEST_CATALOG["domains"]["everyone"],
                             "images": ["base", "pytorch", NEVER_BUILT]},
                "team-a": {"display_name": "Team A", "description": "The churn model team.",
                           "images": ["base"], "sizes": ["tiny", "half"]}},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    workdir = tmp_path_factory.mktemp("hub-pages")
    workdir.chmod(0o755)
    started = Hub(workdir, catalog=CATALOG)
    try:
        started.start(timeout=240)  # the first start on a machine builds the base image
        yield started
    finally:
        shut_down(started)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"hub-pages-{name}.png"), full_page=True)


def test_login_page_shows_studiohub_name_and_logo(hub: Hub, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{hub.url}/hub/login")
    expect(page).to_have_title("StudioHub")
    brand = page.locator(".studiohub-brand")
    expect(brand).to_contain_text("StudioHub")
    logo = brand.get_by_role("img", name="StudioHub logo")
    expect(logo).to_have_attribute("src", "/hub/logo")
    # Drawn, not a broken image: the browser decoded it.
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#jupyterhub-logo")).to_contain_text("StudioHub")
    served = requests.get(f"{hub.url}/hub/logo", timeout=30)
    assert served.headers["Content-Type"].startswith("image/svg+xml")
    assert b"<title>StudioHub</title>" in served.content
    # JupyterHub's own form, unchanged below it.
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, "login")


def test_home_page_shows_server_image_size_domains_and_shared_link(hub: Hub,
                                                                   browser: Browser) -> None:
    from playwright.sync_api import expect

    user = hub.new_user("home", groups=("team-a",))
    page = browser.login(hub.url, user.name, hub.password)
    page.goto(f"{hub.url}/hub/home")
    expect(page).to_have_title("StudioHub")
    server = page.locator("#studiohub-server")
    expect(server.locator("#studiohub-server-state")).to_have_text("Stopped")
    expect(server).to_contain_text("You have no server yet")
    expect(page.locator("#studiohub-start")).to_have_attribute(
        "href", f"/hub/spawn/{user.name}")
    domains = page.locator("#studiohub-domains")
    expect(domains.locator(".studiohub-domain")).to_have_text(
        [re.compile(r"^\s*Team A\s+The churn model team\.\s*$")])
    expect(domains).to_contain_text("Base Python 3.11 · CPU")
    expect(domains).not_to_contain_text("Text generation")
    shot(page, "home-new")

    user.spawn(image="base", size="half")
    quiet_lab(user.name)
    page.reload()
    expect(server.locator("#studiohub-server-state")).to_have_text("Running")
    expect(page.locator("#studiohub-server-image")).to_contain_text("Base Python 3.11 · CPU base")
    expect(page.locator("#studiohub-server-size")).to_contain_text("0.5 vCPU + 1 GiB half")
    expect(page.locator("#studiohub-open")).to_have_attribute("href", f"/user/{user.name}")
    shot(page, "home-running")

    page.locator("#studiohub-shared-link").click()
    page.wait_for_url(re.compile(r"/services/sharing/"))
    expect(page.get_by_role("heading", name="Shared notebooks")).to_be_visible()
    page.go_back()

    # Training jobs: JupyterLab opens on its Training sidebar (not the file browser).
    page.locator("#studiohub-jobs-link").click()
    page.wait_for_url(re.compile(rf"/user/{user.name}/lab"))
    expect(page.locator("#studiohub-training")).to_be_visible(timeout=120_000)
    expect(page.locator(".jp-FileBrowser")).to_be_hidden()
    shot(page, "jobs-in-lab")
    page.goto(f"{hub.url}/hub/home")

    page.get_by_role("button", name="Stop server").click()
    expect(server.locator("#studiohub-server-state")).to_have_text("Stopped", timeout=90_000)
    expect(server).to_contain_text("Last started with:")
    expect(page.locator("#studiohub-server-size")).to_contain_text("0.5 vCPU + 1 GiB half")
    assert user.api("GET", f"/users/{user.name}").json()["servers"] == {}
    shot(page, "home-stopped")


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of a CSS ``rgb()``/``rgba()`` colour drawn over an opaque one."""
    def channels(color: str) -> list[float]:
        return [float(v) for v in re.findall(r"[\d.]+", color)]

    back = channels(background)[:3]
    front = channels(foreground)
    alpha = front[3] if len(front) > 3 else 1.0
    drawn = [alpha * f + (1 - alpha) * b for f, b in zip(front[:3], back, strict=True)]

    def luminance(rgb: list[float]) -> float:
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
                  for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(drawn), luminance(back)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def reason_layout(row: Any) -> dict[str, Any]:
    """How an unavailable choice's row is drawn: its reason's text, colours and lines."""
    return dict(row.evaluate("""label => {
        const reason = label.querySelector('.studiohub-reason');
        const name = label.querySelector('.studiohub-choice-name');
        const code = reason.querySelector('code');
        const opacity = el => { let o = 1; for (; el; el = el.parentElement)
            o *= Number(getComputedStyle(el).opacity); return o; };
        const nameBox = name.getClientRects()[0], reasonBox = reason.getBoundingClientRect();
        return {
            text: reason.innerText,
            color: getComputedStyle(reason).color,
            labelColor: getComputedStyle(label).color,
            background: getComputedStyle(label).backgroundColor,
            opacity: opacity(reason),
            ownLine: reasonBox.top >= nameBox.bottom - 1,
            codeWhiteSpace: code ? getComputedStyle(code).whiteSpace : null,
            codeLines: code ? code.getClientRects().length : 0,
            codeHeight: code ? code.getBoundingClientRect().height : 0,
            lineHeight: parseFloat(getComputedStyle(reason).lineHeight),
        };
    }"""))


@pytest.mark.parametrize("width", [1400, 560])
def test_spawn_page_unavailable_choices_are_legible_with_whole_reasons(
        hub: Hub, browser: Browser, width: int) -> None:
    from playwright.sync_api import expect

    user = hub.new_user("spawn")
    page = browser.login(hub.url, user.name, hub.password,
                         viewport={"width": width, "height": 900})
    page.goto(f"{hub.url}/hub/spawn/{user.name}")
    expect(page.get_by_role("heading", name="Start your server")).to_be_visible()
    expect(page.get_by_text("Your domains: Everyone.")).to_be_visible()

    image = page.locator("label.studiohub-choice", has=page.locator(
        f"input[name=image][value='{NEVER_BUILT}']"))
    expect(image.locator("input")).to_be_disabled()
    expect(image).to_have_class(re.compile(r"\bstudiohub-unavailable\b"))
    size = page.locator("label.studiohub-choice", has=page.locator(
        "input[name=size][value=giant]"))
    expect(size.locator("input")).to_be_disabled()
    for row, expected in (
            (image, "Not built on this machine: an administrator runs "
                    f"studiohub env build {NEVER_BUILT}"),
            (size, re.compile(r"^Unavailable here \(needs 4 TiB; this machine has [^)]+\)$"))):
        drawn = reason_layout(row)
        if isinstance(expected, str):
            assert drawn["text"] == expected, drawn
        else:
            assert expected.match(drawn["text"]), drawn
        # Legible: not faded, and text contrast of at least WCAG AA (4.5:1).
        assert drawn["opacity"] == 1, drawn
        assert contrast(drawn["color"], drawn["background"]) >= 4.5, drawn
        assert contrast(drawn["labelColor"], drawn["background"]) >= 4.5, drawn
        assert drawn["ownLine"], drawn
    command = reason_layout(image)
    assert command["codeWhiteSpace"] == "nowrap", command
    assert command["codeLines"] == 1 and command["codeHeight"] < 1.5 * command["lineHeight"], \
        command
    # Available choices are not marked and give no reason; the preselected pair can start.
    base = page.locator("label.studiohub-choice", has=page.locator(
        "input[name=image][value=base]"))
    expect(base.locator("input")).to_be_checked()
    expect(base).not_to_have_class(re.compile("unavailable"))
    tiny = page.locator("label.studiohub-choice", has=page.locator(
        "input[name=size][value=tiny]"))
    expect(tiny.locator("input")).to_be_enabled()
    expect(tiny.locator(".studiohub-reason")).to_be_hidden()
    shot(page, f"spawn-{width}")
    # JupyterHub's dark theme (its navbar toggle): the reasons stay legible there too.
    page.evaluate("document.documentElement.setAttribute('data-bs-theme', 'dark')")
    for row in (image, size):
        drawn = reason_layout(row)
        assert contrast(drawn["color"], drawn["background"]) >= 4.5, drawn
        assert contrast(drawn["labelColor"], drawn["background"]) >= 4.5, drawn
    shot(page, f"spawn-{width}-dark")
