"""Image environments: what decides a rebuild, the pin guard's files, kernel specs, and the
requirement files themselves (frozen, layered, GPU files consistent with CPU ones)."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

from studiohub import envbuild, envs
from studiohub.catalog import images_dir, load_catalog
from studiohub.cli import main

PIN = re.compile(r"^[A-Za-z0-9_.\-]+(\[[a-z\-,]+\])?==[0-9][A-Za-z0-9.+\-]*$")


@pytest.fixture
def prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path))
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def pins(path: Path) -> dict[str, str]:
    """``{normalized name: full line}`` of a requirement file."""
    return {re.split(r"[\[=]", line)[0].lower().replace("_", "-"): line
            for line in envbuild.requirement_lines(path)}


# --- what decides a rebuild -----------------------------------------------------------------

def test_hash_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "numpy==1.23.5\nsix==1.17.0\n")
    before = envbuild.env_hash([a], "CPython 3.11.2")
    write(a, "# the data stack\nnumpy==1.23.5   # for mxnet\n\n   \nsix==1.17.0\n")
    assert envbuild.env_hash([a], "CPython 3.11.2") == before


def test_hash_changes_with_a_requirement(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "numpy==1.23.5\n")
    before = envbuild.env_hash([a], "CPython 3.11.2")
    write(a, "numpy==1.24.0\n")
    assert envbuild.env_hash([a], "CPython 3.11.2") != before
    write(a, "numpy==1.23.5\nsix==1.17.0\n")
    assert envbuild.env_hash([a], "CPython 3.11.2") != before


def test_hash_changes_with_python_and_pin_guard(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path / "a.txt", "numpy==1.23.5\n")
    before = envbuild.env_hash([a], "CPython 3.11.2")
    assert envbuild.env_hash([a], "CPython 3.11.9") != before
    monkeypatch.setattr(envbuild, "PIN_GUARD_VERSION", envbuild.PIN_GUARD_VERSION + 1)
    assert envbuild.env_hash([a], "CPython 3.11.2") != before


def test_hash_depends_on_layering(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "numpy==1.23.5\n")
    b = write(tmp_path / "b.txt", "six==1.17.0\n")
    assert envbuild.env_hash([a, b], "v") != envbuild.env_hash([a], "v")
    assert envbuild.env_hash([a, b], "v") == envbuild.env_hash([tmp_path / "a.txt", b], "v")


def test_nested_requirement_files_are_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "-r other.txt\n")
    with pytest.raises(ValueError, match="list that file in the catalog"):
        envbuild.requirement_lines(a)


def test_index_options_are_kept(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "--extra-index-url https://download.pytorch.org/whl/cpu\n")
    assert envbuild.requirement_lines(a) == ["--extra-index-url https://download.pytorch.org/whl/cpu"]


# --- the pin guard's files ------------------------------------------------------------------

def test_pip_conf_constrains_every_install() -> None:
    text = envbuild.make_pip_conf(Path("/opt/studiohub/envs/.store/mxnet/abc/constraints.txt"))
    assert text.splitlines()[2:] == [
        "[global]", "constraint = /opt/studiohub/envs/.store/mxnet/abc/constraints.txt"]
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    assert parser["global"]["constraint"].endswith("/constraints.txt")


def test_constraints_are_the_freeze_with_a_header() -> None:
    text = envbuild.make_constraints("mxnet", ["mxnet==1.9.1", "numpy==1.23.5"])
    lines = text.splitlines()
    assert all(line.startswith("#") for line in lines[:2])
    assert lines[2:] == ["mxnet==1.9.1", "numpy==1.23.5"]


# --- kernel specs ------------------------------------------------------------------------------

def test_kernel_spec_names_the_label_python_and_image() -> None:
    image = load_catalog().images["pytorch"]
    python = Path("/opt/studiohub/envs/pytorch/bin/python")
    assert envs.make_kernel_spec(image, python) == {
        "argv": ["/opt/studiohub/envs/pytorch/bin/python", "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "PyTorch 2.13 · CPU",
        "env": {"STUDIOHUB_KERNEL_IMAGE": "pytorch"},
        "language": "python",
        "metadata": {"studiohub": {"image": "pytorch"}, "debugger": True},
    }


def test_kernel_spec_is_written_world_readable(prefix: Path) -> None:
    image = load_catalog().images["mxnet"]
    spec_dir = envs.ensure_kernel_spec(image)
    assert spec_dir == prefix / "share/jupyter/kernels/studiohub-mxnet"
    spec = json.loads((spec_dir / "kernel.json").read_text(encoding="utf-8"))
    assert spec["display_name"] == "MXNet 1.9 · CPU"
    assert spec["argv"][0] == str(prefix / "envs/mxnet/bin/python")
    assert spec_dir.stat().st_mode & 0o777 == 0o755
    assert (spec_dir / "kernel.json").stat().st_mode & 0o777 == 0o644


def test_up_refreshes_the_kernel_spec_and_sdk_of_every_built_environment(prefix: Path) -> None:
    """After an upgrade, ``studiohub up`` brings built environments' kernel specs and SDK
    copies up to date (a stale checkpoint helper stayed in them until a rebuild)."""
    images = load_catalog().images
    built = prefix / "envs/pytorch"
    (built / "bin").mkdir(parents=True)
    (built / "bin/python").touch()
    (built / envbuild.MARKER).write_text('{"hash": "old"}')
    stale = built / "lib/python3.11/site-packages/studiohub/checkpoints.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("# an older StudioHub's helper\n")
    assert envs.refresh_built_envs(list(images.values())) == ["pytorch"]
    assert stale.read_text() == (Path(envs.__file__).parent / "checkpoints.py").read_text()
    spec = json.loads((prefix / "share/jupyter/kernels/studiohub-pytorch/kernel.json")
                      .read_text(encoding="utf-8"))
    assert spec["env"]["STUDIOHUB_KERNEL_IMAGE"] == "pytorch"
    assert not (prefix / "share/jupyter/kernels/studiohub-mxnet").exists()  # not built


@pytest.mark.parametrize("name", ["Base", "../x", "a/b", "", "-x", "__x"])
def test_environment_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="environment name"):
        envbuild.build_env(name, [])


def test_where_things_are(prefix: Path) -> None:
    assert envs.env_python("pytorch") == prefix / "envs/pytorch/bin/python"
    assert envs.kernel_name("pytorch") == "studiohub-pytorch"
    assert envbuild.log_path("pytorch") == prefix / "logs/env-pytorch.log"


def test_image_imports_follow_the_framework() -> None:
    catalog = load_catalog()
    assert envs.image_imports(catalog.images["base"]) == ("ipykernel",)
    assert envs.image_imports(catalog.images["pytorch"]) == ("ipykernel", "torch")
    assert envs.image_imports(catalog.images["mxnet-gpu"]) == ("ipykernel", "mxnet")


def test_env_status_of_an_unbuilt_image(prefix: Path) -> None:
    assert envs.env_status(load_catalog().images["base"]) == (False, "not built")


# --- progress ---------------------------------------------------------------------------------

def test_pip_output_is_summarized() -> None:
    seen: list[tuple[str, str]] = []
    progress = envbuild.PipProgress(lambda step, detail: seen.append((step, detail)))
    for line in ["Collecting torch==2.13.0+cpu", "  Downloading torch-2.13.0.whl (190.5 MB)",
                 "Collecting numpy", "Requirement already satisfied: six",
                 "Installing collected packages: numpy, torch"]:
        progress(line)
    assert seen == [("install", "resolving torch==2.13.0+cpu (1 packages)"),
                    ("install", "downloading torch-2.13.0.whl (190.5 MB)"),
                    ("install", "resolving numpy (2 packages)"),
                    ("install", "unpacking 2 packages")]


def test_unknown_image_is_refused_with_the_choices(prefix: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "build", "nope"]) == 2
    out = capsys.readouterr().out
    assert "unknown image(s) nope" in out and "base" in out and "pytorch" in out


# --- the requirement files --------------------------------------------------------------------

CPU_FILES = ["base-cpu/requirements.txt", "pytorch-cpu/requirements.txt",
             "tensorflow-cpu/requirements.txt", "mxnet-cpu/base-requirements.txt",
             "mxnet-cpu/requirements.txt"]
GPU_OF_CPU = {"pytorch-gpu/requirements.txt": ("pytorch-cpu/requirements.txt", "torch"),
              "tensorflow-gpu/requirements.txt": ("tensorflow-cpu/requirements.txt",
                                                  "tensorflow"),
              "mxnet-gpu/requirements.txt": ("mxnet-cpu/requirements.txt", "mxnet")}


@pytest.mark.parametrize("name", CPU_FILES + list(GPU_OF_CPU))
def test_requirement_files_pin_exact_versions(name: str) -> None:
    path = images_dir() / name
    assert path.read_text().startswith("# "), "a short header says what the file is"
    bad = [line for line in envbuild.requirement_lines(path) if not PIN.match(line)]
    assert not bad


def test_framework_files_add_to_their_base_without_repeating_it() -> None:
    for image in load_catalog().images.values():
        layers = [pins(p) for p in image.requirements]
        for i, layer in enumerate(layers[1:]):
            assert not set(layers[i]) & set(layer), image.id


def test_framework_pins_the_issue_asks_for() -> None:
    d = images_dir()
    assert pins(d / "pytorch-cpu/requirements.txt")["torch"] == "torch==2.13.0+cpu"
    # Issue 2 asked for tensorflow-cpu; issue 13's model.fit under MultiWorkerMirrored
    # needs tf-keras, which requires the `tensorflow` distribution (docs/training.md).
    assert pins(d / "tensorflow-cpu/requirements.txt")["tensorflow"] == "tensorflow==2.21.0"
    assert pins(d / "tensorflow-cpu/requirements.txt")["tf-keras"] == "tf_keras==2.21.0"
    assert pins(d / "mxnet-cpu/requirements.txt")["mxnet"] == "mxnet==1.9.1"
    assert pins(d / "mxnet-cpu/base-requirements.txt")["numpy"] == "numpy==1.23.5"
    assert "tensorboard" in pins(d / "pytorch-cpu/requirements.txt")
    assert "tensorboard" in pins(d / "tensorflow-cpu/requirements.txt")
    assert "tensorboardx" in pins(d / "mxnet-cpu/requirements.txt")


@pytest.mark.parametrize("gpu_file", list(GPU_OF_CPU))
def test_gpu_files_match_their_cpu_files_but_the_framework(gpu_file: str) -> None:
    cpu_file, framework = GPU_OF_CPU[gpu_file]
    cpu, gpu = pins(images_dir() / cpu_file), pins(images_dir() / gpu_file)
    cpu.pop(framework)
    assert {k: v for k, v in gpu.items() if v not in cpu.values()} == {
        "torch": {"torch": "torch==2.13.0"},
        "tensorflow": {"tensorflow": "tensorflow[and-cuda]==2.21.0"},
        "mxnet": {"mxnet-cu112": "mxnet-cu112==1.9.1"},
    }[framework]
    assert set(cpu.values()) <= set(gpu.values())
