"""One-click image and size per notebook, in Debian's Chromium against a real ``studiohub up``.

A user logs in through the hub's form and opens a notebook; a kernel that runs past its
memory limit is explained in a notification; the toolbar's picker switches the notebook
to PyTorch on a larger size, where a cell prints the CPUs and memory the kernel really
has, then to TensorFlow; a switch refused because another user's server took the room
(before the choice was checked, or between the check and the kernel's start) says why and
keeps the kernel; a copy of the notebook opens on the same image and size;
a second notebook keeps its kernel state through all of it; a notebook saved with a size
this machine cannot run says why and offers the nearest one. "Change Server Image and
Size…" saves an unsaved notebook, restarts the server and comes back on the new size.
Screenshots of the toolbar and picker go to ``test-artifacts/switching-*.png``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Browser
from tests.browsertools import (
    ARTIFACTS,
    BROWSER_MARKS,
    Navigations,
    quiet_lab,
    run_from_palette,
)
from tests.hubtools import Hub, User
from tests.integration.conftest import shut_down
from tests.integration.test_frameworks import ENVS_PREFIX, studiohub_env
from tests.integration.test_switching import LIMITS_CODE

pytestmark = BROWSER_MARKS

GIB = 1024**3


def _roomy_memory() -> int:
    """Most of this machine's memory in whole MiB: fits when free, not beside a second one."""
    kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return kib // 1024 * 6 // 10


ROOMY_MIB = _roomy_memory()
CATALOG = {
    "sizes": {
        "tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
        "giant": {"display_name": "1 vCPU + 4 TiB", "cpus": 1, "memory": "4T"},
        "roomy": {"display_name": "1 vCPU + most memory", "cpus": 1,
                  "memory": f"{ROOMY_MIB}M"},
    },
    "domains": {"everyone": {"images": ["base", "pytorch", "tensorflow"],
                             "sizes": ["tiny", "small", "medium", "giant", "roomy"]}},
}
VIEWPORT = {"width": 1500, "height": 950}
STDOUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']"


def notebook(*sources: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": [],
              "execution_count": None} for s in sources]
    meta = {"kernelspec": {"name": "studiohub-base", "language": "python",
                           "display_name": "Base Python 3.11 · CPU"}, **(metadata or {})}
    return {"type": "notebook", "content": {"cells": cells, "metadata": meta,
                                            "nbformat": 4, "nbformat_minor": 5}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    for image in ("pytorch", "tensorflow"):  # built by test_frameworks; a no-op then
        result, _ = studiohub_env("build", image)
        assert result.returncode == 0, result.stdout + result.stderr
    workdir = tmp_path_factory.mktemp("switching")
    workdir.chmod(0o755)
    hub = Hub(workdir, catalog=CATALOG,
              env={"JUPYTER_PATH": os.pathsep.join(
                  [str(ENVS_PREFIX / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
              ).strip(os.pathsep)})
    hub.start()
    yield hub
    shut_down(hub)


def lab_user(hub: Hub, stem: str, files: dict[str, dict[str, Any]]) -> User:
    """A new user whose server runs on base/tiny with ``files`` in their home, the Lab's
    first-run notices off."""
    user = hub.new_user(stem)
    user.spawn(image="base", size="tiny")
    for name, model in files.items():
        assert user.server_api("PUT", f"/contents/{name}", json=model).ok
    quiet_lab(user.name)
    return user


@pytest.fixture(scope="module")
def user(hub: Hub) -> User:
    limits_cell = LIMITS_CODE + "print('limits', _cpus, _memory)\n"
    files = {
        "train.ipynb": notebook(
            "big = b'x' * (700 * 1024 * 1024)",
            "import torch\nprint('torch', torch.__version__)\n" + limits_cell,
            "import tensorflow as tf\nprint('tf', tf.__version__)\n" + limits_cell),
        "other.ipynb": notebook("kept = 41 + 1", "print('kept', kept)"),
        "huge.ipynb": notebook("print(1)", metadata={
            "studiohub": {"image": "base", "size": "giant"}}),
    }
    return lab_user(hub, "swb", files)




def open_notebook(page: Any, name: str) -> Any:
    from playwright.sync_api import expect

    page.get_by_role("listitem").filter(has_text=name).first.dblclick()
    panel = page.locator(".jp-NotebookPanel:visible")
    expect(page.get_by_role("tab", name=re.compile(re.escape(name)))).to_be_visible()
    wait_idle(page, panel)
    return panel


def wait_idle(page: Any, panel: Any, image: str = "") -> None:
    """The kernel (of ``image``'s kernelspec when given) is connected and idle, as the
    status bar says, and the toolbar shows its live usage."""
    from playwright.sync_api import expect

    idle = re.compile(re.escape(image) + r" \| Idle")
    expect(page.locator(".jp-StatusBar-Widget").filter(has_text=idle)
           .first).to_be_visible(timeout=120_000)
    expect(choice_item(panel)).to_contain_text(re.compile(r"CPU \d+%"), timeout=60_000)


def run_cell(page: Any, panel: Any, index: int) -> Any:
    cell = panel.locator(".jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    return cell


def choice_item(panel: Any) -> Any:
    return panel.locator(".jp-StudioHub-KernelChoice")


def kernel_of(user: User, path: str) -> str:
    """The id of the kernel the server's session for ``path`` runs."""
    sessions = user.server_api("GET", "/sessions").json()
    [kernel] = [s["kernel"]["id"] for s in sessions if s["path"] == path]
    return str(kernel)


def switch(page: Any, panel: Any, image: str, size: str, shot: str = "") -> None:
    from playwright.sync_api import expect

    choice_item(panel).click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.get_by_text("Change Image and Size")).to_be_visible()
    dialog.get_by_text(image, exact=True).click()
    dialog.get_by_text(size, exact=True).click()
    if shot:
        page.screenshot(path=str(ARTIFACTS / shot))
    dialog.get_by_role("button", name="Switch").click()
    # Not the "Switching to …" label: the new kernel's own report, with its usage.
    expect(choice_item(panel)).to_contain_text(
        re.compile(re.escape(f"{image} · {size}") + r"\s*CPU \d+%"), timeout=90_000)
    wait_idle(page, panel, image)


def test_switch_image_and_size_per_notebook(
        hub: Hub, user: User, browser: Browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.login(hub.url, user.name, hub.password, viewport=VIEWPORT)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")
        # The Launcher: one notebook card per image the user's domain allows.
        notebooks = page.locator(".jp-Launcher-section").filter(
            has=page.locator(".jp-Launcher-sectionTitle", has_text="Notebook"))
        expect(notebooks.locator(".jp-LauncherCard")).to_have_count(3, timeout=60_000)
        for label in ("Base Python 3.11 · CPU", "PyTorch 2.13 · CPU",
                      "TensorFlow 2.21 · CPU"):
            expect(notebooks.locator(".jp-LauncherCard", has_text=label)).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "switching-launcher.png"))
        other = open_notebook(page, "other.ipynb")
        expect(run_cell(page, other, 0).locator(".jp-InputPrompt")
               ).to_contain_text("[1]", timeout=60_000)

        train = open_notebook(page, "train.ipynb")
        item = choice_item(train)
        expect(item).to_contain_text("Base Python 3.11 · CPU · 1 vCPU + 512 MiB")
        expect(item).to_contain_text(re.compile(r"CPU \d+% · [\d.]+ MiB / 512 MiB"),
                                     timeout=30_000)

        # Past its memory limit: the kernel is stopped and the user is told why, in the
        # dialog that replaces JupyterLab's own "Kernel Restarting" one.
        run_cell(page, train, 0)
        notice = page.locator(".jp-StudioHub-KernelExitDialog")
        expect(notice).to_contain_text("512 MiB memory limit", timeout=60_000)
        expect(notice).to_contain_text("size tiny")
        expect(page.locator(".jp-Dialog")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "switching-oom-notification.png"))
        notice.get_by_role("button", name="OK").click()

        # A larger size that fits; sizes that cannot run say why, in the picker.
        choice_item(train).click()
        dialog = page.locator(".jp-Dialog")
        giant = dialog.locator("label[data-value='giant']")
        expect(giant).to_contain_text("needs 4 TiB; this machine has")
        expect(giant.locator("input")).to_be_disabled()
        dialog.get_by_role("button", name="Cancel").click()
        # Cancel left everything as it was.
        expect(choice_item(train)).to_contain_text("Base Python 3.11 · CPU · 1 vCPU + 512 MiB")
        switch(page, train, "PyTorch 2.13 · CPU", "2 vCPU + 4 GiB",
               shot="switching-picker.png")
        out = run_cell(page, train, 1).locator(STDOUT)
        expect(out).to_contain_text("torch 2.13", timeout=120_000)
        expect(out).to_contain_text(f"limits 2.0 {4 * GIB}")
        page.screenshot(path=str(ARTIFACTS / "switching-toolbar.png"))

        switch(page, train, "TensorFlow 2.21 · CPU", "1 vCPU + 2 GiB")
        out = run_cell(page, train, 2).locator(STDOUT)
        expect(out).to_contain_text("tf 2.21", timeout=180_000)
        expect(out).to_contain_text(f"limits 1.0 {2 * GIB}")

        # Refused when it is made: the size fitted when the picker opened, then another
        # user's server took the room. The reason shows; the kernel and its state stay.
        kernel_before = kernel_of(user, "train.ipynb")
        choice_item(train).click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_text("TensorFlow 2.21 · CPU", exact=True).click()
        dialog.get_by_text("1 vCPU + most memory", exact=True).click()
        rival = hub.new_user("swrival")
        rival.spawn(image="base", size="roomy")
        try:
            dialog.get_by_role("button", name="Switch").click()
            refused = page.locator(".Toastify__toast").filter(has_text="Cannot switch")
            expect(refused).to_contain_text("of this machine's memory is free",
                                            timeout=30_000)
            expect(refused).to_be_visible()
            page.wait_for_timeout(1000)  # the toast slides in
            page.screenshot(path=str(ARTIFACTS / "switching-refused-switch.png"))
            refused.get_by_title("Hide notification").click()
            expect(refused).to_have_count(0)
        finally:
            rival.stop()
        expect(choice_item(train)).to_contain_text("TensorFlow 2.21 · CPU · 1 vCPU + 2 GiB")
        assert kernel_of(user, "train.ipynb") == kernel_before

        # Refused as the kernel is placed: the choice passed its check, then the room
        # went before the new kernel started. Same outcome, and no Lab "Error Starting
        # Kernel" dialog on top; the notebook stays on its one session and kernel.
        racer, raced = hub.new_user("swrace"), []

        def take_the_room(route: Any) -> None:
            try:
                if route.request.method == "PATCH" and not raced:
                    raced.append(route.request.url)
                    racer.spawn(image="base", size="roomy")
            finally:
                route.continue_()

        page.route("**/api/sessions/*", take_the_room)
        try:
            choice_item(train).click()
            dialog = page.locator(".jp-Dialog")
            dialog.get_by_text("1 vCPU + most memory", exact=True).click()
            dialog.get_by_role("button", name="Switch").click()
            refused = page.locator(".Toastify__toast:visible").filter(
                has_text="Cannot switch")
            expect(refused).to_contain_text("of this machine's memory is free",
                                            timeout=180_000)
            expect(refused).not_to_contain_text("could not be started")
            assert raced, "the switch never reached the kernel's start"
            expect(page.locator(".jp-Dialog")).to_have_count(0)
            page.wait_for_timeout(1000)  # the toast slides in
            page.screenshot(path=str(ARTIFACTS / "switching-refused-at-start.png"))
            refused.get_by_title("Hide notification").click()
        finally:
            page.unroute("**/api/sessions/*")
            racer.stop()
        expect(choice_item(train)).to_contain_text("TensorFlow 2.21 · CPU · 1 vCPU + 2 GiB")
        assert kernel_of(user, "train.ipynb") == kernel_before
        wait_idle(page, train)

        # A kernel shut down behind the notebook's back (another tab, the API): the
        # switch starts a new one, with no Lab error dialog, and back again.
        assert user.server_api("DELETE", f"/kernels/{kernel_before}").status_code == 204
        switch(page, train, "TensorFlow 2.21 · CPU", "1 vCPU + 512 MiB")
        expect(page.locator(".jp-Dialog")).to_have_count(0)
        assert kernel_of(user, "train.ipynb") != kernel_before
        switch(page, train, "TensorFlow 2.21 · CPU", "1 vCPU + 2 GiB")

        # Saved with the notebook: a copy of the file (what a colleague gets), opened
        # with no kernel or choice of this session, starts on the same image and size.
        page.keyboard.press("Control+s")
        tab = page.get_by_role("tab", name=re.compile("train.ipynb"))
        expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))
        saved = user.server_api("GET", "/contents/train.ipynb").json()
        assert saved["content"]["metadata"]["studiohub"] == {
            "image": "tensorflow", "size": "small"}, saved["content"]["metadata"]
        tab.click(button="middle")
        expect(tab).to_have_count(0)
        # Closed with its kernel shut down: reopened, it starts on the same choice.
        for session in user.server_api("GET", "/sessions").json():
            if session["path"] == "train.ipynb":
                assert user.server_api("DELETE", f"/sessions/{session['id']}"
                                       ).status_code == 204
        again = open_notebook(page, "train.ipynb")
        expect(choice_item(again)).to_contain_text(
            "TensorFlow 2.21 · CPU · 1 vCPU + 2 GiB", timeout=60_000)
        tab.click(button="middle")
        expect(tab).to_have_count(0)
        copy = user.server_api("POST", "/contents", json={"copy_from": "train.ipynb"})
        assert copy.status_code == 201, copy.text
        reopened = open_notebook(page, copy.json()["name"])
        expect(choice_item(reopened)).to_contain_text(
            "TensorFlow 2.21 · CPU · 1 vCPU + 2 GiB", timeout=60_000)
        out = run_cell(page, reopened, 2).locator(STDOUT)
        expect(out).to_contain_text(f"limits 1.0 {2 * GIB}", timeout=180_000)

        # The other notebook kept its kernel (and its variables) through every switch.
        page.get_by_role("tab", name=re.compile("other.ipynb")).click()
        other = page.locator(".jp-NotebookPanel:visible")
        expect(run_cell(page, other, 1).locator(STDOUT)
               ).to_contain_text("kept 42", timeout=30_000)

        # A notebook saved with a size this machine cannot run: why, and what instead.
        open_notebook(page, "huge.ipynb")
        warning = page.locator(".Toastify__toast").filter(has_text="runs on your server's size")
        expect(warning).to_contain_text("needs 4 TiB", timeout=30_000)
        expect(warning.get_by_role("button", name=re.compile("^Use "))).to_be_visible()
        page.wait_for_timeout(1000)  # the toast slides in
        page.screenshot(path=str(ARTIFACTS / "switching-refused.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "switching-failure.png"))
        raise
    finally:
        browser.close()


def test_change_server_image_and_size_restarts_the_server(
        hub: Hub, browser: Browser) -> None:
    """What stock JupyterHub profiles do, from the palette: a warning that every kernel
    stops; unsaved documents are saved before the Lab leaves for the hub's progress page;
    back in the Lab the server runs on the new size."""
    from playwright.sync_api import expect

    user = lab_user(hub, "swsrv", {"work.ipynb": notebook("x = 1")})
    page = browser.login(hub.url, user.name, hub.password, viewport=VIEWPORT)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab/tree/work.ipynb")
        panel = page.locator(".jp-NotebookPanel:visible")
        wait_idle(page, panel)
        expect(choice_item(panel)).to_contain_text("1 vCPU + 512 MiB")
        editor = panel.locator(".jp-Cell").first.locator(".jp-InputArea-editor")
        editor.click()
        page.keyboard.press("End")
        page.keyboard.type("  # unsaved edit")
        expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(1)

        run_from_palette(page, "Change Server Image and Size")
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("EVERY running kernel stops")
        dialog.locator("label[data-value='small']").click()
        page.screenshot(path=str(ARTIFACTS / "switching-server-restart.png"))
        navigations = Navigations(page)
        clicked = time.monotonic()
        dialog.get_by_role("button", name="Restart Server").click()
        # To the hub's progress page, which goes on to the Lab once the server is up
        # (at once, when it was quicker than the Lab's wait before leaving).
        navigations.wait_for(re.compile("/hub/spawn-pending/"), clicked)
        navigations.wait_for(re.compile(f"/user/{user.name}/lab"), clicked)
        panel = page.locator(".jp-NotebookPanel:visible")
        wait_idle(page, panel)
        expect(choice_item(panel)).to_contain_text("1 vCPU + 2 GiB")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "switching-server-restart-failure.png"))
        raise
    finally:
        browser.close()
    model = user.api("GET", f"/users/{user.name}").json()
    assert model["servers"][""]["user_options"]["size"] == "small"
    saved = user.server_api("GET", "/contents/work.ipynb").json()
    assert saved["content"]["cells"][0]["source"] == "x = 1  # unsaved edit"
    user.stop()


def test_a_notebook_on_an_image_outside_my_domains_says_why_and_offers_one(
        hub: Hub, browser: Browser) -> None:
    """A colleague's notebook made on an image this user's domains do not include (mxnet
    here): JupyterLab's kernel dialog proposes an allowed kernel, the notebook runs on it
    and on its saved size, and a notification says why, offering the nearest choice."""
    from playwright.sync_api import expect

    foreign = notebook("print('ran on', 6 * 7)", metadata={
        "kernelspec": {"name": "studiohub-mxnet", "language": "python",
                       "display_name": "MXNet 1.9 · CPU"},
        "studiohub": {"image": "mxnet", "size": "tiny"}})
    user = lab_user(hub, "swfor", {"theirs.ipynb": foreign})
    page = browser.login(hub.url, user.name, hub.password, viewport=VIEWPORT)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab/tree/theirs.ipynb")
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("Select Kernel", timeout=60_000)
        expect(dialog.locator("select option:checked")).to_have_text("Base Python 3.11 · CPU")
        dialog.get_by_role("button", name="Select").click()
        panel = page.locator(".jp-NotebookPanel:visible")
        wait_idle(page, panel, "Base Python 3.11 · CPU")
        expect(choice_item(panel)).to_contain_text("Base Python 3.11 · CPU · 1 vCPU + 512 MiB")
        why = page.locator(".Toastify__toast").filter(has_text="which your domains")
        expect(why).to_contain_text('made on image "mxnet"', timeout=30_000)
        expect(why.get_by_role("button", name=re.compile("^Use Base Python"))).to_be_visible()
        page.wait_for_timeout(1000)  # the toast slides in
        page.screenshot(path=str(ARTIFACTS / "switching-foreign-image.png"))
        expect(run_cell(page, panel, 0).locator(STDOUT)).to_contain_text(
            "ran on 42", timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "switching-foreign-image-failure.png"))
        raise
    finally:
        browser.close()
    user.stop()


PREFIX_CELL = ("import sys\nopen('runs.txt', 'a').write(sys.prefix + '\\n')\n"
               "print('prefix', sys.prefix)")


def test_a_cell_run_right_after_switch_runs_once_on_the_new_kernel(
        hub: Hub, browser: Browser) -> None:
    """Shift+Enter a tenth of a second after Switch: the cell waits for the new kernel
    and runs there, once (each run appends its ``sys.prefix`` to runs.txt)."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    user = lab_user(hub, "swquick", {"quick.ipynb": notebook(PREFIX_CELL)})
    page = browser.login(hub.url, user.name, hub.password, viewport=VIEWPORT)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")
        panel = open_notebook(page, "quick.ipynb")
        cell = panel.locator(".jp-Cell").nth(0)
        choice_item(panel).click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_text("PyTorch 2.13 · CPU", exact=True).click()
        dialog.get_by_text("1 vCPU + 512 MiB", exact=True).click()
        dialog.get_by_role("button", name="Switch").click()
        page.wait_for_timeout(100)
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        out = cell.locator(STDOUT)
        expect(out).to_contain_text("prefix", timeout=120_000)
        expect(cell.locator(".jp-InputPrompt")).to_contain_text("[1]")
        wait_idle(page, panel, "PyTorch 2.13 · CPU")
        page.wait_for_timeout(2000)  # a second run, were there one, would show by now
        page.screenshot(path=str(ARTIFACTS / "switching-run-right-after-switch.png"))
        runs = user.server_api("GET", "/contents/runs.txt").json()["content"].splitlines()
        assert len(runs) == 1, runs
        assert Path(runs[0]).name == "pytorch", runs
        assert out.inner_text().strip() == f"prefix {runs[0]}"
        expect(choice_item(panel)).to_contain_text("PyTorch 2.13 · CPU · 1 vCPU + 512 MiB")
    finally:
        user.stop()
