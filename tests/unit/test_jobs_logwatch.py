"""The log follower's wake-up (studiohub.jobs.logwatch): inotify while the service holds
few instances, the timer past :data:`MAX_INSTANCES` (root's instances are host-wide)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from studiohub.jobs import logwatch
from studiohub.jobs.logwatch import LogWatch


def test_past_the_cap_a_follower_waits_on_the_timer_and_a_closed_watch_frees_its_slot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logwatch, "MAX_INSTANCES", 1)
    log = tmp_path / "worker-0.log"
    log.write_text("")

    async def woken_after(watch: LogWatch) -> float:
        await watch.wait(0.01)  # the first wait sets up the watch
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.1, log.write_text, "more")
        await watch.wait(3)
        return time.monotonic() - started

    async def go() -> None:
        with LogWatch(log) as first:
            with LogWatch(log) as second:
                assert LogWatch.live == 1
                assert await woken_after(first) < 1  # inotify: woken by the write
                assert await woken_after(second) >= 2.9  # no instance: the timer
            assert LogWatch.live == 1
        assert LogWatch.live == 0
        with LogWatch(log) as third:
            assert LogWatch.live == 1 and await woken_after(third) < 1

    asyncio.run(go())
