"""The set-up commands refuse a Node.js too old for what they build and run, saying so.

Debian 12's own nodejs is 18: JupyterLab's extension builder (^20.19.0 || >=22.12.0)
would fail deep inside ``pip install``, so ``make up``/``make test`` check first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "check-node.sh"


def check_with(version: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version is not None:
        node = bin_dir / "node"
        node.write_text(f"#!/bin/sh\necho {version}\n")
        node.chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin" if version is not None else str(bin_dir)
    return subprocess.run(["/bin/bash", str(CHECK)], env={**os.environ, "PATH": path},
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("version", ["v20.19.0", "v20.20.2", "v22.12.0", "v24.1.0"])
def test_a_new_enough_node_passes_quietly(version: str, tmp_path: Path) -> None:
    result = check_with(version, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("version", ["v18.19.0", "v20.18.1", "v21.7.3", "v22.11.0"])
def test_an_old_node_is_refused_with_what_to_do(version: str, tmp_path: Path) -> None:
    result = check_with(version, tmp_path)
    assert result.returncode == 1
    assert f"found {version}" in result.stderr
    assert "Node.js 20.19+ or 22.12+" in result.stderr and "nodejs.org" in result.stderr


def test_no_node_at_all_is_refused(tmp_path: Path) -> None:
    result = check_with(None, tmp_path)
    assert result.returncode == 1 and "found no node on PATH" in result.stderr
