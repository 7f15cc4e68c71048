"""What an endpoint is, and the pure decisions on it: names, versions, the traffic split.

An endpoint is a JSON document (:mod:`.store`)::

    {name, user, domain, created, live: N | None, canary: M | None, canary_percent: p,
     versions: [{version, holder, format, framework, image, size, replicas, source,
                 model_dir, status, reason, created,
                 replica_state: {replica-0: {attempt, restarts, state, reason}}}]}

``live`` serves ``100 - canary_percent`` % of the requests, ``canary`` (a newer version)
the rest; a version being rolled out is ``starting`` and takes no traffic until every
replica answers readiness. Version statuses: ``starting`` → ``serving`` → ``retired``
(stopped, its model kept for a rollback), or ``failed`` (never served).
"""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
#: Names the service's own routes use under /services/models/.
RESERVED = frozenset({"api", "oauth_callback", "static", "logout"})
REPLICA_NAME = "replica-{}"
MAX_REPLICAS = 16
TOKEN_NOTE_MAX = 100  # also the store's column
#: Tokens one endpoint keeps (each is in the gateway's view and HAProxy's map).
MAX_TOKENS = 100

STARTING, SERVING, RETIRED, FAILED = "starting", "serving", "retired", "failed"
#: What :func:`version_status` calls a serving version with no share any more.
DRAINING = "draining"
RUNS = (STARTING, SERVING)  # versions whose replicas run


class EndpointError(Exception):
    """A refusal: an HTTP status and a message that says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED:
        shown = repr(name)[:60]
        raise EndpointError(400, f"endpoint name {shown}: 1 to 40 lowercase letters, digits "
                                 "and '-', starting with a letter (not "
                                 f"{', '.join(sorted(RESERVED))})")
    return name


def check_percent(value: Any, what: str = "canary") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise EndpointError(400, f"{what}: a whole percentage from 0 to 100, not "
                                 f"{repr(value)[:40]}")
    return value


def check_replicas(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_REPLICAS:
        raise EndpointError(400, f"replicas: a whole number from 1 to {MAX_REPLICAS}, not "
                                 f"{repr(value)[:40]}")
    return value


def token_note(value: Any) -> str:
    """A token's note: what uses it, one line of printable text (≤ 100 characters)."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > TOKEN_NOTE_MAX or \
            not value.isprintable():
        raise EndpointError(400, f"note: one line of at most {TOKEN_NOTE_MAX} printable "
                                 f"characters (what uses the token), not {repr(value)[:40]}")
    return value.strip()


def replica_names(count: int) -> list[str]:
    return [REPLICA_NAME.format(i) for i in range(count)]


def version(endpoint: dict[str, Any], number: int | None) -> dict[str, Any] | None:
    for v in endpoint["versions"]:
        if v["version"] == number:
            return v
    return None


def shares(endpoint: dict[str, Any]) -> dict[int, int]:
    """Version → percent of the endpoint's requests (only serving versions)."""
    live, canary = endpoint.get("live"), endpoint.get("canary")
    if live is None:
        return {}
    if canary is None:
        return {live: 100}
    percent = int(endpoint.get("canary_percent") or 0)
    return {n: p for n, p in ((live, 100 - percent), (canary, percent)) if p}


def status(endpoint: dict[str, Any]) -> str:
    """ready (serving), updating (a version starting beside a serving one), starting,
    failed (nothing serves and nothing starts)."""
    states = {v["status"] for v in endpoint["versions"]}
    if endpoint.get("live") is not None:
        return "updating" if STARTING in states else "ready"
    return "starting" if STARTING in states else "failed"


def version_status(endpoint: dict[str, Any], v: dict[str, Any]) -> str:
    """A version's status as users read it: a serving version that no longer has a
    share (replaced, finishing its requests before it retires) is ``draining``."""
    if v["status"] == SERVING and v["version"] not in (endpoint["live"], endpoint["canary"]):
        return DRAINING
    return str(v["status"])


def previous(endpoint: dict[str, Any]) -> dict[str, Any] | None:
    """What a rollback returns to: the version that served before the live one (the
    newest entry of the endpoint's ``history`` retired or still draining, so rolling
    back twice goes two steps back); an endpoint stored before the history was kept: the
    newest retired version older than the live one."""
    live = endpoint["live"]
    before = live if live is not None else 10**9
    history = endpoint.get("history")
    if history is not None:
        for number in reversed(history):
            v = version(endpoint, number)
            if v is not None and number != before and \
                    version_status(endpoint, v) in (RETIRED, DRAINING):
                return v
        return None
    older = [v for v in endpoint["versions"] if v["version"] < before and
             v["status"] == RETIRED]
    return max(older, key=lambda v: v["version"]) if older else None


def make_live(endpoint: dict[str, Any], number: int, restored: bool = False) -> None:
    """Version ``number`` takes all the traffic; the one it replaces goes on the history
    (what a rollback returns to), unless this is a rollback's return (``restored``),
    which takes itself off the history instead."""
    history: list[int] = endpoint.setdefault("history", [])
    old = endpoint["live"]
    if restored:
        if number in history:
            history.reverse()
            history.remove(number)  # its newest entry
            history.reverse()
    elif old is not None and old != number:
        history.append(old)
        del history[:-50]  # a long-lived endpoint keeps its last 50 steps
    endpoint["live"], endpoint["canary"], endpoint["canary_percent"] = number, None, 0


def next_version(endpoint: dict[str, Any]) -> int:
    return max((v["version"] for v in endpoint["versions"]), default=0) + 1


def promote(endpoint: dict[str, Any], number: int) -> list[dict[str, Any]]:
    """Version ``number`` is ready: it serves, as the live version or as the canary it was
    deployed as; returns the versions that no longer have a share (to retire)."""
    v = version(endpoint, number)
    assert v is not None
    v["status"] = SERVING
    old = version(endpoint, endpoint["live"])
    percent = v.get("canary_percent")
    if old is None or percent in (None, 100) or old is v:
        make_live(endpoint, number, restored=bool(v.pop("restored", False)))
    else:
        endpoint["canary"], endpoint["canary_percent"] = number, percent
    return [x for x in endpoint["versions"] if x["status"] == SERVING and
            x["version"] not in (endpoint["live"], endpoint["canary"])]
