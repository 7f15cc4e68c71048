"""Requests/s, p50/p99 latency and errors per endpoint version and replica, as the front
door saw them (:mod:`.frontdoor`): the last :data:`WINDOW` requests of each replica."""

from __future__ import annotations

import collections
import time
from typing import Any

WINDOW = 2000
RATE_SECONDS = 10.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Meter:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.samples: dict[tuple[str, int, str], collections.deque[tuple[float, float, int]]] \
            = {}
        self.totals: collections.Counter[tuple[str, int, str, str]] = collections.Counter()

    def record(self, endpoint: str, version: int, replica: str, seconds: float,
               status: int) -> None:
        key = (endpoint, version, replica)
        self.samples.setdefault(key, collections.deque(maxlen=WINDOW)).append(
            (self.clock(), seconds, status))
        self.totals[(*key, "requests")] += 1
        if status >= 500:
            self.totals[(*key, "errors")] += 1
        elif status >= 400:
            self.totals[(*key, "refused")] += 1

    def forget(self, endpoint: str) -> None:
        for key in [k for k in self.samples if k[0] == endpoint]:
            del self.samples[key]
        for total in [k for k in self.totals if k[0] == endpoint]:
            del self.totals[total]

    def _summary(self, rows: list[tuple[float, float, int]], keys: list[tuple[str, int, str]]
                 ) -> dict[str, Any]:
        now = self.clock()
        recent = sum(1 for t, _, _ in rows if now - t <= RATE_SECONDS)
        latencies = [s * 1000 for _, s, _ in rows]
        return {"requests": sum(self.totals[(*k, "requests")] for k in keys),
                "errors": sum(self.totals[(*k, "errors")] for k in keys),
                "refused": sum(self.totals[(*k, "refused")] for k in keys),
                "rps": round(recent / RATE_SECONDS, 2),
                "p50_ms": round(percentile(latencies, 0.50), 2),
                "p99_ms": round(percentile(latencies, 0.99), 2)}

    def summary(self, endpoint: str) -> dict[str, Any]:
        """``{versions: {"N": {requests, errors, refused, rps, p50_ms, p99_ms,
        replicas: {name: {...}}}}}``."""
        versions: dict[str, Any] = {}
        mine = sorted(k for k in self.samples if k[0] == endpoint)
        for number in sorted({k[1] for k in mine}):
            keys = [k for k in mine if k[1] == number]
            rows = [row for k in keys for row in self.samples[k]]
            versions[str(number)] = {
                **self._summary(rows, keys),
                "replicas": {k[2]: self._summary(list(self.samples[k]), [k]) for k in keys}}
        return {"endpoint": endpoint, "versions": versions}
