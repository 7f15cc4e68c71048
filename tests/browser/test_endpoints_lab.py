"""Model endpoints from JupyterLab, in Debian's Chromium against a real hub with the jobs
and models services: a training job's output deployed, watched and tried.

A real training job on the pytorch image saves a TorchScript model into its outputs
folder (``$STUDIOHUB_OUTPUT_DIR``) and prints what that model answers in-process. In the
Lab, the succeeded job's row in the Training sidebar offers Deploy as Endpoint… on a right
click, and its tab as a button; the user clicks that button, points the model at the
TorchScript file in the job's outputs and deploys; the Endpoints sidebar lists the
endpoint until it is ready (a real replica behind HAProxy). In the endpoint's tab, with
one version, neither the traffic share nor Rollback is offered; Try it sends a TF Serving
request, and the answer shown has the job's own numbers; a new endpoint token is shown at
once, where the user looks. A second version deployed as a 10 % canary brings the share
and Rollback; rolling back (confirmed in a dialog) retires it and they go again. Screenshots:
``test-artifacts/endpoints-lab-*``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser.conftest import Browser
from tests.browser.test_training_lab import show_sidebar
from tests.browsertools import ARTIFACTS, BROWSER_MARKS, quiet_lab
from tests.endpointtools import ModelsHub, env_ready, in_process_close, remove_endpoints
from tests.hubtools import User, shut_down
from tests.jobtools import CATALOG, finished, logs, submit, wait_for, write_script

pytestmark = BROWSER_MARKS

#: One instance of four features, as typed into Try it.
ROW = [[5.1, 3.5, 1.4, 0.2]]
#: Where the lead looks at the Try it screenshot.
SHOTS = Path("/work/helpers/shots")
#: The module's users, whose endpoints are deleted at teardown.
USERS: list[User] = []

#: The "training": a tiny net saved as TorchScript into the job's outputs, and its own
#: answers to ROW and to a row of zeros (Try it's first request) printed in-process.
TRAIN = f"""import json, os, torch
torch.manual_seed(7)
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
torch.jit.script(net).save(os.path.join(os.environ["STUDIOHUB_OUTPUT_DIR"], "net.pt"))
with torch.inference_mode():
    print("PREDICTIONS " + json.dumps(net(torch.tensor({ROW})).tolist()), flush=True)
    print("ZEROS " + json.dumps(net(torch.zeros(1, 4)).tolist()), flush=True)
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsHub]:
    if not env_ready("pytorch"):
        pytest.fail("the pytorch test environment is missing: build it with "
                    "tests/integration/test_frameworks.py")
    workdir = tmp_path_factory.mktemp("endpoints-lab")
    workdir.chmod(0o755)
    started = ModelsHub(workdir, catalog=CATALOG)
    try:
        started.start()
        yield started
    finally:
        try:
            remove_endpoints(started, USERS)
        finally:
            shut_down(started)


@pytest.fixture(scope="module")
def user(hub: ModelsHub) -> User:
    deployer = hub.new_user("deployer")
    USERS.append(deployer)
    deployer.spawn(timeout=120, image="pytorch", size="tiny")
    quiet_lab(deployer.name)
    write_script(deployer, "train_net.py", TRAIN)
    return deployer


@pytest.fixture(scope="module")
def job(hub: ModelsHub, user: User) -> dict[str, Any]:
    """The succeeded job, with the predictions it printed for ROW."""
    submitted = submit(hub, user, script="train_net.py", image="pytorch", size="tiny")
    done = wait_for(hub, user, submitted["id"], finished, timeout=300)
    text = logs(hub, user, done["id"])
    assert done["status"] == "succeeded", f"{done}\n{text}"
    printed = dict(x.split(" ", 1) for x in text.splitlines()
                   if x.startswith(("PREDICTIONS ", "ZEROS ")))
    return {**done, "expected": json.loads(printed["PREDICTIONS"]),
            "zeros": json.loads(printed["ZEROS"])}


def answer_json(text: str) -> Any:
    """The Try it box's answer without its "(N ms)" line."""
    body, _, timing = text.strip().rpartition("\n\n")
    assert re.fullmatch(r"\(\d+ ms\)", timing), text
    return json.loads(body)


def test_deploy_a_jobs_model_watch_it_ready_and_try_it(hub: ModelsHub, user: User,
                                                       job: dict[str, Any],
                                                       browser: Browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    outputs = f"studiohub-jobs/{job['id']}/outputs"
    page = browser.login(hub.url, user.name, hub.password)
    try:
        page.goto(f"{hub.url}/user/{user.name}/lab")

        # The succeeded job's row in the Training sidebar: Deploy as Endpoint… on a right
        # click; its tab: a Deploy as Endpoint… button, the same command.
        show_sidebar(page, "Training jobs")
        row = page.get_by_role("region", name="Training jobs").get_by_role(
            "listitem", name=f"Training job train_net.py ({job['id']})")
        expect(row).to_contain_text("succeeded", timeout=60_000)
        row.click(button="right")
        expect(page.get_by_role("menuitem", name="Deploy as Endpoint…")).to_be_visible()
        page.keyboard.press("Escape")
        row.get_by_role("button", name=f"Open training job train_net.py ({job['id']})").click()
        job_tab = page.get_by_role("region", name=f"Training job {job['id']}")
        expect(job_tab.get_by_role("status", name="Job status")).to_have_text("succeeded",
                                                                              timeout=60_000)
        deploy = job_tab.get_by_role("button", name="Deploy as Endpoint…")
        expect(deploy).to_be_visible(timeout=30_000)  # net.pt is in its outputs
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-job-deploy-button.png"))
        deploy.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Deploy {outputs} as an endpoint")
        model = dialog.get_by_label("Model", exact=True)
        expect(model).to_have_value(outputs)  # the job's outputs, prefilled
        expect(dialog.get_by_label("Image")).to_have_value("pytorch")  # the job's image
        # A name is suggested from the job; emptied, the form asks for one and does not
        # call the empty field wrong.
        verdict = dialog.get_by_role("status", name="Can this model be deployed")
        expect(verdict).to_have_text(f"Ready: deploys a new endpoint job-{job['id']}.",
                                     timeout=60_000)
        dialog.get_by_label("Endpoint name").fill("")
        expect(verdict).to_have_text(re.compile(r"^Name the endpoint: lowercase"))
        expect(verdict).not_to_have_class(re.compile("jp-mod-refused"))
        expect(dialog.get_by_role("button", name="Deploy")).to_be_disabled()
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-deploy-empty.png"))
        dialog.get_by_label("Endpoint name").fill("jobnet")
        model.fill(f"{outputs}/net.pt")
        expect(verdict).to_have_text("Ready: deploys a new endpoint jobnet.", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-deploy.png"))
        dialog.get_by_role("button", name="Deploy").click()

        # The Endpoints sidebar lists it until a replica answers: ready.
        show_sidebar(page, "Model endpoints")
        entry = page.get_by_role("region", name="Model endpoints").get_by_role(
            "listitem", name="Endpoint jobnet")
        expect(entry).to_be_visible(timeout=60_000)
        expect(entry.locator(".jp-StudioHub-EndpointsPanel-status")).to_have_text(
            "ready", timeout=240_000)
        expect(entry).to_contain_text("v1 100%")

        # Its tab (opened by the deploy): ready, version 1 serving TorchScript.
        view = page.get_by_role("region", name="Endpoint jobnet")
        expect(view.get_by_role("status", name="Endpoint status")).to_contain_text(
            "ready", timeout=60_000)
        version = view.get_by_role("row", name="Version 1", exact=True)
        expect(version).to_contain_text("serving")
        expect(version).to_contain_text("torchscript · pytorch · tiny")
        # One version: no share to set, nothing to roll back to; Delete stays.
        slider = view.get_by_label("Canary share (slider)")
        rollback = view.get_by_role("button", name="Roll back to the previous version")
        expect(slider).to_be_hidden()
        expect(view.get_by_role("button", name="Apply the canary share")).to_be_hidden()
        expect(rollback).to_be_hidden()
        expect(view.get_by_role("button", name="Delete this endpoint")).to_be_visible()
        expect(view).to_contain_text("One version: deploy another to this name")
        # The errors column says what it counts.
        errors = view.get_by_role("columnheader", name="5xx errors")
        expect(errors).to_have_attribute("title", re.compile(r"status 500 or more"))
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-ready.png"))

        # Try it.
        tryit = view.get_by_role("region", name="Try it")
        request = tryit.get_by_label("Request (JSON)")
        send = tryit.get_by_role("button", name="Send the request")
        answer = tryit.get_by_label("Answer")
        # The box starts with a V2 request named after the model's input (TorchScript
        # records no shape: a row of four zeros to edit), and sent as is it answers.
        expect(request).to_have_value(re.compile(r'"name":"input"'), timeout=60_000)
        assert json.loads(request.input_value())["inputs"][0]["shape"] == [1, 4]
        send.click()
        expect(answer).to_contain_text("ms)", timeout=60_000)
        got = answer_json(answer.inner_text())
        assert in_process_close(got["outputs"][0]["data"], job["zeros"][0]), got
        # A TF Serving request of one row: the answer shown is the job's own numbers.
        tryit.get_by_label("Protocol").select_option("v1")
        request.fill(json.dumps({"instances": ROW}))
        send.click()
        expect(answer).to_contain_text('"predictions"', timeout=60_000)
        got = answer_json(answer.inner_text())
        assert in_process_close(got["predictions"], job["expected"]), (got, job["expected"])
        tryit.scroll_into_view_if_needed()
        shot = ARTIFACTS / "endpoints-lab-tryit.png"
        page.screenshot(path=str(shot))
        if SHOTS.parent.is_dir():
            SHOTS.mkdir(exist_ok=True)
            shutil.copyfile(shot, SHOTS / "endpoints-tryit.png")

        # A token: shown at once where the user looks (the Tokens section is below the
        # fold), said to be shown once, with Copy.
        view.evaluate("node => { node.scrollTop = 0; }")
        view.get_by_label("New token note").fill("browser demo")
        view.get_by_role("button", name="Create an endpoint token").click()
        shown = view.get_by_role("status", name="New endpoint token")
        expect(shown).to_contain_text("shown only this once", timeout=30_000)
        expect(shown).to_be_in_viewport()
        expect(shown.get_by_role("button", name="Copy the new token")).to_be_focused()
        secret = shown.get_by_label("New token", exact=True).inner_text()
        assert secret.startswith("shm_"), secret
        # The list says what each token is for, with the note given.
        expect(view.get_by_role("list", name="Endpoint tokens")).to_contain_text(
            "browser demo", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-token.png"))
        shown.get_by_role("button", name="Hide the new token").click()
        expect(shown).to_be_hidden()

        # A second version as a 10 % canary: the share (its) and Rollback appear.
        r = user.lab_api("POST", "/endpoints", json={
            "name": "jobnet", "model": f"{outputs}/net.pt", "canary": 10})
        assert r.status_code == 201, r.text
        expect(view.get_by_role("row", name="Version 2", exact=True)).to_contain_text(
            "serving", timeout=240_000)
        expect(slider).to_be_visible(timeout=30_000)
        expect(view.get_by_label("Canary share in percent")).to_have_value("10")
        expect(view).to_contain_text("Share of version 2")
        expect(rollback).to_be_visible()
        expect(rollback).to_have_attribute(
            "title", "Retire version 2; version 1 keeps all traffic")
        view.evaluate("node => { node.scrollTop = 0; }")
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-canary.png"))
        # Rolled back, once confirmed: the dialog says what happens (the button's plan).
        rollback.click()
        confirm = page.get_by_role("dialog")
        expect(confirm).to_contain_text("Roll back the endpoint jobnet?")
        expect(confirm).to_contain_text("Retire version 2; version 1 keeps all traffic.")
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-rollback-confirm.png"))
        confirm.get_by_role("button", name="Roll Back").click()
        # Version 2 retires; version 1 alone again, nothing newer to go to.
        expect(view.get_by_role("row", name="Version 2", exact=True)).to_contain_text(
            "retired", timeout=60_000)
        expect(slider).to_be_hidden(timeout=30_000)
        expect(rollback).to_be_hidden()

        # The token shown is the one a program outside the hub calls the endpoint with.
        called = requests.post(f"{hub.models_url}jobnet/v1/models/jobnet:predict",
                               headers={"Authorization": f"Bearer {secret}"},
                               json={"instances": ROW}, timeout=60)
        assert called.status_code == 200, called.text[:2000]
        assert in_process_close(called.json()["predictions"], job["expected"]), called.text
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "endpoints-lab-failure.png"))
        raise
    finally:
        browser.close()
