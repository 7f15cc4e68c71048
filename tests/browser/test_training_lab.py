"""Training jobs from JupyterLab, in Debian's Chromium against a real hub and jobs service.

A user right-clicks a small script in the file browser, chooses Run as Training Job…, sees
the service's refusal of a size that cannot fit before submitting, then runs it on a size
that can; the job appears in the Training sidebar, its tab shows log lines arriving while
it runs and ends succeeded; Open in TensorBoard opens a TensorBoard tab on the job's
folder, and the succeeded job (a model file in its outputs) offers Deploy as Endpoint… on
its tab. A second, long-running job is cancelled from its tab and shows cancelled, then
is deleted from its tab (after a confirmation; its outputs stay), and the first one from
the sidebar with its files. Every
call goes through the Lab extension's server side, which forwards to the hub's jobs
service with the server's own token. Screenshots: ``test-artifacts/training-lab-*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from studiohub.contract import kernel_name
from tests.browser.conftest import Browser
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab
from tests.hubtools import TEST_CATALOG, Hub, User, shut_down

pytestmark = BROWSER_MARKS

#: A tiny "training": log lines, and a TensorBoard scalar per step written by hand (the
#: base image has no TensorBoard): TFRecord framing with masked CRC-32C, an ``Event`` with
#: ``summary.value {tag, simple_value}``.
TRAIN = """import os, struct, time

def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF

def masked(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

def varint(n):
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])

def field(number, wire, payload):
    key = varint(number << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)

def record(step, tag, value):
    value = field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value))
    event = (field(1, 1, struct.pack("<d", time.time())) + field(2, 0, varint(step))
             + field(5, 2, field(1, 2, value)))
    head = struct.pack("<Q", len(event))
    return (head + struct.pack("<I", masked(head)) + event
            + struct.pack("<I", masked(event)))

assert crc32c(b"123456789") == 0xE3069283
events = os.path.join(os.environ["STUDIOHUB_TENSORBOARD_DIR"], "events.out.tfevents.1.train")
with open(events, "ab") as out:
    for step in range(8):
        loss = 1 / (step + 1)
        print(f"step {step} loss {loss:.3f}", flush=True)
        out.write(record(step, "loss", loss))
        out.flush()
        time.sleep(1)
# A file named as a model in the outputs: the succeeded job's tab offers Deploy as Endpoint….
with open(os.path.join(os.environ["STUDIOHUB_OUTPUT_DIR"], "model.onnx"), "wb") as out:
    out.write(b"not really a model")
print("done training", flush=True)
"""
def sweep_notebook() -> dict[str, Any]:
    """A notebook with a ``parameters`` cell, saved for the base image on the half size."""
    cells = [
        {"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]},
         "source": "steps = 1", "outputs": [], "execution_count": None},
        {"cell_type": "code", "id": "loop", "metadata": {},
         "source": "for i in range(steps):\n    print(f'nb step {i} of {steps}')",
         "outputs": [], "execution_count": None},
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": kernel_name("base"), "display_name": "Base",
                       "language": "python"},
        "studiohub": {"image": "base", "size": "half"}}}


SLEEPER = """import time
print("waiting for a long time", flush=True)
time.sleep(900)
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    workdir = tmp_path_factory.mktemp("training-lab")
    workdir.chmod(0o755)
    started = Hub(workdir, catalog=TEST_CATALOG, settings={
        "jobs": {"enabled": True, "poll_interval": 0.2, "auth_cache_seconds": 1}})
    try:
        started.start(timeout=180)
        yield started
    finally:
        shut_down(started)


@pytest.fixture(scope="module")
def user(hub: Hub) -> User:
    trainer = hub.new_user("trainer")
    trainer.spawn(image="base", size="tiny")
    quiet_lab(trainer.name)
    for name, text in (("train.py", TRAIN), ("sleeper.py", SLEEPER)):
        r = trainer.server_api("PUT", f"/contents/{name}", json={
            "type": "file", "format": "text", "content": text})
        assert r.status_code in (200, 201), r.text
    r = trainer.server_api("PUT", "/contents/sweep.ipynb", json={
        "type": "notebook", "content": sweep_notebook()})
    assert r.status_code in (200, 201), r.text
    return trainer


def show_sidebar(page: Any, name: Any) -> None:
    """Bring a left sidebar forward (a click on the tab already shown would close it)."""
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=name).first
    expect(tab).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1000)  # the layout is restored once the tabs are there
    if tab.get_attribute("aria-selected") != "true":
        tab.click()


def run_from_file_browser(page: Any, name: str) -> Any:
    """Right-click ``name`` in the file browser, Run as Training Job…: the form's dialog."""
    from playwright.sync_api import expect

    show_sidebar(page, re.compile(r"^File Browser"))
    item = page.get_by_role("listitem").filter(has_text=name)
    expect(item.first).to_be_visible(timeout=60_000)
    item.first.click(button="right")
    page.get_by_role("menuitem", name="Run as Training Job…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Run {name} as a training job")
    return dialog


def test_run_watch_tensorboard_and_cancel_from_lab(hub: Hub, user: User,
                                                   browser: Browser) -> None:
    from playwright.sync_api import expect

    # Through the real stack, the service's refusals keep their status and message.
    refused = user.lab_api("POST", "/training/jobs?check=true",
                           json={"script": "train.py", "image": "base", "size": "giant"})
    assert refused.status_code == 400, refused.text
    too_big = refused.json()["message"]
    assert "cannot run here: needs 4 TiB" in too_big, too_big
    bad = user.lab_api("POST", "/training/jobs", json={"script": "../etc/passwd"})
    assert bad.status_code == 400 and "outside your home" in bad.json()["message"], bad.text

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.login(hub.url, user.name, hub.password)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")
        dialog = run_from_file_browser(page, "train.py")
        verdict = dialog.get_by_role("status", name="Can this job run")
        expect(verdict).to_contain_text("Ready to run", timeout=30_000)
        expect(dialog.get_by_label("Image")).to_have_value("base")
        expect(dialog.get_by_label("Size")).to_have_value("tiny")
        # A size that cannot fit is disabled with its reason, as in the kernel picker.
        giant = dialog.get_by_label("Size").locator("option[value=giant]")
        expect(giant).to_be_disabled()
        expect(giant).to_contain_text("needs 4 TiB")
        # Shown as lists (a closed select's options do not show in a screenshot).
        dialog.locator("select").evaluate_all(
            "ss => ss.forEach(s => { s.size = 5; s.style.height = 'auto'; })")
        page.screenshot(path=str(ARTIFACTS / "training-lab-form-refused.png"))
        dialog.locator("select").evaluate_all(
            "ss => ss.forEach(s => { s.size = 0; s.style.height = ''; })")
        dialog.get_by_label("Arguments").fill("--epochs 8")
        expect(verdict).to_contain_text("Ready to run", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "training-lab-form.png"))
        dialog.get_by_role("button", name="Run").click()

        # The job's tab: log lines arrive while it runs, then it succeeds.
        job_tab = page.get_by_role("region", name=re.compile(r"^Training job [0-9a-f]{12}$"))
        expect(job_tab).to_be_visible(timeout=30_000)
        log = job_tab.get_by_role("log", name="Job log")
        expect(log).to_contain_text("step 1 loss", timeout=90_000)
        status = job_tab.get_by_role("status", name="Job status")
        expect(status).to_have_text("running")
        first_seen = log.inner_text()
        assert "done training" not in first_seen, first_seen
        page.screenshot(path=str(ARTIFACTS / "training-lab-job-running.png"))
        expect(log).to_contain_text("done training", timeout=60_000)
        expect(status).to_have_text("succeeded", timeout=30_000)
        expect(job_tab.get_by_role("list", name="Events")).to_contain_text("exited")
        # The job's scalars: the latest value and a curve per tag.
        metric = job_tab.get_by_role("listitem", name="Metric loss")
        expect(metric).to_contain_text("loss: 0.1250 (step 7)", timeout=30_000)
        expect(metric.get_by_role("img", name="loss curve")).to_be_visible()
        job_id = job_tab.get_attribute("aria-label").split()[-1]
        # Succeeded with a model file in its outputs: Deploy as Endpoint… on the tab, the
        # same command and form as the right-click menu's (cancelled here).
        deploy = job_tab.get_by_role("button", name="Deploy as Endpoint…")
        expect(deploy).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "training-lab-job-done.png"))
        deploy.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Deploy studiohub-jobs/{job_id}/outputs as an endpoint")
        expect(dialog.get_by_label("Endpoint name")).to_have_value(f"job-{job_id}")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        # Download: the whole log as a file, through the same route.
        href = job_tab.get_by_role("link", name="Download this log").get_attribute("href")
        assert "download=1" in href, href
        download = page.request.get(href if href.startswith("http") else f"{hub.url}{href}")
        assert download.ok and "step 7 loss 0.125" in download.text(), download.text()
        assert "attachment" in download.headers["content-disposition"]

        # The Training sidebar lists it with its status.
        show_sidebar(page, "Training jobs")
        sidebar = page.get_by_role("region", name="Training jobs")
        entry = sidebar.get_by_role("listitem", name=f"Training job train.py ({job_id})")
        expect(entry).to_contain_text("succeeded", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "training-lab-sidebar.png"))

        # Open in TensorBoard: a TensorBoard tab on the job's folder.
        job_tab.get_by_role("button", name="Open in TensorBoard").click()
        expect(page.get_by_role("tab", name="TensorBoard: tensorboard")).to_be_visible(
            timeout=60_000)
        boards = user.lab_api("GET", "/tensorboards").json()["tensorboards"]
        folders = [f for board in boards for f in board["folders"]]
        assert any(f.rstrip("/").endswith(f"studiohub-jobs/{job_id}/tensorboard")
                   for f in folders), folders
        frame = page.frame_locator("iframe[title='TensorBoard: tensorboard']")
        expect(frame.locator("card-view").filter(has_text="loss").first).to_be_visible(
            timeout=90_000)
        page.wait_for_timeout(1500)  # let the chart finish drawing for the screenshot
        page.screenshot(path=str(ARTIFACTS / "training-lab-tensorboard.png"))

        # A long job, cancelled from its tab.
        dialog = run_from_file_browser(page, "sleeper.py")
        expect(dialog.get_by_role("status", name="Can this job run")).to_contain_text(
            "Ready to run", timeout=30_000)
        dialog.get_by_role("button", name="Run").click()
        sleeper = page.get_by_role("region", name=re.compile(r"^Training job [0-9a-f]{12}$")
                                   ).filter(has_text="sleeper.py")
        expect(sleeper.get_by_role("log", name="Job log")).to_contain_text(
            "waiting for a long time", timeout=90_000)
        sleeper.get_by_role("button", name="Cancel this job").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel job").click()
        expect(sleeper.get_by_role("status", name="Job status")).to_have_text(
            f"cancelled by {user.name}", timeout=60_000)
        expect(sleeper.get_by_role("button", name="Cancel this job")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / "training-lab-cancelled.png"))
        show_sidebar(page, "Training jobs")
        expect(sidebar.get_by_role("listitem", name=re.compile(r"^Training job sleeper\.py"))
               ).to_contain_text(f"cancelled by {user.name}", timeout=30_000)
        sleeper_id = sleeper.get_attribute("aria-label").split()[-1]
        job = user.lab_api("GET", f"/training/jobs/{sleeper_id}").json()
        assert job["status"] == "cancelled" and user.name in job["reason"], job
        # A notebook from the file browser's context menu: its saved image and size are
        # the form's, its parameters cell gets the form's values; outputs in the browser.
        dialog = run_from_file_browser(page, "sweep.ipynb")
        expect(dialog.get_by_label("Size")).to_have_value("half")
        dialog.get_by_label("Parameters (name=value, one a line)").fill("steps=3")
        expect(dialog.get_by_role("status", name="Can this job run")).to_contain_text(
            "Ready to run", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "training-lab-form-notebook.png"))
        dialog.get_by_role("button", name="Run").click()
        sweep = page.get_by_role("region", name=re.compile(r"^Training job [0-9a-f]{12}$")
                                 ).filter(has_text="sweep.ipynb")
        expect(sweep.get_by_role("status", name="Job status")).to_have_text(
            "succeeded", timeout=120_000)
        expect(sweep.get_by_role("log", name="Job log")).to_contain_text(
            "nb step 2 of 3", timeout=30_000)
        sweep_id = sweep.get_attribute("aria-label").split()[-1]
        # Its outputs hold the executed notebook only: nothing to deploy, not offered.
        expect(sweep.get_by_role("button", name="Deploy as Endpoint…")).to_be_hidden()
        sweep.get_by_role("button", name="Open outputs").click()
        expect(page.get_by_role("listitem").filter(has_text="sweep.ipynb")).to_be_visible()
        # The breadcrumbs: "/ … / <id> / outputs /".
        expect(page.get_by_text(sweep_id, exact=True).first).to_be_visible()
        expect(page.get_by_text("outputs", exact=True).first).to_be_visible()
        executed = user.server_api(
            "GET", f"/contents/studiohub-jobs/{sweep_id}/outputs/sweep.ipynb").json()
        assert "nb step 2 of 3" in str(executed["content"]["cells"]), executed
        page.screenshot(path=str(ARTIFACTS / "training-lab-outputs.png"))

        # Delete the cancelled job from its tab: a confirmation, then the tab closes and
        # the job is gone from the sidebar and the service; its outputs folder stays.
        sleeper_tab = page.get_by_role("tab", name=re.compile(r"^sleeper\.py \(cancelled\)"))
        sleeper_tab.click()
        sleeper.get_by_role("button", name="Delete this job").click()
        confirm = page.get_by_role("dialog")
        expect(confirm).to_contain_text("Delete the training job sleeper.py?")
        expect(confirm.get_by_role("checkbox")).not_to_be_checked()
        page.screenshot(path=str(ARTIFACTS / "training-lab-delete-confirm.png"))
        confirm.get_by_role("button", name="Delete").click()
        expect(sleeper).to_be_hidden(timeout=30_000)
        show_sidebar(page, "Training jobs")
        expect(sidebar.get_by_role("listitem", name=re.compile(r"^Training job sleeper\.py"))
               ).to_have_count(0, timeout=30_000)
        assert user.lab_api("GET", f"/training/jobs/{sleeper_id}").status_code == 404
        kept = user.server_api("GET", f"/contents/studiohub-jobs/{sleeper_id}").json()
        assert {c["name"] for c in kept["content"]} == {"outputs", "checkpoints",
                                                      "tensorboard"}, kept
        # The first job, from the sidebar, its files too (the box ticked).
        entry.get_by_role("button", name=f"Delete training job train.py ({job_id})").click()
        confirm = page.get_by_role("dialog")
        confirm.get_by_role("checkbox").check()
        confirm.get_by_role("button", name="Delete").click()
        expect(entry).to_have_count(0, timeout=30_000)
        expect(sidebar.get_by_role("listitem", name=f"Training job sweep.ipynb ({sweep_id})")
               ).to_contain_text("succeeded")
        assert user.server_api("GET", f"/contents/studiohub-jobs/{job_id}").status_code == 404
        page.screenshot(path=str(ARTIFACTS / "training-lab-deleted.png"))

    except Exception:
        page.screenshot(path=str(ARTIFACTS / "training-lab-failure.png"))
        raise
    finally:
        browser.close()
