"""The copy a version serves: made beside, never over, what a deleted endpoint kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from studiohub.serving import modelcopy


def test_a_copy_over_a_kept_one_sets_the_old_aside(tmp_path: Path) -> None:
    source = tmp_path / "net.onnx"
    source.write_bytes(b"first")
    target = tmp_path / "home/studiohub-endpoints/net/v1"
    first = modelcopy.copy(source, target, 1024, check=False)
    assert first["kept"] == "" and Path(str(first["model_path"])).read_bytes() == b"first"
    source.write_bytes(b"second")
    second = modelcopy.copy(source, target, 1024, check=False)
    third = modelcopy.copy(source, target, 1024, check=False)  # "-1" if in the same second
    assert Path(str(second["model_path"])).read_bytes() == b"second"
    kept = sorted(target.parent.glob("v1.replaced-*"))
    assert [str(k) for k in kept] == sorted([str(second["kept"]), str(third["kept"])])
    assert {(k / "net.onnx").read_bytes() for k in kept} == {b"first", b"second"}
    # A dry run, and a refused copy, touch nothing.
    assert modelcopy.copy(source, target, 1024, check=True)["model_path"] == ""
    with pytest.raises(ValueError, match="larger than"):
        modelcopy.copy(source, target, 3, check=False)
    assert len(list(target.parent.iterdir())) == 3
