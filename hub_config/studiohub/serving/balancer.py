"""The load balancer in front of model endpoints' replicas: HAProxy from the distribution.

The models service does not balance requests itself: it forwards each authenticated
request to one HAProxy (a root-only unix socket) with the header ``X-Studiohub-Backend``
naming the backend, and HAProxy spreads it over the replicas with the canary weights,
health checks and one retry. Two halves:

* :func:`haproxy_config` is pure: the configuration for a :class:`BalancerState` (every
  endpoint's serving versions and their replicas' unix sockets), validated strictly, so
  that a bogus name or path is refused here rather than half-applied.
* :class:`Balancer` runs HAProxy in master-worker mode, detached in a session of its own
  so that it keeps serving while the models service or the hub restarts (a restarted
  service :meth:`~Balancer.adopt`\\ s it from its pid record), and reconfigures it
  without dropping a request: the new configuration is checked first, then the master
  re-executes and hands the listening sockets to the new worker (``expose-fd
  listeners``) while the old worker finishes what it was answering. A change of weights
  alone goes through the runtime API, with no reload at all.

**The fast lane** (:class:`FastLane`): HAProxy also listens on a root-only socket that the
hub's proxy targets for ``/services/models/<name>/`` while ``<name>`` is routed here.
A prediction carrying an endpoint token of *that* endpoint (its SHA-256 in a map file that
:meth:`Balancer.set_tokens` keeps, at once, in every running worker) goes straight to the
endpoint's backend, with no Python in between, and is logged as one datagram to the
gateway's meter; everything else (a login cookie or hub token, an unknown token,
a version-pinned path, a chunked or too large body) goes on to the gateway's socket,
which authenticates and answers as before.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import pidrecords

#: The request header that names the backend (an endpoint, or ``<endpoint>-v<N>``).
BACKEND_HEADER = "X-Studiohub-Backend"
#: The response header naming the server that answered (``v<N>-<replica>``), so the
#: front door can count latency and errors per version and replica.
REPLICA_HEADER = "X-Studiohub-Replica"
#: What a replica answers 200 on once its model is loaded and warmed up.
READY_PATH = "/v2/health/ready"
#: The largest body the fast lane passes itself: it holds it whole in one buffer
#: (``tune.bufsize``) before any rule runs; larger ones go to the gateway.
LANE_MAX_BODY = 32 * 1024
#: HAProxy's largest server weight.
MAX_WEIGHT = 256
#: haproxy.log is set aside as haproxy.log.1 at a start when it has grown past this.
LOG_LIMIT = 4 << 20
#: The pid record's name (``<state dir>/haproxy.pid``, :mod:`studiohub.pidrecords`).
RECORD = "haproxy"

ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
REPLICA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Socket paths are written into the configuration unquoted: no space, quote, ``#``,
#: backslash or control character can reach it.
SOCKET_PATH = re.compile(r"^/[A-Za-z0-9._/@+=,-]+$")
#: sun_path holds 108 bytes; HAProxy binds ``<path>.<pid>.tmp`` first, then renames.
MAX_SOCKET_PATH = 90
#: The frontend's socket in the balancer's state folder (the gateway connects there).
FRONTEND = "frontend.sock"
#: The fast lane's token map (``<sha256 hex> <endpoint>`` per line) in that folder.
TOKENS_MAP = "tokens.map"
#: The service's public prefix as the proxy passes it on (``/services/models/``).
PREFIX_PATH = re.compile(r"^/(?:[A-Za-z0-9_-]+/)+$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class InvalidState(ValueError):
    """A routing state that must not reach HAProxy (bad name, path or weights)."""


class BalancerError(RuntimeError):
    """HAProxy refused a configuration, or did not start or reload."""


@dataclass(frozen=True)
class VersionRoute:
    """One serving version: its share of the endpoint's traffic and its replicas as
    ``(name, unix socket path)`` pairs."""

    version: int
    weight_percent: float
    replicas: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas",
                           tuple((str(n), str(p)) for n, p in self.replicas))


@dataclass(frozen=True)
class EndpointRoute:
    name: str
    versions: Sequence[VersionRoute] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", tuple(self.versions))


@dataclass(frozen=True)
class BalancerState:
    """Everything HAProxy routes: the endpoints, in any order."""

    endpoints: Sequence[EndpointRoute] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))

    def to_json(self) -> str:
        return json.dumps({"endpoints": [
            {"name": e.name, "versions": [
                {"version": v.version, "weight_percent": v.weight_percent,
                 "replicas": [list(r) for r in v.replicas]} for v in e.versions]}
            for e in self.endpoints]})

    @classmethod
    def from_json(cls, text: str) -> BalancerState:
        data = json.loads(text)
        return cls(tuple(
            EndpointRoute(e["name"], tuple(
                VersionRoute(int(v["version"]), float(v["weight_percent"]),
                             tuple((str(n), str(p)) for n, p in v["replicas"]))
                for v in e["versions"]))
            for e in data["endpoints"]))


@dataclass(frozen=True)
class FastLane:
    """HAProxy's frontend for the hub's proxy (see the module's docstring): where it
    listens (``direct``), where it hands the rest (the gateway's ``gateway`` socket),
    where it logs its own answers (the gateway's ``meter`` datagram socket), the token
    map, the service's public ``prefix`` and the largest body it passes itself (at most
    :data:`LANE_MAX_BODY`: larger ones go to the gateway, which reads them whole)."""

    direct: str
    gateway: str
    meter: str
    tokens_map: str
    prefix: str = "/services/models/"
    max_body_bytes: int = LANE_MAX_BODY
    #: Seconds a request may take to arrive, headers and body (then 408).
    request_timeout: int = 10


def server_name(version: int, replica: str) -> str:
    """The HAProxy server of one replica (and the value of ``X-Studiohub-Replica``)."""
    return f"v{version}-{replica}"


def parse_server_name(name: str | None) -> tuple[int, str] | None:
    """``v2-replica-0`` → ``(2, "replica-0")``; None for anything else (an answer
    HAProxy made itself, a 503, carries no server name)."""
    version, _, replica = (name or "").partition("-")
    if not version.startswith("v") or not version[1:].isdigit() or len(version) > 10 \
            or not REPLICA_NAME.match(replica):
        return None
    return int(version[1:]), replica


def version_backend(endpoint: str, version: int) -> str:
    """The backend of version-pinned requests (``/versions/<n>/...``): ``<endpoint>.v<n>``
    (a dot, which endpoint names never have, so no endpoint's name is another's
    version backend)."""
    return f"{endpoint}.v{version}"


def backend_name(endpoint: str, version: int | None = None) -> str:
    """The ``X-Studiohub-Backend`` value: the endpoint (weighted over its versions), or
    one version of it."""
    return endpoint if version is None else version_backend(endpoint, version)


def backend_names(state: BalancerState) -> list[str]:
    """Every backend the header may name."""
    names = []
    for endpoint in state.endpoints:
        names.append(endpoint.name)
        names.extend(version_backend(endpoint.name, v.version) for v in endpoint.versions)
    return names


# --- validation ---------------------------------------------------------------------


def check_socket_path(path: str | Path, what: str) -> str:
    text = str(path)
    if not SOCKET_PATH.match(text) or "/../" in text or text.endswith("/.."):
        raise InvalidState(f"{what}: {text!r} is not an absolute path of letters, digits "
                           "and ._/@+=,- (no spaces, quotes or control characters)")
    if len(text) > MAX_SOCKET_PATH:
        raise InvalidState(f"{what}: {text!r} is longer than {MAX_SOCKET_PATH} characters "
                           "(a unix socket's path holds 108 bytes)")
    return text


def validate(state: BalancerState) -> None:
    """Raise :class:`InvalidState` with the first problem found, naming where it is."""
    seen: set[str] = set()
    for endpoint in state.endpoints:
        if not isinstance(endpoint.name, str) or not ENDPOINT_NAME.match(endpoint.name):
            raise InvalidState(f"endpoint name {endpoint.name!r} does not match "
                               f"{ENDPOINT_NAME.pattern}")
        _validate_versions(endpoint)
    for name in backend_names(state):
        if name in seen:
            raise InvalidState(f"backend name {name!r} is used twice (a repeated endpoint)")
        seen.add(name)


def _validate_versions(endpoint: EndpointRoute) -> None:
    where = f"endpoint {endpoint.name}"
    versions: set[int] = set()
    total = 0.0
    for route in endpoint.versions:
        if isinstance(route.version, bool) or not isinstance(route.version, int) \
                or route.version < 1:
            raise InvalidState(f"{where}: version {route.version!r} is not a positive integer")
        if route.version in versions:
            raise InvalidState(f"{where}: version {route.version} is listed twice")
        versions.add(route.version)
        share = route.weight_percent
        if not isinstance(share, int | float) or not 0 <= share <= 100:
            raise InvalidState(f"{where} version {route.version}: weight_percent {share!r} "
                               "is not between 0 and 100")
        total += share
        names = [n for n, _ in route.replicas]
        for name, path in route.replicas:
            if not REPLICA_NAME.match(name):
                raise InvalidState(f"{where} version {route.version}: replica name {name!r} "
                                   f"does not match {REPLICA_NAME.pattern}")
            check_socket_path(path, f"{where} version {route.version} replica {name}")
        if len(set(names)) != len(names):
            raise InvalidState(f"{where} version {route.version}: a replica name is repeated")
    if total > 100 + 1e-6:
        raise InvalidState(f"{where}: the versions' weight_percent add up to {total:g}, "
                           "more than 100")


# --- weights ------------------------------------------------------------------------


def version_weights(versions: Sequence[VersionRoute]) -> dict[int, int]:
    """Each version's weight: the sum of its replicas' weights, in proportion to its
    ``weight_percent``, at the largest scale where no replica's weight passes 256 (so
    the rounding costs at most 0.2 points of share; a version with any traffic gets at
    least 1).

    Shares are relative to what the versions that have replicas ask together: if they
    ask less than 100 % (a version with its share has no replica left), the others
    share all the traffic in proportion rather than the endpoint answering 503."""
    weights = {v.version: 0 for v in versions}
    live = [v for v in versions if v.weight_percent > 0 and v.replicas]
    if not live:
        return weights
    asked = sum(v.weight_percent for v in live)
    scale = min(MAX_WEIGHT * len(v.replicas) * asked / v.weight_percent for v in live)
    for v in live:
        weights[v.version] = min(MAX_WEIGHT * len(v.replicas),
                                 max(1, round(v.weight_percent / asked * scale)))
    return weights


def server_weights(endpoint: EndpointRoute) -> dict[str, int]:
    """Server name → weight in the endpoint's backend: each version's weight spread
    evenly over its replicas (the first ones get 1 more when it does not divide; a
    1 % canary with 8 replicas may leave some at 0, which keeps the split exact)."""
    totals = version_weights(endpoint.versions)
    weights = {}
    for v in endpoint.versions:
        count = len(v.replicas)
        for i, (name, _) in enumerate(v.replicas):
            weights[server_name(v.version, name)] = \
                totals[v.version] // count + (1 if i < totals[v.version] % count else 0)
    return weights


def shares(endpoint: EndpointRoute) -> dict[int, float]:
    """Version → the percentage of the endpoint's requests its weights give it."""
    totals = version_weights(endpoint.versions)
    whole = sum(totals.values())
    return {v: 100 * w / whole if whole else 0.0 for v, w in totals.items()}


# --- configuration ------------------------------------------------------------------

_GLOBAL = """\
global
    master-worker
    nbthread {nbthread}
    # The runtime API (weights, stats); expose-fd hands the listening sockets to the
    # next worker on a reload, so no connection is refused meanwhile.
    stats socket {runtime} mode 600 level admin expose-fd listeners
    stats timeout 10s
    # An old worker still finishing long requests after a reload ends after this.
    hard-stop-after 130s
    # Requests with up to ~31 KB of headers (the hub's proxy passes up to 16 KB), and
    # room beside them for the fast lane's whole body (LANE_MAX_BODY).
    tune.bufsize 65536
    # No log: the models service times and counts requests itself (X-Studiohub-Replica).

defaults
    mode http
    option http-keep-alive
    # After a reload, idle keep-alive connections to the old worker stay open until
    # their next request, which is answered (with Connection: close) instead of racing
    # a close: the models service's pooled connections never see a reset.
    option idle-close-on-response
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    timeout http-keep-alive 30s
    timeout queue 30s
    timeout check 2s
    # A refused connection (a replica just died) or an empty answer (it died while
    # answering) is retried once, on another server.
    retries 1
    option redispatch
    retry-on conn-failure empty-response
"""

#: HAProxy's own error answers, in the shape of the replicas' (``{"error": ...}``).
_ERRORS = {408: "the request did not arrive in time: send its whole body at once",
           502: "the replica failed to answer", 503: "no replica of this endpoint is ready",
           504: "the replica did not answer in time"}

_FRONTEND = """\
frontend _models
    bind unix@{frontend} mode 600
    http-request set-var(txn.backend) req.hdr({header})
    http-request del-header {header}
"""

_BACKEND = """\
backend {name}
    balance roundrobin
    option httpchk
    http-check send meth GET uri {ready} ver HTTP/1.1 hdr Host replica
    http-check expect status 200
    # A dead replica leaves rotation on its first refused connection (layer 4: a 500
    # from a model's exception on one input must not take a healthy replica out).
    default-server check inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 \
observe layer4 error-limit 1 on-error mark-down maxconn 64
    http-response set-header {replica_header} %[srv_name]
"""

_PINNED = """\
backend {name}
    balance roundrobin
    http-response set-header {replica_header} %[srv_name]
"""

_NOT_FOUND = ("http-request return status 404 content-type application/json "
              "string '{\"error\": \"no such endpoint\"}'")
#: Names per ``acl`` line (HAProxy takes at most 64 words a line).
_ACL_CHUNK = 32


def haproxy_config(state: BalancerState, *, frontend: str | Path, runtime: str | Path,
                   nbthread: int = 2, lane: FastLane | None = None) -> str:
    """HAProxy's configuration for ``state``: the frontend on the unix socket
    ``frontend`` choosing the backend named by ``X-Studiohub-Backend`` (404 JSON for any
    other name), per endpoint a backend over all its versions' replicas weighted to
    their shares, and per version a pinned backend; with ``lane``, the fast lane's
    frontend and the gateway's backend. Raises :class:`InvalidState`."""
    validate(state)
    frontend = check_socket_path(frontend, "frontend socket")
    runtime = check_socket_path(runtime, "runtime socket")
    if not 1 <= nbthread <= 64:
        raise InvalidState(f"nbthread {nbthread} is not between 1 and 64")
    errors = "".join(f"    http-error status {code} content-type application/json "
                     f"string '{json.dumps({'error': text})}'\n"
                     for code, text in _ERRORS.items())
    parts = [_GLOBAL.format(nbthread=nbthread, runtime=runtime) + errors,
             _frontend(state, frontend)]
    if lane is not None:
        parts.append(_fast_lane(lane, sorted(e.name for e in state.endpoints)))
    for endpoint in sorted(state.endpoints, key=lambda e: e.name):
        parts.append(_endpoint_backends(endpoint))
    return "\n".join(parts)


def _frontend(state: BalancerState, frontend: str) -> str:
    text = _FRONTEND.format(frontend=frontend, header=BACKEND_HEADER.lower())
    names = sorted(backend_names(state))
    if not names:
        return text + f"    {_NOT_FOUND}\n"
    for i in range(0, len(names), _ACL_CHUNK):
        text += f"    acl known var(txn.backend) -m str {' '.join(names[i:i + _ACL_CHUNK])}\n"
    return text + f"    {_NOT_FOUND} unless known\n    use_backend %[var(txn.backend)]\n"


_FAST_LANE = """\
frontend _direct
    bind unix@{direct} mode 600
    log unix@{meter} format raw local0
    log-format "%b %s %ST %Ta"
    # The rules below run once the whole body is here (at most {request_timeout}s, then
    # 408): a slow upload holds no replica's slot, and a token revoked while it arrives
    # is refused. Bodies over max_body (which a buffer may not hold) go to the gateway.
    option http-buffer-request
    timeout http-request {request_timeout}s
    http-request set-var(txn.ep) path,field({field},/)
    acl data_plane path -m reg ^{prefix}[a-z][a-z0-9-]{{0,39}}/v[12](/|$)
    acl pinned path -m sub /versions/
    acl by_token req.fhdr(authorization) -m reg -i ^(bearer|token)\\x20+shm_[A-Za-z0-9_-]+$
    http-request set-var(txn.token_of) "req.fhdr(authorization),word(2,\\x20),sha2(256),\
hex,lower,map({tokens})" if data_plane !pinned by_token
    acl token_opens var(txn.token_of),strcmp(txn.ep) eq 0
    acl chunked req.hdr_cnt(transfer-encoding) gt 0
    acl too_big req.hdr_val(content-length) gt {max_body}
    # %2F would let the replica read a pinned path the lane did not see as one.
    acl encoded path -m sub -i %2f
    # Predictions and reads only; the gateway answers other methods (405).
    acl lane_method method GET POST
{known}\
    http-request set-var(txn.fast) bool(true) if data_plane !pinned token_opens routed \
!chunked !too_big !encoded lane_method
    acl fast var(txn.fast) -m bool
    # The meter counts predictions: metadata and health reads are not logged.
    http-request set-log-level silent if !fast || METH_GET
    http-request set-path "%[path,regsub(^{prefix}[a-z0-9-]+,)]" if fast
    http-request del-header authorization if fast
    http-request del-header cookie if fast
    http-response set-header {version_header} "%[srv_name,field(1,-),regsub(^v,)]" if fast
    http-response del-header {replica_header} if fast
    http-response set-header X-Content-Type-Options nosniff if fast
    http-response set-header Cache-Control no-store if fast
    http-response set-header Content-Security-Policy "default-src 'none'; \
frame-ancestors 'none'" if fast
    use_backend %[var(txn.ep)] if fast
    default_backend _gateway

backend _gateway
    http-error status 503 content-type application/json string \
'{{"error": "the models service is not answering (restarting?): try again in a few seconds"}}'
    server gateway unix@{gateway}
"""


def _fast_lane(lane: FastLane, names: Sequence[str]) -> str:
    """The fast lane's frontend (see the module's docstring) for the routed ``names``."""
    direct = check_socket_path(lane.direct, "fast lane socket")
    gateway = check_socket_path(lane.gateway, "gateway socket")
    meter = check_socket_path(lane.meter, "meter socket")
    tokens = str(lane.tokens_map)
    if not SOCKET_PATH.match(tokens):
        raise InvalidState(f"token map {tokens!r}: not a plain absolute path")
    if not PREFIX_PATH.match(lane.prefix):
        raise InvalidState(f"prefix {lane.prefix!r} is not a URL path like /services/models/")
    if not isinstance(lane.max_body_bytes, int) or \
            not 1 <= lane.max_body_bytes <= LANE_MAX_BODY:
        raise InvalidState(f"max_body_bytes {lane.max_body_bytes!r} is not from 1 to "
                           f"{LANE_MAX_BODY}")
    if not isinstance(lane.request_timeout, int) or not 1 <= lane.request_timeout <= 120:
        raise InvalidState(f"request_timeout {lane.request_timeout!r} is not 1 to 120 s")
    known = "".join(f"    acl routed var(txn.ep) -m str {' '.join(names[i:i + _ACL_CHUNK])}\n"
                    for i in range(0, len(names), _ACL_CHUNK)) or \
        "    acl routed always_false\n"
    return _FAST_LANE.format(
        direct=direct, gateway=gateway, meter=meter, tokens=tokens, prefix=lane.prefix,
        field=lane.prefix.count("/") + 1, max_body=lane.max_body_bytes, known=known,
        request_timeout=lane.request_timeout,
        version_header="X-Studiohub-Version", replica_header=REPLICA_HEADER)


def _endpoint_backends(endpoint: EndpointRoute) -> str:
    weights = server_weights(endpoint)
    versions = sorted(endpoint.versions, key=lambda v: v.version)
    text = _BACKEND.format(name=endpoint.name, ready=READY_PATH, replica_header=REPLICA_HEADER)
    for route in versions:
        for name, path in route.replicas:
            server = server_name(route.version, name)
            text += f"    server {server} unix@{path} weight {weights[server]}\n"
    for route in versions:
        text += "\n" + _PINNED.format(name=version_backend(endpoint.name, route.version),
                                      replica_header=REPLICA_HEADER)
        for name, path in route.replicas:
            server = server_name(route.version, name)
            # Tracks the health of the same replica in the endpoint's backend: one
            # health check per replica, not one per backend.
            text += f"    server {server} unix@{path} track {endpoint.name}/{server}\n"
    return text


def find_haproxy() -> str:
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def check_config(text: str, haproxy: str | None = None) -> None:
    """Have HAProxy itself check ``text`` (``haproxy -c``); :class:`BalancerError`
    with its alerts if it refuses it."""
    path = _temp_file(Path(tempfile.gettempdir()), "studiohub-haproxy-check-", text)
    try:
        _check_file(Path(path), haproxy or find_haproxy())
    finally:
        os.unlink(path)


def _check_file(path: Path, haproxy: str) -> None:
    done = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).replace(str(path), "haproxy.cfg")
        alerts = [re.sub(r"^\[ALERT\]\s*\(\d+\) : (config : )?", "", line.strip())
                  for line in output.splitlines() if "[ALERT]" in line]
        raise BalancerError("HAProxy refused the configuration: "
                            + " | ".join(alerts or output.strip().splitlines()[-3:]))


def _temp_file(directory: Path, prefix: str, text: str) -> str:
    """A new file (0600) holding ``text``, synced to disk."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".cfg", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return path


# --- stats --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStats:
    """One server of one backend, from ``show stat`` (counters since the current worker
    started: a reload starts them again)."""

    backend: str
    server: str
    status: str  # UP, DOWN, MAINT, "UP 1/2" (going down), "no check" ...
    weight: int
    current_sessions: int
    total_sessions: int
    responses: Mapping[str, int] = field(default_factory=dict)  # 1xx..5xx, other
    connection_errors: int = 0
    response_errors: int = 0
    retries: int = 0
    redispatches: int = 0
    check: str = ""

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")

    @property
    def requests(self) -> int:
        return sum(self.responses.values())

    @property
    def version(self) -> int | None:
        where = parse_server_name(self.server)
        return where[0] if where else None

    @property
    def replica(self) -> str | None:
        where = parse_server_name(self.server)
        return where[1] if where else None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse_stats(csv_text: str) -> list[ServerStats]:
    """The servers in ``show stat``'s CSV (frontends and backends' totals left out)."""
    reader = csv.DictReader(io.StringIO(csv_text.lstrip("# ")))
    servers = []
    for row in reader:
        if not row.get("svname") or row["svname"] in ("FRONTEND", "BACKEND"):
            continue
        servers.append(ServerStats(
            backend=row["pxname"], server=row["svname"], status=row.get("status", ""),
            weight=_int(row.get("uweight") or row.get("weight")),
            current_sessions=_int(row.get("scur")),
            total_sessions=_int(row.get("stot")),
            responses={k.removeprefix("hrsp_"): _int(row.get(k)) for k in
                       ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
                        "hrsp_other")},
            connection_errors=_int(row.get("econ")), response_errors=_int(row.get("eresp")),
            retries=_int(row.get("wretr")), redispatches=_int(row.get("wredis")),
            check=row.get("check_status", "") or ""))
    return servers


# --- the process --------------------------------------------------------------------


def _command(path: Path, command: str, timeout: float = 5.0) -> str:
    """One command on an HAProxy CLI socket (master or runtime); its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@dataclass(frozen=True)
class _Procs:
    reloads: int
    failed: int
    workers: tuple[int, ...]
    #: Workers of earlier configurations still finishing (or holding idle) connections.
    old: tuple[int, ...] = ()

    @property
    def every(self) -> tuple[int, ...]:
        """Every worker, the current ones and the old."""
        return (*self.workers, *self.old)


def _parse_show_proc(text: str) -> _Procs:
    reloads = failed = 0
    workers: list[int] = []
    old: list[int] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").split()[0] if line.strip("# ") else ""
            continue
        words = line.split()
        if len(words) < 3 or not words[0].isdigit():
            continue
        if words[1] == "master":
            reloads = _int(words[2])
            found = re.search(r"failed: (\d+)", line)
            failed = int(found.group(1)) if found else 0
        elif words[1] == "worker" and section == "workers":
            workers.append(int(words[0]))
        elif words[1] == "worker" and section == "old":
            old.append(int(words[0]))
    return _Procs(reloads, failed, tuple(workers), tuple(old))


def _topology(state: BalancerState) -> Any:
    """The state without its weights: what a reload is needed to change."""
    return sorted((e.name, sorted((v.version, tuple(sorted(v.replicas))) for v in e.versions))
                  for e in state.endpoints)


class Balancer:
    """One HAProxy (master and worker) with its files in ``state_dir`` (root, 0700):
    ``haproxy.cfg``, the applied ``state.json``, the sockets, ``haproxy.log`` (the
    master's and worker's alerts: servers going down and up) and the pid record."""

    def __init__(self, state_dir: str | Path, *, socket_path: str | Path | None = None,
                 haproxy: str | None = None, nbthread: int = 2,
                 lane: FastLane | None = None) -> None:
        self.state_dir = Path(state_dir)
        #: The fast lane (None: every request comes through the gateway).
        self.lane = lane
        #: Where the models service sends requests (root only, 0600).
        self.socket = Path(socket_path) if socket_path else self.state_dir / FRONTEND
        self.frontend_socket = str(self.socket)
        self.runtime_socket = self.state_dir / "runtime.sock"
        self.master_socket = self.state_dir / "master.sock"
        self.config_path = self.state_dir / "haproxy.cfg"
        self.state_path = self.state_dir / "state.json"
        self.log_path = self.state_dir / "haproxy.log"
        self.haproxy = haproxy or find_haproxy()
        self.nbthread = nbthread
        #: set_tokens is called from the service's loop and from its reload thread.
        self._tokens_lock = threading.Lock()
        #: What HAProxy routes now (as last applied).
        self.state = BalancerState()
        self._record: pidrecords.Record | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle --

    @property
    def pid(self) -> int | None:
        """The master's pid, if it runs."""
        return self._record.pid if self._record and self._record.alive() else None

    def running(self) -> bool:
        return self.pid is not None

    def start(self, state: BalancerState | None = None, timeout: float = 15.0) -> None:
        """Start HAProxy detached (its own session: it outlives this process) with
        ``state``, and return once its worker answers. :class:`BalancerError` if one
        already runs from this state dir (use :meth:`adopt`) or it does not come up."""
        if self.adopt():
            raise BalancerError(f"HAProxy already runs from {self.state_dir} "
                                f"(pid {self.pid}): adopt it")
        state = state or BalancerState()
        self._prepare_dir()
        self._install_config(state)
        for stale in self._sockets():
            stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > LOG_LIMIT:  # one old log kept
                self.log_path.replace(self.log_path.with_suffix(".log.1"))
        log = open(self.log_path, "ab")  # noqa: SIM115 (handed to the child)
        try:
            self._process = subprocess.Popen(
                [self.haproxy, "-W", "-S", f"{self.master_socket},mode,600",
                 "-f", str(self.config_path), "-p", str(self.state_dir / "haproxy.master")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                close_fds=True, cwd=self.state_dir)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BalancerError(f"HAProxy exited ({self._process.returncode}) at start: "
                                    + self._log_tail())
            procs = self._show_proc()
            if procs and procs.workers and self._worker_pid() in procs.workers:
                self._record = pidrecords.write(self.state_dir, RECORD, self._process.pid)
                self._save_state(state)
                return
            time.sleep(0.02)
        self._kill_started()
        raise BalancerError(f"HAProxy did not come up in {timeout:g} s: " + self._log_tail())

    def adopt(self) -> bool:
        """Take over the HAProxy a previous process started from this state dir (after a
        restart of the models service); False if none runs (a stale record is removed)."""
        record = next((r for r in pidrecords.read(self.state_dir) if r.name == RECORD), None)
        if record is None:
            return False
        if not record.alive() or self._show_proc() is None:
            if not record.alive():
                pidrecords.remove(self.state_dir, RECORD)
            return False
        self._record = record
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.state = BalancerState.from_json(self.state_path.read_text())
        return True

    def ensure_running(self, state: BalancerState | None = None) -> bool:
        """Adopt the running HAProxy (and apply ``state`` if given), or start one (with
        ``state``, or routing nothing yet); True if it had to be started."""
        if self.adopt():
            if state is not None:
                self.apply(state)
            return False
        self.start(state)
        return True

    def stop(self, grace: float = 5.0) -> None:
        """Stop HAProxy (master and workers) and remove its sockets and record."""
        record = self._record or next(
            (r for r in pidrecords.read(self.state_dir) if r.name == RECORD), None)
        if record is not None:
            pidrecords.stop(record, grace)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        self._record = None
        pidrecords.remove(self.state_dir, RECORD)
        for path in self._sockets():
            path.unlink(missing_ok=True)

    def _sockets(self) -> list[Path]:
        lane = [Path(self.lane.direct)] if self.lane else []
        return [self.master_socket, self.runtime_socket, self.socket, *lane]

    # -- configuration --

    def config_text(self, state: BalancerState) -> str:
        return haproxy_config(state, frontend=self.socket, runtime=self.runtime_socket,
                              nbthread=self.nbthread, lane=self.lane)

    def set_tokens(self, tokens: Mapping[str, str], patience: float = 0.0) -> None:
        """The fast lane's endpoint tokens (SHA-256 hex → endpoint): written to the map
        file that a start or reload reads, and applied at once to every running worker,
        the old ones a reload left finishing their connections included, so a revoked
        token's next request goes to the gateway, which refuses it. ``patience``: seconds
        to keep trying while the master does not answer (it re-executes on a reload)."""
        if self.lane is None:
            return
        wanted = {d: e for d, e in tokens.items()
                  if DIGEST.match(d) and ENDPOINT_NAME.match(e)}
        path = self.lane.tokens_map
        with self._tokens_lock:
            self._prepare_dir()
            self._write_atomic(Path(path),
                               "".join(f"{d} {e}\n" for d, e in sorted(wanted.items())))
            deadline = time.monotonic() + patience
            while self.running():
                try:
                    self._set_maps(path, wanted)
                    return
                except BalancerError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)

    def _set_maps(self, path: str, wanted: Mapping[str, str]) -> None:
        procs = self._show_proc()
        if procs is None:
            raise BalancerError("HAProxy's master does not answer on "
                                f"{self.master_socket}: the token map is not applied")
        for pid in procs.every:
            self._set_worker_map(pid, path, wanted)

    def _set_worker_map(self, pid: int, path: str, wanted: Mapping[str, str]) -> None:
        """One worker's copy of the token map made ``wanted`` (through the master's CLI,
        ``@!<pid>``); a worker that exited meanwhile is no error."""
        try:
            shown = _command(self.master_socket, f"@!{pid} show map {path}")
        except OSError as e:
            raise BalancerError(f"HAProxy's master does not answer: {e}") from e
        current = {}
        for line in shown.splitlines():
            words = line.split()
            if len(words) == 3 and words[0].startswith("0x"):
                current[words[1]] = words[2]
        commands = [f"@!{pid} del map {path} {d}" for d, e in current.items()
                    if wanted.get(d) != e]
        commands += [f"@!{pid} add map {path} {d} {e}" for d, e in wanted.items()
                     if current.get(d) != e]
        for start in range(0, len(commands), 200):
            answer = _command(self.master_socket, ";".join(commands[start:start + 200]))
            if answer.strip() and pid in self._all_workers():
                raise BalancerError(f"HAProxy refused the token map: {answer.strip()[:300]}")

    def _all_workers(self) -> tuple[int, ...]:
        procs = self._show_proc()
        return procs.every if procs else ()

    def old_workers(self) -> tuple[int, ...]:
        """Workers that a reload left answering their last requests: they still route by
        an earlier configuration (a retired version's replicas among them)."""
        procs = self._show_proc() if self.running() else None
        return procs.old if procs else ()

    def apply(self, state: BalancerState, timeout: float = 15.0) -> bool:
        """Route by ``state`` from now on, dropping no request; True if HAProxy was
        reloaded, False if only weights changed (runtime API) or nothing did.

        A state HAProxy would refuse raises :class:`InvalidState` or
        :class:`BalancerError` and leaves the running configuration as it was."""
        self._require_running()
        text = self.config_text(state)  # InvalidState before anything is touched
        if state == self.state:
            return False
        if _topology(state) == _topology(self.state):
            try:
                self._runtime_weights(state)
            except BalancerError:
                pass  # fall through to a reload, which sets the weights too
            else:
                self._install_config(state, text)
                self._save_state(state)
                return False
        previous = self.config_path.read_text() if self.config_path.exists() else None
        self._install_config(state, text)
        try:
            self._reload(timeout)
        except BalancerError:
            if previous is not None:
                self._write_atomic(self.config_path, previous)
            raise
        self._save_state(state)
        return True

    def stats(self) -> list[ServerStats]:
        """Every server of every backend as the current worker sees it."""
        self._require_running()
        return parse_stats(_command(self.runtime_socket, "show stat"))

    def command(self, command: str) -> str:
        """A raw runtime API command (for diagnosis)."""
        return _command(self.runtime_socket, command)

    # -- internals --

    def _require_running(self) -> None:
        if not self.running() and not self.adopt():
            raise BalancerError(f"HAProxy is not running from {self.state_dir}")

    def _prepare_dir(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        if self.lane is not None and not os.path.exists(self.lane.tokens_map):
            self._write_atomic(Path(self.lane.tokens_map), "")  # HAProxy needs the file

    def _write_atomic(self, path: Path, text: str) -> None:
        tmp = _temp_file(self.state_dir, f".{path.name}-", text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def _install_config(self, state: BalancerState, text: str | None = None) -> None:
        """Write the configuration in place only after HAProxy has checked it: a bad
        configuration never replaces a good one."""
        text = self.config_text(state) if text is None else text
        tmp = _temp_file(self.state_dir, ".haproxy.cfg-", text)
        try:
            os.chmod(tmp, 0o600)
            _check_file(Path(tmp), self.haproxy)
            os.replace(tmp, self.config_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _save_state(self, state: BalancerState) -> None:
        self._write_atomic(self.state_path, state.to_json())
        self.state = state

    def _runtime_weights(self, state: BalancerState) -> None:
        commands = [f"set weight {e.name}/{server} {weight}"
                    for e in state.endpoints for server, weight in server_weights(e).items()]
        if not commands:
            return
        answer = _command(self.runtime_socket, ";".join(commands)).strip()
        if answer:
            raise BalancerError(f"HAProxy refused new weights: {answer}")

    def _show_proc(self) -> _Procs | None:
        try:
            return _parse_show_proc(_command(self.master_socket, "show proc", timeout=2))
        except OSError:
            return None

    def _worker_pid(self) -> int | None:
        try:
            info = _command(self.runtime_socket, "show info", timeout=2)
        except OSError:
            return None
        found = re.search(r"^Pid: (\d+)$", info, re.MULTILINE)
        return int(found.group(1)) if found else None

    def _reload(self, timeout: float) -> None:
        """Have the master re-execute with the new configuration, and return once the
        new worker answers on the runtime socket (the old one finishes its requests)."""
        before = self._show_proc()
        if before is None:
            raise BalancerError("HAProxy's master does not answer on " + str(self.master_socket))
        with contextlib.suppress(OSError):
            _command(self.master_socket, "reload", timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self._show_proc()
            if now is not None:
                if now.failed > before.failed:
                    raise BalancerError("HAProxy failed to reload: " + self._log_tail())
                new = [pid for pid in now.workers if pid not in before.workers]
                if new and self._worker_pid() in new:
                    return
            time.sleep(0.02)
        raise BalancerError(f"HAProxy's new worker did not come up in {timeout:g} s: "
                            + self._log_tail())

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _kill_started(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None


__all__ = [
    "BACKEND_HEADER", "REPLICA_HEADER", "Balancer", "BalancerError", "BalancerState",
    "EndpointRoute", "FastLane", "InvalidState", "ServerStats", "VersionRoute", "backend_name",
    "backend_names",
    "check_config", "haproxy_config", "parse_server_name", "parse_stats", "server_name",
    "server_weights", "shares", "version_backend", "version_weights",
]
