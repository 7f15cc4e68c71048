"""A jobs hub that runs the framework environments the test suite builds.

test_jobs.py's :class:`JobsHub` (StudioHub's own config with the jobs service on), started
with ``STUDIOHUB_PREFIX`` = ``$STUDIOHUB_TEST_ENVS`` (default /var/tmp/studiohub-test-envs,
where tests/integration/test_frameworks.py builds pytorch, tensorflow, mxnet and base), so
the jobs service runs those environments; and with the service's poll interval chosen
(the tests' 0.2 s, or the production default for benchmarks). Used by
tests/integration/test_jobs_frameworks.py and benchmarks/training/run.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studiohub import contract
from studiohub.paths import paths
from tests.integration.test_jobs import JobsHub

ENVS_PREFIX = Path(os.environ.get("STUDIOHUB_TEST_ENVS", "/var/tmp/studiohub-test-envs"))


def env_python(image: str) -> Path:
    """An image's interpreter in the test environments."""
    return ENVS_PREFIX / "envs" / image / "bin" / "python"


@dataclass
class FrameworkHub(JobsHub):
    """A :class:`JobsHub` whose jobs run the test environments."""

    poll_interval: float = 0.2

    def write_config(self) -> Path:
        jobs: dict[str, Any] = self.settings.get("jobs", {})
        self.settings = {**self.settings, "jobs": {**jobs, "poll_interval": self.poll_interval}}
        return super().write_config()

    def start(self, timeout: float = 120) -> None:
        with pytest.MonkeyPatch.context() as mp:
            # The hub finds its proxy under its prefix: keep finding the installed one.
            proxy = paths().prefix / "npm" / "node_modules" / ".bin"
            mp.setenv("PATH", f"{proxy}{os.pathsep}{os.environ['PATH']}")
            mp.setenv(contract.PREFIX, str(ENVS_PREFIX))
            super().start(timeout)
