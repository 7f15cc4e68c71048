"""Where the models service's files and sockets are, under ``<state>/endpoints`` (root's,
0700): one place, read by the gateway, the manager, the balancer and the hub (which
points the proxy's fast lane at :func:`direct_socket`)."""

from __future__ import annotations

from pathlib import Path


def endpoints_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / "endpoints"


def manager_socket(state_dir: str | Path) -> Path:
    """The manager's root-only socket (the gateway relays the management API there)."""
    return endpoints_dir(state_dir) / "manager.sock"


def view_path(state_dir: str | Path) -> Path:
    """What the manager publishes for the gateway (:mod:`.view`)."""
    return endpoints_dir(state_dir) / "gateway.json"


def gateway_socket(state_dir: str | Path) -> Path:
    """The gateway's root-only socket: where HAProxy's fast lane hands what it does not
    answer itself (every request but an endpoint token's prediction)."""
    return endpoints_dir(state_dir) / "gateway.sock"


def meter_socket(state_dir: str | Path) -> Path:
    """The gateway's datagram socket: HAProxy logs each fast-lane answer there."""
    return endpoints_dir(state_dir) / "meter.sock"


def balancer_dir(state_dir: str | Path) -> Path:
    return endpoints_dir(state_dir) / "balancer"


def direct_socket(state_dir: str | Path) -> Path:
    """HAProxy's fast lane, the target of the proxy's ``/services/models/<name>/`` routes."""
    return balancer_dir(state_dir) / "direct.sock"
