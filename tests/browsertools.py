"""Shared set-up of the Playwright tests: Debian's Chromium, its flags, and artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium on a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates unix users: run as root"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (apt-get install chromium)"),
]
