"""Hooks for every test.

* A failed test on a hub reports the end of that hub's log.
* Nothing the session started may outlive it: at its end, processes it started that are
  still running (a hub's proxy and services, users' servers, kernels, TensorBoards) fail
  the session with their list, and are stopped (tests/processes.py says how they are
  recognised, never by name alone).
* Under ``make test`` (``PYTEST_REQUIRE_ALL=1``), a skip is a failure with its reason:
  a host that cannot enforce limits, a missing tool or environment must not end in a
  green run that left out the checks that matter.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests import ports, processes
from tests.hubtools import Hub

#: Set by the Makefile's ``test`` target: every test must run, none may skip.
REQUIRE_ALL = "PYTEST_REQUIRE_ALL"
#: How long the session's processes get to exit after its last teardown.
EXIT_GRACE = 15


def require_all() -> bool:
    return os.environ.get(REQUIRE_ALL, "") not in ("", "0")


def refused_skip(reason: str) -> str:
    return (f"skipped under `make test` ({REQUIRE_ALL}=1), where every check must run: "
            f"{reason}")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, pytest.TestReport]:
    """What the hub logged is often the only account of why a browser or API test
    failed on CI (a stop that hung, a spawn that failed): it is attached to the report.
    Under ``make test`` a skip becomes a failure that says what was skipped and why."""
    report: pytest.TestReport = yield
    hub = getattr(item, "funcargs", {}).get("hub")
    if report.failed and isinstance(hub, Hub):
        report.sections.append(("hub log (end)", hub.log_tail(12000)))
    if report.skipped and require_all() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = refused_skip(skip_reason(report))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, Any, pytest.CollectReport]:
    """A whole module skipped at import (``importorskip``, a module-level skip) fails
    under ``make test`` as a test's skip does."""
    report: pytest.CollectReport = yield
    if report.skipped and require_all():
        report.outcome = "failed"
        report.longrepr = refused_skip(skip_reason(report))
    return report


@pytest.fixture(autouse=True)
def umask_unchanged() -> Iterator[None]:
    """A test that leaves the process's umask changed (a library function calling
    ``os.umask``) makes every later test's files unreadable to the accounts they are made
    for: it fails, and the umask is put back."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    after = os.umask(before)
    assert after == before, f"this test changed the umask from {before:o} to {after:o}"


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running() -> Iterator[None]:
    """The first fixture set up, the last torn down: after every hub, server and
    kernel fixture has stopped what it started, nothing this session started may still
    run. CI once ended a green run with the proxies, sharing services and idle cullers of
    about ten test hubs running 40 minutes later."""
    mark = uuid.uuid4().hex
    os.environ[processes.MARK] = mark  # inherited by everything the tests start
    since = processes.clock()
    yield
    left = processes.wait_gone(
        lambda: processes.started_by(since, ports.handed_out(), mark), EXIT_GRACE)
    if left:
        listing = processes.describe(left)
        processes.kill(left)
        pytest.fail(f"the test session left {len(left)} processes running "
                    f"{EXIT_GRACE} s after its end (now stopped):\n{listing}", pytrace=False)
