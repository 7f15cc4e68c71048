"""What this server runs as: image, size and limits, as the spawner set them.

The spawner exports them through :mod:`studiohub.contract` (``read_server_env``); a
server started some other way reports ``None`` for each, and an unreadable value reads
as ``None``, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studiohub import contract

from . import hub


def make_info(environ: Mapping[str, str], version: str) -> dict[str, Any]:
    """The body of ``GET studiohub/api/v1/info``."""
    server = contract.read_server_env(environ)
    return {
        "version": version,
        "image": server.image,
        "size": server.size,
        "switching": hub.switching(environ),
        "limits": {"memory": server.memory, "cpu": server.cpus},
    }
