"""studiohub.modelserver.formats: the format of a model folder or file from names alone,
refusals that say what is recognised, and symbolic links never followed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studiohub import sdk
from studiohub.modelserver import formats
from studiohub.modelserver.formats import FormatError, detect


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\x00 not read")
    return folder


def test_a_savedmodel_folder(tmp_path: Path) -> None:
    folder = touch(tmp_path / "m", "saved_model.pb", "fingerprint.pb",
                   "variables/variables.index", "assets/vocab.txt")
    found = detect(folder)
    assert (found.name, found.framework, found.path) == \
        ("tensorflow-savedmodel", "TensorFlow", folder)


@pytest.mark.parametrize(("name", "fmt", "framework"), [
    ("net.pt", "torchscript", "PyTorch"), ("net.pth", "torchscript", "PyTorch"),
    ("net.ts", "torchscript", "PyTorch"), ("net.torchscript", "torchscript", "PyTorch"),
    ("net.pt2", "torch-export", "PyTorch"), ("net.onnx", "onnx", "PyTorch"),
    ("NET.ONNX", "onnx", "PyTorch")])
def test_a_file_or_a_folder_with_exactly_one(tmp_path: Path, name: str, fmt: str,
                                             framework: str) -> None:
    folder = touch(tmp_path / "m", name, "README.md", "labels.txt")
    for path in (folder / name, folder):
        found = detect(path)
        assert (found.name, found.framework, found.path, found.files) == \
            (fmt, framework, folder / name, (folder / name,))


def test_an_mxnet_export_serves_its_highest_epoch(tmp_path: Path) -> None:
    folder = touch(tmp_path / "m", "net-symbol.json", "net-0002.params", "net-0010.params")
    found = detect(folder)
    assert (found.name, found.framework) == ("mxnet", "MXNet")
    assert found.files == (folder / "net-symbol.json", folder / "net-0010.params")


def test_hidden_files_do_not_count(tmp_path: Path) -> None:
    folder = touch(tmp_path / "m", "model.onnx", ".model.onnx.tmp", ".old.pt")
    assert detect(folder).name == "onnx"


@pytest.mark.parametrize(("names", "expected"), [
    ((), "no model format recognised. StudioHub serves a TensorFlow SavedModel folder"),
    (("notes.txt",), ".pt, .pth, .ts, .torchscript"),
    (("a.onnx", "b.onnx"), "several onnx files (a.onnx, b.onnx): give the path"),
    (("m.onnx", "m.pt"), "more than one model format: onnx (m.onnx), torchscript (m.pt)"),
    (("saved_model.pb", "m.onnx"), "more than one model format"),
    (("net-symbol.json",), "needs both <prefix>-symbol.json and <prefix>-NNNN.params"),
    (("a-symbol.json", "a-0001.params", "b-symbol.json", "b-0001.params"),
     "several MXNet exports (a, b)"),
    (("model.keras",), "a Keras file: export a SavedModel with model.export(path)"),
    (("model.safetensors",), "weights only"),
])
def test_refusals_say_what_is_recognised(tmp_path: Path, names: tuple[str, ...],
                                         expected: str) -> None:
    with pytest.raises(FormatError) as e:
        detect(touch(tmp_path / "m", *names))
    assert expected in str(e.value)
    assert str(tmp_path / "m") in str(e.value)


def test_a_nested_savedmodel_is_named(tmp_path: Path) -> None:
    touch(tmp_path / "export" / "1", "saved_model.pb")
    with pytest.raises(FormatError, match=r"export/1 is a SavedModel folder: give that"):
        detect(tmp_path / "export")


def test_missing_paths_and_parts_of_models(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file or folder"):
        detect(tmp_path / "nothing")
    folder = touch(tmp_path / "m", "saved_model.pb", "net-symbol.json")
    with pytest.raises(FormatError, match="is part of a model: give its folder"):
        detect(folder / "saved_model.pb")
    with pytest.raises(FormatError, match="no model format recognised"):
        detect(touch(tmp_path / "x", "weights.npz") / "weights.npz")


def test_symbolic_links_are_never_followed(tmp_path: Path) -> None:
    real = touch(tmp_path / "real", "saved_model.pb", "model.onnx")
    with pytest.raises(FormatError, match="is a symbolic link"):
        detect(_link(tmp_path / "link-folder", real))
    with pytest.raises(FormatError, match="is a symbolic link"):
        detect(_link(tmp_path / "link.onnx", real / "model.onnx"))
    # Links inside a folder do not count, whatever they point at.
    folder = tmp_path / "m"
    folder.mkdir()
    _link(folder / "model.onnx", real / "model.onnx")
    _link(folder / "saved_model.pb", real / "saved_model.pb")
    with pytest.raises(FormatError, match=r"symbolic links are not followed \(model.onnx"):
        detect(folder)
    touch(folder, "net.pt")
    assert detect(folder).name == "torchscript"
    # A link named like a SavedModel in a subfolder is not a nested SavedModel either.
    (tmp_path / "n" / "1").mkdir(parents=True)
    _link(tmp_path / "n" / "1" / "saved_model.pb", real / "saved_model.pb")
    with pytest.raises(FormatError) as e:
        detect(tmp_path / "n")
    assert "SavedModel folder: give that" not in str(e.value)


def test_a_fifo_named_like_a_model_is_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / "model.onnx")  # opening it would block the hub
    with pytest.raises(FormatError, match="no model format recognised"):
        detect(folder)
    with pytest.raises(FormatError, match="neither a file nor a folder"):
        detect(folder / "model.onnx")


def test_frameworks_are_the_catalogs_spelling() -> None:
    catalog = Path(formats.__file__).parents[1] / "catalog.yaml"
    frameworks = {v["framework"] for v in yaml.safe_load(catalog.read_text())["images"].values()}
    assert set(formats.FORMATS) == set(formats.FRAMEWORKS)
    assert set(formats.FRAMEWORKS.values()) <= frameworks


def test_the_hub_imports_formats_without_the_server(tmp_path: Path) -> None:
    sdk.write_package(tmp_path / "studiohub")
    code = ("import sys; from studiohub.modelserver import formats; "
            "heavy = {'tornado', 'numpy', 'json', 'studiohub.modelserver.server', "
            "'studiohub.modelserver.protocols', 'studiohub.modelserver.runtimes'}; "
            "print(sorted(heavy & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link
