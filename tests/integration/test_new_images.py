"""An image built while a user's server runs shows there at once, as in a new server.

The hub allows a server the kernels of every image the user's domains include, built or
not: jupyter_server reads kernel specs from disk on each ``/api/kernelspecs``, so a spec
registered after the spawn (what ``studiohub env build`` ends with) is listed with its
display name without a restart; an image outside the domains stays hidden even once built.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from studiohub import contract
from studiohub.catalog import load_catalog
from studiohub.envs import make_kernel_spec
from tests.hubtools import TEST_CATALOG, Hub, User
from tests.integration.conftest import shut_down

FRESH = {"display_name": "Fresh", "framework": "Python", "framework_version": "3.11",
         "accelerator": "cpu", "requirements": ["fresh.txt"],
         "container_image": "example/fresh:1"}
CATALOG = {**TEST_CATALOG,
           "images": {"fresh": FRESH, "hidden": {**FRESH, "display_name": "Hidden"}},
           "domains": {"everyone": {"images": ["base", "fresh"], "sizes": ["tiny"]}}}


@pytest.fixture(scope="module")
def kernels_dir() -> Iterator[Path]:
    """A directory on the servers' JUPYTER_PATH, empty when they start (outside pytest's
    private temporary folder, so that the users' servers can read it)."""
    root = Path(tempfile.mkdtemp(prefix="studiohub-newimages-", dir="/var/tmp"))
    (root / "kernels").mkdir()
    for path in (root, root / "kernels"):
        path.chmod(0o755)
    yield root / "kernels"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, kernels_dir: Path) -> Iterator[Hub]:
    if os.geteuid() != 0:
        pytest.skip("integration tests create unix users and cgroups: run them as root")
    workdir = tmp_path_factory.mktemp("newimages")
    workdir.chmod(0o755)
    (workdir / "fresh.txt").write_text("ipykernel\n")
    hub = Hub(workdir, catalog=CATALOG, env={"JUPYTER_PATH": str(kernels_dir.parent)})
    hub.start()
    yield hub
    shut_down(hub)


def register(hub: Hub, kernels_dir: Path, image_id: str,
             python: Path = Path(sys.executable)) -> None:
    """Write the image's kernel spec as ``studiohub env build`` does (its label, a
    python, which image it is), world-readable."""
    image = load_catalog(hub.workdir / "catalog.yaml").images[image_id]
    spec_dir = kernels_dir / contract.kernel_name(image_id)
    spec_dir.mkdir(mode=0o755)
    spec = make_kernel_spec(image, python)
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    (spec_dir / "kernel.json").chmod(0o644)


def kernelspecs(user: User) -> dict[str, str]:
    specs = user.server_api("GET", "/kernelspecs").json()["kernelspecs"]
    return {name: spec["spec"]["display_name"] for name, spec in specs.items()}


def test_an_image_built_while_the_server_runs_is_listed_there(
        hub: Hub, kernels_dir: Path) -> None:
    user = hub.new_user("fresh")
    user.spawn(image="base", size="tiny")
    before = kernelspecs(user)
    assert contract.kernel_name("base") in before
    assert contract.kernel_name("fresh") not in before
    register(hub, kernels_dir, "fresh")
    register(hub, kernels_dir, "hidden")
    label = load_catalog(hub.workdir / "catalog.yaml").images["fresh"].label
    after = kernelspecs(user)
    assert after.get(contract.kernel_name("fresh")) == label
    assert contract.kernel_name("hidden") not in after  # outside the user's domains
    assert set(after) == {contract.kernel_name("base"), contract.kernel_name("fresh")}
