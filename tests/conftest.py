"""Hooks for every test: a failed test on a hub reports the end of that hub's log."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.hubtools import Hub


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, pytest.TestReport]:
    """What the hub logged is often the only account of why a browser or API test
    failed on CI (a stop that hung, a spawn that failed): it is attached to the report."""
    report: pytest.TestReport = yield
    hub = getattr(item, "funcargs", {}).get("hub")
    if report.failed and isinstance(hub, Hub):
        report.sections.append(("hub log (end)", hub.log_tail(12000)))
    return report
