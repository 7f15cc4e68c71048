"""What the gateway knows of the endpoints: a file the manager writes on every change.

The gateway (:mod:`.gateway`, the data plane) and the manager (:mod:`.service`) are two
processes, so that predictions go on while the manager restarts. The manager writes
``<state>/endpoints/gateway.json`` (root's, 0600, replaced whole) after each change::

    {"endpoints": {name: {"user", "domain", "serving": [versions]}},
     "tokens": {sha256 of a token: endpoint name}}

and the gateway re-reads it when its modification time changes (one ``stat`` a
request), so a revoked token or a deleted endpoint is refused from the next request.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from .store import digest

TOKEN_PREFIX = "shm_"


def write_view(path: Path, endpoints: Mapping[str, Mapping[str, Any]],
               tokens: Mapping[str, str]) -> None:
    data = {"endpoints": {name: {"user": e["user"], "domain": e["domain"],
                                 "created": e["created"],
                                 "serving": sorted(v["version"] for v in e["versions"]
                                                   if v["status"] == "serving")}
                          for name, e in endpoints.items()},
            "tokens": dict(tokens)}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class View:
    """The gateway's reading of that file (empty until the manager wrote it)."""

    def __init__(self, path: Path, catalog: Callable[[], Catalog]) -> None:
        self.path, self.catalog = path, catalog
        self._stamp: tuple[int, int] | None = None
        self._data: dict[str, Any] = {"endpoints": {}, "tokens": {}}
        #: Counts the file's changes: the manager writes it after each change of the
        #: balancer's routes, so kept connections to the balancer's previous worker are
        #: dropped when it moves (:mod:`.frontdoor`).
        self.generation = 0

    def data(self) -> dict[str, Any]:
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino)
            if stamp != self._stamp:
                with contextlib.suppress(ValueError):
                    self._data = json.loads(self.path.read_text())
                    self._stamp = stamp
                    self.generation += 1
        return self._data

    def endpoint(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.data()["endpoints"].get(name)
        return found

    def meter_key(self, name: str) -> str:
        """Whose figures these are: the name *and* when it was created, so a name deleted
        and taken again (by anyone) starts with no figures of the one before."""
        endpoint = self.endpoint(name) or {}
        return f"{name}@{endpoint.get('created', '')}"

    def owner(self, name: str) -> str | None:
        endpoint = self.endpoint(name)
        return endpoint["user"] if endpoint else None

    def may_call(self, name: str, user: str, groups: tuple[str, ...], admin: bool) -> bool:
        """The owner, an admin, or a user of the endpoint's domain."""
        endpoint = self.endpoint(name)
        if endpoint is None:
            return False
        if admin or user == endpoint["user"]:
            return True
        return endpoint["domain"] in {d.id for d in self.catalog().domains_for(groups)}

    def token_endpoint(self, token: str) -> str | None:
        """The endpoint an endpoint token opens (None: not one of ours)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        found: str | None = self.data()["tokens"].get(digest(token))
        return found

    def versions_serving(self, name: str) -> list[int]:
        endpoint = self.endpoint(name)
        return list(endpoint["serving"]) if endpoint else []
