"""Where the running hub's own API answers, recorded by ``studiohub up`` for the CLI.

``studiohub reload`` used to derive the hub's port from ``config.yaml`` and its own
environment, so a hub started with ``STUDIOHUB_PORT`` (or ``--port``) was not found from
a shell without that variable. ``up`` writes the URL it actually serves on beside its pid
records (``state/run/hub-api-url``, readable by the hub's account only, as they are), and
the CLI prefers it; without a record (a hub started by an older StudioHub) it derives.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The record's name in ``state/run`` (not ``*.pid``: :mod:`studiohub.pidrecords` skips it).
RECORD = "hub-api-url"


def derived(settings: dict[str, Any]) -> str:
    """The hub's own API, beside the proxy (``configurer.update_hub``: port + 81)."""
    base = settings["base_url"].rstrip("/")
    return f"http://127.0.0.1:{int(settings['port']) + 81}{base}/hub/api"


def _path(settings: dict[str, Any]) -> Path:
    return Path(settings["state_dir"]) / "run" / RECORD


def record(settings: dict[str, Any]) -> None:
    """Record the API URL of the hub starting with ``settings`` (mode 0600, no symlink)."""
    path = _path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(derived(settings) + "\n")
    tmp.replace(path)


def api_url(settings: dict[str, Any]) -> str:
    """The running hub's API as ``up`` recorded it, else derived from ``settings``."""
    try:
        url = _path(settings).read_text().strip()
    except OSError:
        return derived(settings)
    return url if url.startswith("http://127.0.0.1:") else derived(settings)
