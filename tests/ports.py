"""Free TCP ports for the servers the tests start, outside the kernel's ephemeral range.

A port found free by binding it is released before the server that gets it binds it.
If it lies in ``net.ipv4.ip_local_port_range`` (32768-60999 by default), any outgoing
connection made in between (the tests' own HTTP clients, the hub talking to its proxy,
kernels' ZMQ sockets) may be given it as its local port, and the server then fails with
EADDRINUSE. CI lost a run to exactly that. Ports below the range are only ever taken by
an explicit bind, and this process never hands out the same one twice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 10000
_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatically chosen local ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(*offsets: int) -> int:
    """A port P, outside the ephemeral range, with P + each offset also free."""
    low, _ = ephemeral_range()
    top = max(low - 1 - max(offsets, default=0), _LOWEST + 1000)
    for _ in range(500):
        port = random.randint(_LOWEST, top)
        wanted = [port, *(port + o for o in offsets)]
        if _handed_out.isdisjoint(wanted) and all(_bindable(p) for p in wanted):
            _handed_out.update(wanted)
            return port
    raise RuntimeError(f"no free port between {_LOWEST} and {top}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def handed_out() -> frozenset[int]:
    """Every port this process handed out: what its servers listen on (tests/processes.py
    recognises a session's leftovers by them)."""
    return frozenset(_handed_out)
