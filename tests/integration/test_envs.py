"""Environments built for real: a build, a no-op rebuild, failed builds that keep the
previous environment, and each environment's pin guard refusing conflicting installs.

The build tests use a one-package image in a fresh prefix. The pin-guard tests use the
real mxnet and pytorch environments, kept in ``$STUDIOHUB_TEST_ENVS`` like
test_frameworks.py does, so they are built once for both modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from studiohub import envs

pytestmark = pytest.mark.integration

ENVS_PREFIX = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs"))
TINY = "ipykernel==6.31.0\n"


def studiohub_env(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``studiohub env …`` command, against ``prefix``."""
    return subprocess.run([sys.executable, "-m", "studiohub.cli", "env", *args],
                          env={**os.environ, "STUDIOHUB_PREFIX": str(prefix)},
                          capture_output=True, text=True, timeout=1800, check=False)


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    """A fresh prefix every unix user can traverse (the env is used as ``nobody`` too)."""
    path = Path(tempfile.mkdtemp(prefix="studiohub-envs-", dir="/var/tmp"))
    path.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIOHUB_PREFIX", str(path))
        yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def catalog(prefix: Path) -> Path:
    """An operator catalog adding the image ``tiny``: just ipykernel."""
    (prefix / "tiny.txt").write_text(TINY)
    image = {"display_name": "Tiny", "framework": "Python", "framework_version": "3.11",
             "accelerator": "cpu", "requirements": ["tiny.txt"],
             "container_image": "example/tiny:1"}
    path = prefix / "catalog.yaml"
    path.write_text(yaml.safe_dump({"images": {"tiny": image}}))
    return path


@pytest.fixture(scope="module")
def first_build(prefix: Path, catalog: Path) -> subprocess.CompletedProcess[str]:
    """``studiohub env build tiny`` in the fresh prefix: what the other tests start from,
    so that each of them also runs on its own (``-k``)."""
    return studiohub_env(prefix, "build", "--catalog", str(catalog), "tiny")


@pytest.fixture
def built(prefix: Path, first_build: subprocess.CompletedProcess[str]) -> Path:
    """The current build directory of ``tiny``, which exists."""
    assert first_build.returncode == 0, first_build.stdout + first_build.stderr
    return current(prefix)


@pytest.fixture
def tiny_txt(prefix: Path) -> Iterator[Path]:
    """tiny.txt, restored after a test changes it."""
    path = prefix / "tiny.txt"
    yield path
    path.write_text(TINY)


def current(prefix: Path) -> Path:
    """The build directory envs/tiny points at."""
    link = prefix / "envs" / "tiny"
    assert link.is_symlink()
    return link.resolve()


def store(prefix: Path) -> list[Path]:
    return sorted((prefix / "envs" / ".store" / "tiny").iterdir())


def test_build_makes_an_env_and_kernel_every_user_can_use(
        prefix: Path, first_build: subprocess.CompletedProcess[str]) -> None:
    result = first_build
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ tiny: built in" in result.stdout
    env = prefix / "envs" / "tiny"
    spec = json.loads((prefix / "share/jupyter/kernels/studiohub-tiny/kernel.json").read_text())
    assert spec["display_name"] == "Tiny 3.11 · CPU"
    assert spec["argv"][0] == str(env / "bin" / "python")
    assert spec["metadata"] == {"studiohub": {"image": "tiny"}, "debugger": True}
    assert (env / "pip.conf").read_text().endswith(
        f"constraint = {current(prefix) / 'constraints.txt'}\n")
    assert "ipykernel==6.31.0" in (env / "constraints.txt").read_text().splitlines()
    assert "Successfully installed" in (prefix / "logs" / "env-tiny.log").read_text()
    if os.geteuid() == 0:
        as_nobody = run("runuser", "-u", "nobody", "--", env / "bin" / "python", "-c",
                        "import ipykernel, sys; print(sys.prefix)")
        assert as_nobody.stdout.strip() == str(env), as_nobody.stderr


def test_unchanged_build_is_a_no_op(prefix: Path, catalog: Path, built: Path) -> None:
    before = built
    result = studiohub_env(prefix, "build", "--catalog", str(catalog), "tiny")
    assert result.returncode == 0, result.stderr
    marker = json.loads((before / envs.MARKER).read_text())
    assert result.stdout.strip() == f"tiny: up to date (hash {marker['hash'][:12]})"
    assert current(prefix) == before


def test_failed_install_keeps_the_previous_env(prefix: Path, catalog: Path, built: Path,
                                               tiny_txt: Path) -> None:
    before = built
    tiny_txt.write_text(TINY + "studiohub-no-such-package==0.0.1\n")
    result = studiohub_env(prefix, "build", "--catalog", str(catalog), "tiny")
    assert result.returncode == 1
    assert "✗ tiny: installing requirements failed" in result.stderr
    assert "previous environment, if any, is unchanged" in result.stderr
    assert "No matching distribution found for studiohub-no-such-package" in result.stderr
    assert "What to do: pip could not install" in result.stderr
    assert f"Full log: {prefix / 'logs' / 'env-tiny.log'}" in result.stderr
    assert current(prefix) == before and store(prefix) == [before]
    assert run(prefix / "envs/tiny/bin/python", "-c", "import ipykernel").returncode == 0


def test_failed_verification_keeps_the_previous_env(prefix: Path, built: Path,
                                                    tiny_txt: Path) -> None:
    before = built
    with pytest.raises(envs.EnvBuildError) as failure:
        envs.build_env("tiny", [tiny_txt], imports=["studiohub_no_such_module"], force=True)
    assert failure.value.step == "verify"
    assert failure.value.log is not None
    assert "No module named 'studiohub_no_such_module'" in failure.value.log.read_text()
    assert current(prefix) == before and store(prefix) == [before]


def test_changed_requirements_swap_in_a_new_env(prefix: Path, catalog: Path, built: Path,
                                                tiny_txt: Path) -> None:
    before = built
    tiny_txt.write_text(TINY + "six==1.17.0\n")
    result = studiohub_env(prefix, "build", "--catalog", str(catalog), "tiny")
    assert result.returncode == 0, result.stderr
    after = current(prefix)
    assert after != before and not before.exists() and store(prefix) == [after]
    assert run(prefix / "envs/tiny/bin/python", "-c", "import six").returncode == 0
    listing = studiohub_env(prefix, "list", "--catalog", str(catalog))
    assert "up to date" in listing.stdout and "studiohub-tiny" in listing.stdout


def test_pip_in_the_env_keeps_its_pins(prefix: Path, built: Path) -> None:
    python = prefix / "envs/tiny/bin/python"
    result = run(python, "-m", "pip", "install", "ipykernel==6.30.0")
    assert result.returncode != 0
    assert "The user requested (constraint) ipykernel==6.31.0" in result.stdout + result.stderr
    assert run(python, "-c", "import ipykernel; print(ipykernel.__version__)"
               ).stdout.strip() == "6.31.0"


# --- the pin guard of the real framework environments ------------------------------------

def framework_python(image: str) -> Path:
    """The image's environment in the shared test prefix, built (or up to date) first."""
    ENVS_PREFIX.mkdir(parents=True, exist_ok=True)
    ENVS_PREFIX.chmod(0o755)
    result = studiohub_env(ENVS_PREFIX, "build", image)
    assert result.returncode == 0, result.stdout + result.stderr
    return ENVS_PREFIX / "envs" / image / "bin" / "python"


def version(python: Path, module: str) -> str:
    return run(python, "-c", f"import {module}; print({module}.__version__)").stdout.strip()


def fake_wheel(directory: Path, name: str, requires: str) -> Path:
    """A one-file wheel that only declares a dependency."""
    dist = f"{name.replace('-', '_')}-1.0"
    meta = {f"{dist}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nRequires-Dist: {requires}\n",
            f"{dist}.dist-info/WHEEL":
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = f"{dist}.dist-info/RECORD"
    meta[record] = "".join(f"{member},,\n" for member in [*meta, record])
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in meta.items():
            wheel.writestr(member, text)
    return path


def test_mxnet_env_refuses_a_newer_numpy() -> None:
    python = framework_python("mxnet")
    result = run(python, "-m", "pip", "install", "numpy==2.1.0")
    if result.returncode == 0:  # the guard failed: make the next run rebuild the env
        (python.parents[1] / envs.MARKER).unlink()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Cannot install numpy==2.1.0" in output
    assert "The user requested (constraint) numpy==1.23.5" in output
    assert version(python, "numpy") == "1.23.5"


def test_cpu_pytorch_env_cannot_pull_a_cuda_torch(tmp_path: Path) -> None:
    python = framework_python("pytorch")
    pip: list[str | Path] = [python, "-m", "pip", "install"]
    plain = run(*pip, "torch")
    assert plain.returncode == 0 and "Requirement already satisfied: torch" in plain.stdout
    upgrade = run(*pip, "--dry-run", "--upgrade", "torch")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Would install" not in upgrade.stdout, upgrade.stdout
    fake_wheel(tmp_path, "needs-newer-torch", "torch>=2.14")
    newer = run(*pip, "--dry-run", "--find-links", tmp_path, "needs-newer-torch")
    assert newer.returncode != 0
    assert "The user requested (constraint) torch==2.13.0+cpu" in newer.stdout + newer.stderr
    assert version(python, "torch") == "2.13.0+cpu"
