"""tests/conftest.py's session rules, run on a small suite in a pytest of its own:
under ``make test`` (PYTEST_REQUIRE_ALL=1) a skip fails with its reason; a process a
test leaves running fails the session and is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """\
from tests.conftest import (  # noqa: F401
    nothing_left_running, pytest_make_collect_report, pytest_runtest_makereport)
"""


def run_suite(tmp_path: Path, files: dict[str, str], **env: str
              ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTEST_REQUIRE_ALL", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-rs", "-o", "asyncio_default_fixture_loop_scope=function",
                           str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**clean, "PYTHONPATH": str(ROOT), **env})


SKIPS = {
    "test_skips.py": "import pytest\n\ndef test_host():\n    pytest.skip('no cgroup v2 here')\n"
                     "\ndef test_runs():\n    pass\n",
    "test_module_skip.py": "import pytest\npytest.importorskip('no_such_module_xyz')\n",
}


def test_a_skip_fails_under_make_test(tmp_path: Path) -> None:
    result = run_suite(tmp_path, {"test_skips.py": SKIPS["test_skips.py"]},
                       PYTEST_REQUIRE_ALL="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped under `make test` (PYTEST_REQUIRE_ALL=1), where every check must run: " \
           "no cgroup v2 here" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("1 failed, 1 passed")


def test_a_module_skipped_at_import_fails_under_make_test(tmp_path: Path) -> None:
    """(pytest then stops at the collection error: the run fails before any test.)"""
    result = run_suite(tmp_path, {"test_module_skip.py": SKIPS["test_module_skip.py"]},
                       PYTEST_REQUIRE_ALL="1")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "where every check must run: could not import 'no_such_module_xyz'" \
           in result.stdout


def test_a_skip_is_a_skip_otherwise(tmp_path: Path) -> None:
    result = run_suite(tmp_path, SKIPS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped" in result.stdout


def test_a_process_left_running_fails_the_session_and_is_stopped(tmp_path: Path) -> None:
    leaky = ("import subprocess, sys\n\ndef test_leaks():\n    child = subprocess.Popen("
             "[sys.executable, '-c', 'import time; time.sleep(120)'])\n"
             "    open('pid', 'w').write(str(child.pid))\n")
    result = run_suite(tmp_path, {"test_leaky.py": leaky})
    assert result.returncode == 1, result.stdout + result.stderr
    pid = int((tmp_path / "pid").read_text())
    assert f"pid {pid} (user " in result.stdout
    assert "the test session left 1 processes running" in result.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
