"""The models service's decisions: deploy, roll out, split traffic, roll back, supervise.

- :meth:`Models.deploy` checks the name, the model (copied as the user into
  ``~/studiohub-endpoints/<name>/v<N>/``, its format detected there: :mod:`.modelcopy`),
  the catalog for the user's domains (``Catalog.choose``, the image must run the
  model's framework), places the version's replicas through the hub and starts them.
  Deploying to an existing endpoint adds version N+1 beside the serving one.
- :meth:`Models.tick` (every ``poll_interval``; faster while something starts) claims
  each new replica's socket, asks it for readiness, and once every replica of a starting
  version is ready moves the traffic (all of it, or the asked canary share) through the
  balancer; only then is the version it replaces drained and retired. A replica that
  exits is taken out of rotation by the balancer's health checks at once and restarted
  here (with a back-off); a version whose replica exits before it ever served failed
  (the replica's last output is the reason) and takes no traffic.
- :meth:`Models.reconcile` (on start) adopts what still runs: the balancer, each
  replica's keeper; what is gone is restarted.
- The fast lane (:mod:`.balancer`): the endpoint tokens go to the balancer's map when
  they change and after each reload (:meth:`Models._share_tokens`), and the hub is told
  which endpoints the balancer routes (``proxy_routes``, :mod:`.hubroutes`) after each
  change of routes and every :data:`ROUTES_CHECK` seconds, so that the hub's proxy sends
  their paths there.

Endpoints are documents (:mod:`.model`), kept whole by :mod:`.store`; every change is
made under one lock and saved before the balancer is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import posixpath
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import Catalog, ChoiceError
from ..db import utcnow
from ..jobs.placing import HubUnreachable, PlacementRefused
from ..jobs.service import domain_for
from . import model as m
from .balancer import BalancerError, BalancerState, EndpointRoute, VersionRoute
from .model import EndpointError
from .store import Store, digest
from .view import TOKEN_PREFIX, write_view

log = logging.getLogger("studiohub.models")

ENDPOINTS_DIR = "studiohub-endpoints"
#: Seconds a starting version may take until every replica answers readiness.
START_TIMEOUT = 600.0
#: How long a tick waits for the starting replicas' readiness answers.
PROBE_WAIT = 0.5
#: Longest pause between two restarts of a replica that keeps exiting.
MAX_BACKOFF = 60.0
#: Seconds between two checks that the balancer still runs.
BALANCER_CHECK = 5.0
#: Seconds between two syncs of the proxy's fast-lane routes with the hub (a proxy
#: started again has none).
ROUTES_CHECK = 10.0
#: The longest a retirement waits for HAProxy's old workers (its hard-stop-after).
OLD_WORKERS_WAIT = 130.0


@dataclass(frozen=True)
class Caller:
    """Who asks: a hub user, their groups and whether they are an admin."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False


def check_model_path(value: Any) -> str:
    """A model given as a path relative to the home, or ``{job, path}`` (the job's
    outputs): the home-relative path, or a 400."""
    if isinstance(value, dict):
        job, path = value.get("job"), value.get("path", "")
        if not isinstance(job, str) or not job.isalnum() or len(job) > 64 or \
                not isinstance(path, str):
            raise EndpointError(400, "model: {job: <job id>, path: <path in its outputs>}")
        value = posixpath.join("studiohub-jobs", job, "outputs", path)
    if not isinstance(value, str) or not value.strip() or "\0" in value or \
            len(value) > 1024:
        raise EndpointError(400, "model: the path of a model folder or file in your home, "
                                 "e.g. models/net or studiohub-jobs/<job id>/outputs/model")
    path = posixpath.normpath(value.strip().lstrip("/") if not value.startswith("/")
                              else value)
    if path.startswith("/") or path == ".." or path.startswith("../") or path == ".":
        raise EndpointError(400, f"model {value[:80]!r}: give a path inside your home, "
                                 "relative to it")
    return path


def fresh_replicas(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Replicas about to start: attempts 1…n, one each."""
    return {n: {"attempt": i + 1, "restarts": 0, "state": "starting", "reason": ""}
            for i, n in enumerate(names)}


class Models:
    """Every endpoint of the hub (see the module's docstring)."""

    def __init__(self, store: Store, runner: Any, balancer: Any,
                 catalog: Callable[[], Catalog], home_of: Callable[[str], str],
                 copy_model: Callable[..., Awaitable[dict[str, Any]]],
                 remove_copy: Callable[[str, str], Awaitable[None]],
                 image_built: Callable[[str], bool] = lambda image: True,
                 poll_interval: float = 1.0, drain_seconds: float = 3.0,
                 published: Path | None = None,
                 proxy_routes: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        """``published``: where the gateway's view of the endpoints is written
        (:mod:`.view`): who owns each, its domain, its serving versions, token digests.
        ``proxy_routes``: tells the hub which endpoints the balancer's fast lane routes
        (None: no fast lane, the gateway answers everything)."""
        self.proxy_routes = proxy_routes
        self._lane_names: list[str] | None = None
        self._lane_synced = 0.0
        #: False while the balancer has not taken the latest tokens: the proxy then
        #: routes no endpoint to the fast lane (fail closed: a revoked token must not
        #: pass there), and every tick tries again.
        self._tokens_applied = True
        self.store, self.runner, self.balancer = store, runner, balancer
        self.catalog, self.home_of = catalog, home_of
        self.copy_model, self.remove_copy = copy_model, remove_copy
        self.image_built = image_built
        self.poll_interval, self.drain_seconds = poll_interval, drain_seconds
        self.endpoints: dict[str, dict[str, Any]] = {e["name"]: e for e in store.endpoints()}
        self.tokens: dict[str, str] = store.token_digests()
        self.published = published
        self._publish()
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._routes: BalancerState | None = None
        self._next_restart: dict[tuple[str, int, str], float] = {}
        #: (name, version, holder) of versions waiting to retire: the holder tells a
        #: deleted endpoint's version from a new endpoint's of the same name and number.
        self._retiring: set[tuple[str, int, str]] = set()
        #: How many times each of those was asked to retire (replaced again: it drains
        #: again).
        self._retire_asks: dict[tuple[str, int, str], int] = {}
        self._launching: set[tuple[str, int]] = set()
        #: (holder, replica, attempt) of starting replicas that answered readiness, asked
        #: at the start of the tick (:meth:`_probe_starting`).
        self._ready_now: set[tuple[str, str, int]] = set()
        self._errors: dict[tuple[str, int], str] = {}
        #: Names held by a deploy under way (name → user): see :meth:`_reserve`.
        self._deploying: dict[str, str] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._balancer_checked = 0.0

    # --- what the gateway knows -----------------------------------------------------------

    def _save(self, endpoint: dict[str, Any]) -> None:
        if endpoint["name"] in self.endpoints:
            self.store.save(endpoint)
        self._publish()

    def _publish(self) -> None:
        """Write the gateway's view (root's, 0600, replaced whole: it reads either the
        old or the new one). The balancer's token map changes only with the tokens
        (:meth:`_share_tokens`)."""
        if self.published is not None:
            write_view(self.published, self.endpoints, self.tokens)

    def _share_tokens(self, patience: float = 0.0) -> None:
        """The balancer's fast lane takes the tokens at once: a revoked token's next
        request is not in its map, so it goes to the gateway, which refuses it. If
        HAProxy does not take them, the lane is closed until it does (see
        :attr:`_tokens_applied`)."""
        try:
            self.balancer.set_tokens(self.tokens, patience)
        except (OSError, BalancerError) as e:
            if self._tokens_applied:
                log.error("the balancer's token map could not be updated (%s): the proxy "
                          "sends every request to the gateway until it is", e)
            self._tokens_applied = False
            self._wake_soon()
        else:
            self._tokens_applied = True

    def _wake_soon(self) -> None:
        """The loop's next tick at once (from the loop only: the reload thread's failure
        is seen by the next tick anyway)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake.set()

    # --- who sees and calls what ---------------------------------------------------------

    def get(self, caller: Caller, name: str) -> dict[str, Any]:
        """The caller's endpoint (an admin's: anyone's); another's is a 404."""
        endpoint = self.endpoints.get(name)
        if endpoint is None or not (caller.admin or endpoint["user"] == caller.name):
            raise EndpointError(404, f"you have no endpoint {name[:60]!r}")
        return endpoint

    def listing(self, caller: Caller, user: str | None = None) -> list[dict[str, Any]]:
        if user is not None and user != caller.name and not caller.admin:
            raise EndpointError(403, "only admins list other users' endpoints")
        who = user or caller.name
        return sorted((e for e in self.endpoints.values() if e["user"] == who),
                      key=lambda e: e["name"])

    # --- deploy --------------------------------------------------------------------------

    async def deploy(self, caller: Caller, body: Any, check: bool = False) -> Any:
        """Create the endpoint or add a version to it; ``check``: only say whether it
        would be accepted now (None)."""
        if not isinstance(body, dict):
            raise EndpointError(400, "a JSON object: {name, model, image?, size?, "
                                     "replicas?, canary?}")
        unknown = sorted(set(body) - {"name", "model", "image", "size", "replicas", "canary"})
        if unknown:
            raise EndpointError(400, f"unknown field(s) {', '.join(unknown)[:200]}; known: "
                                     "name, model, image, size, replicas, canary")
        name = m.check_name(body.get("name"))
        source = check_model_path(body.get("model"))
        inherited = self._previous_choice(caller, name)
        if "image" in body:
            inherited.pop("image", None)
        body = {**{k: v for k, v in inherited.items() if k in ("image", "size", "replicas")},
                **{k: v for k, v in body.items() if v is not None}}
        replicas = m.check_replicas(body.get("replicas", 1))
        canary = body.get("canary")
        if canary is not None:
            canary = m.check_percent(canary)
            if not inherited.get("serving"):
                raise EndpointError(400, f"canary: a share of the traffic for a new version "
                                         f"of an endpoint that serves; {name!r} has no "
                                         "serving version yet: deploy it without canary")
        number = self._reserve(caller, name)  # the name and number, before any await
        try:
            home = self.home_of(caller.name)
            target = posixpath.join(home, ENDPOINTS_DIR, name, f"v{number}")
            found = await self.copy_model(caller.name, posixpath.join(home, source),
                                          target, check)
            if found.get("kept"):
                log.info("%s's earlier copy at %s kept as %s", caller.name, target,
                         found["kept"])
            try:
                if inherited.get("image") and inherited.get("framework") != \
                        found["framework"]:
                    body = {k: v for k, v in body.items() if k != "image"}  # another one
                choice, domain = self._choose(caller, body, found["framework"])
                await self._check_room(caller, choice, replicas)
                if check:
                    return {"ok": True, "version": number, "new_endpoint": number == 1 and
                            not inherited, "image": choice.image.id,
                            "size": choice.size.id, "replicas": replicas, "canary": canary}
                return await self._add_version(caller, name, number, source, found, choice,
                                               domain, replicas, canary)
            except BaseException:
                if not check:
                    with contextlib.suppress(Exception):
                        await self.remove_copy(caller.name, target)
                raise
        finally:
            self._deploying.pop(name, None)

    def _previous_choice(self, caller: Caller, name: str) -> dict[str, Any]:
        """A new version of the caller's endpoint keeps the image, size and replicas of
        the version serving now (or the newest), unless the deploy says otherwise."""
        existing = self.endpoints.get(name)
        if existing is None or existing["user"] != caller.name or not existing["versions"]:
            return {}
        live = m.version(existing, existing.get("live"))
        v = live or max(existing["versions"], key=lambda x: x["version"])
        return {"image": v["image"], "size": v["size"], "replicas": v["replicas"],
                "framework": v.get("framework"), "serving": live is not None}

    def _reserve(self, caller: Caller, name: str) -> int:
        """The version number this deploy will add, the name held for the caller until it
        ends: a deploy of the same name meanwhile (anyone's) is refused, so the name's
        owner cannot change under a deploy (one user's copy must never become a version
        of another user's endpoint). One deploy per user at a time: a copy runs in the
        service's cgroup."""
        existing = self.endpoints.get(name)
        held = self._deploying.get(name)
        if (existing is not None and existing["user"] != caller.name) or \
                (held is not None and held != caller.name):
            raise EndpointError(409, f"the name {name!r} is taken on this hub: choose another")
        if held is not None or (existing is not None and any(
                v["status"] == m.STARTING for v in existing["versions"])):
            raise EndpointError(409, f"a version of {name!r} is still being deployed: wait "
                                     "for it (or roll it back) before deploying another")
        if caller.name in self._deploying.values():
            raise EndpointError(409, "you already have a deploy copying its model: wait for "
                                     "it to finish")
        self._deploying[name] = caller.name
        return m.next_version(existing) if existing else 1

    def _choose(self, caller: Caller, body: dict[str, Any], framework: str) -> Any:
        catalog = self.catalog()
        image = body.get("image")
        if image is None:
            image = next((c.image.id for c in catalog.allowed_pairs(caller.groups)
                          if c.image.framework == framework and self.image_built(c.image.id)
                          ), None)
            if image is None:
                raise EndpointError(400, f"none of the images your domains allow runs "
                                         f"{framework} here: ask an admin for one")
        try:
            choice = catalog.choose(caller.groups, {"image": image, "size": body.get("size")})
        except ChoiceError as e:
            raise EndpointError(400, str(e)) from None
        if choice.image.framework != framework:
            raise EndpointError(400, f"image {choice.image.display_name} runs "
                                     f"{choice.image.framework}, and this model needs "
                                     f"{framework}: leave image out, or choose one that has it")
        if not self.image_built(choice.image.id):
            raise EndpointError(409, f"image {choice.image.display_name} is not built on "
                                     f"this host: studiohub env build {choice.image.id}")
        return choice, domain_for(catalog, caller.groups, choice.image, choice.size)

    async def _check_room(self, caller: Caller, choice: Any, replicas: int) -> None:
        try:
            await self.runner.check(caller.name, choice.image.id, choice.size.id, replicas)
        except PlacementRefused as e:
            raise EndpointError(e.status, e.message) from None
        except HubUnreachable as e:
            raise EndpointError(503, f"the hub did not answer ({e}): try again") from None

    async def _add_version(self, caller: Caller, name: str, number: int, source: str,
                           found: dict[str, Any], choice: Any, domain: str, replicas: int,
                           canary: int | None) -> dict[str, Any]:
        names = m.replica_names(replicas)
        v: dict[str, Any] = {
            "version": number, "holder": secrets.token_hex(6), "user": caller.name,
            "format": found["format"],
            "framework": found["framework"], "image": choice.image.id,
            "size": choice.size.id, "replicas": replicas, "source": source,
            "model_dir": found["model_path"], "status": m.STARTING, "reason": "",
            "created": utcnow().isoformat(), "started": time.time(),
            "canary_percent": canary, "placement": {}, "next_attempt": len(names) + 1,
            "replica_state": fresh_replicas(names)}
        try:
            v["placement"] = await self.runner.place(caller.name, v, names)
        except PlacementRefused as e:
            raise EndpointError(e.status, e.message) from None
        except HubUnreachable as e:
            raise EndpointError(503, f"the hub did not answer ({e}): try again") from None
        async with self.lock:
            endpoint = self.endpoints.get(name)
            if endpoint is not None and (endpoint["user"] != caller.name or
                                         m.version(endpoint, number) is not None):
                # Cannot happen while the name is held (_reserve); never start a version
                # in another user's endpoint, whatever happened.
                await self.runner.release(caller.name, v["holder"])
                raise EndpointError(409, f"the name {name!r} is taken on this hub: choose "
                                         "another")
            if endpoint is None:
                endpoint = {"name": name, "user": caller.name, "domain": domain,
                            "created": utcnow().isoformat(), "live": None, "canary": None,
                            "canary_percent": 0, "versions": []}
            endpoint["versions"].append(v)
            self.endpoints[name] = endpoint
            self._save(endpoint)
        await self._launch(endpoint, v)
        log.info("endpoint %s of %s: version %d deploying (%d x %s on %s)", name,
                 caller.name, number, replicas, choice.size.id, choice.image.id)
        self._wake.set()
        return endpoint

    # --- traffic, rollback, delete -----------------------------------------------------

    async def set_traffic(self, caller: Caller, name: str, percent: Any) -> dict[str, Any]:
        """The newest serving version's share; 100 promotes it (the older one retires)."""
        endpoint = self.get(caller, name)
        percent = m.check_percent(percent)
        async with self.lock:
            if endpoint["canary"] is None:
                raise EndpointError(409, f"{name!r} has one serving version: deploy another "
                                         "to split the traffic")
            if percent == 100:
                old = m.version(endpoint, endpoint["live"])
                m.make_live(endpoint, endpoint["canary"])
                await self._apply()  # routed first, then published (the gateway)
                self._save(endpoint)
                if old:
                    self._retire_later(endpoint, old)
            else:
                endpoint["canary_percent"] = percent
                await self._apply()  # routed first, then published (the gateway)
                self._save(endpoint)
        return endpoint

    async def rollback(self, caller: Caller, name: str) -> dict[str, Any]:
        """Back to the version before: a canary or a starting version is dropped; else the
        previous version starts again and takes all traffic once ready."""
        endpoint = self.get(caller, name)
        async with self.lock:
            if any(key[0] == name for key in self._launching):
                raise EndpointError(409, f"{name!r} is starting a version's replicas (a "
                                         "rollback or deploy under way): try again in a "
                                         "few seconds")
            starting = [v for v in endpoint["versions"] if v["status"] == m.STARTING]
            if starting and endpoint["live"] is None and endpoint["canary"] is None:
                raise EndpointError(409, f"{name!r} has no earlier version to roll back to "
                                         "(its first is starting): delete it instead")
            if starting or endpoint["canary"] is not None:
                dropped = starting or [m.version(endpoint, endpoint["canary"])]
                endpoint["canary"], endpoint["canary_percent"] = None, 0
                await self._apply()  # routed first, then published (the gateway)
                self._save(endpoint)
                for v in dropped:
                    if v is not None:
                        self._retire_later(endpoint, v, delay=0 if v in starting else None)
                return endpoint
            live = endpoint["live"]
            before = m.previous(endpoint)
            if before is None:
                raise EndpointError(409, f"{name!r} has no earlier version to roll back to")
            if before["status"] == m.SERVING:  # replaced moments ago, still draining
                replaced = m.version(endpoint, live)
                m.make_live(endpoint, before["version"], restored=True)
                await self._apply()  # routed first, then published (the gateway)
                self._save(endpoint)
                if replaced is not None:
                    self._retire_later(endpoint, replaced)
                return endpoint
            # The earlier version starts again (a new placement), and replaces the live
            # one when ready, as a deploy would; supervision leaves it alone until its
            # replicas are started (_launch).
            # A refused placement must change nothing: the record as it was comes back.
            kept = copy.deepcopy(before)
            self._launching.add((name, before["version"]))
            names = m.replica_names(before["replicas"])
            before.update({"holder": secrets.token_hex(6), "status": m.STARTING,
                           "restored": True,
                           "reason": "", "started": time.time(), "canary_percent": None,
                           "next_attempt": len(names) + 1,
                           "replica_state": fresh_replicas(names),
                           "old_holders": [*kept.get("old_holders", []), kept["holder"]]})
        holder = before["holder"]
        try:
            before["placement"] = await self.runner.place(endpoint["user"], before, names)
        except (PlacementRefused, HubUnreachable) as e:
            before.clear()
            before.update(kept)
            self._launching.discard((name, before["version"]))
            if isinstance(e, HubUnreachable):
                raise EndpointError(503, f"the hub did not answer ({e}): try again") from None
            raise EndpointError(e.status, e.message) from None
        async with self.lock:
            # Deleted, or the version changed (another rollback dropped it), while it was
            # placed: this placement goes back and nothing starts.
            if self.endpoints.get(name) is not endpoint or \
                    before.get("holder") != holder or before["status"] != m.STARTING:
                self._launching.discard((name, before["version"]))
                with contextlib.suppress(Exception):
                    await self.runner.release(endpoint["user"], holder)
                raise EndpointError(409, f"{name!r} changed while version "
                                         f"{before['version']} was being placed (deleted, "
                                         "or rolled back again): nothing was started")
            self._save(endpoint)
        await self._launch(endpoint, before)
        self._wake.set()
        return endpoint

    async def _launch(self, endpoint: dict[str, Any], v: dict[str, Any]) -> None:
        """Start a new version's replicas; the supervision leaves them alone meanwhile (a
        replica whose keeper has not reported yet would look dead to a poll)."""
        key = (endpoint["name"], v["version"])
        self._launching.add(key)
        try:
            for n, rs in v["replica_state"].items():
                await self.runner.start(endpoint, v, n, rs["attempt"])
        except Exception as e:
            log.warning("endpoint %s v%d did not start: %s", endpoint["name"], v["version"], e)
            async with self.lock:
                await self._fail(endpoint, v, f"its replicas did not start: {e}")
        finally:
            self._launching.discard(key)

    async def delete(self, caller: Caller, name: str) -> None:
        endpoint = self.get(caller, name)
        async with self.lock:
            self.endpoints.pop(name, None)
            self.tokens = {d: e for d, e in self.tokens.items() if e != name}
            self.store.remove(name)
            await self._apply()
            self._publish()
            self._share_tokens()
        for v in endpoint["versions"]:
            if v["status"] in m.RUNS:
                await self._stop_version(endpoint, v)
        # Root's copies of the replicas' output go with the endpoint (the models stay in
        # the owner's home).
        holders = {h for v in endpoint["versions"] for h in [v["holder"],
                                                              *v.get("old_holders", [])]}
        for holder in holders:
            await asyncio.to_thread(self.runner.forget, holder)
        log.info("endpoint %s of %s deleted", name, endpoint["user"])

    # --- tokens --------------------------------------------------------------------------

    def create_token(self, caller: Caller, name: str, note: Any = "") -> dict[str, Any]:
        """A new token of ``name``; ``note``: what will use it, shown in the list."""
        self.get(caller, name)
        note = m.token_note(note)
        if sum(e == name for e in self.tokens.values()) >= m.MAX_TOKENS:
            raise EndpointError(409, f"{name!r} has {m.MAX_TOKENS} tokens, the most an "
                                     "endpoint keeps: revoke one it no longer needs first")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = self.store.add_token(secrets.token_hex(4), name, token, note)
        # Replaced, never changed in place: the reload thread reads it (_apply_now).
        self.tokens = {**self.tokens, digest(token): name}
        self._publish()
        self._share_tokens()
        return {"id": info.id, "token": token, "created": info.created.isoformat(),
                "note": info.note}

    def list_tokens(self, caller: Caller, name: str) -> list[dict[str, Any]]:
        self.get(caller, name)
        return [{"id": t.id, "created": t.created.isoformat(), "note": t.note}
                for t in self.store.tokens(name)]

    async def revoke_token(self, caller: Caller, name: str, token_id: str) -> None:
        """Answered once no path takes the token: the gateway's view at once; HAProxy's
        workers (a reload under way: tried for up to 3 s), else the proxy's lane routes
        are withdrawn first."""
        self.get(caller, name)
        if not self.store.revoke(name, token_id):
            raise EndpointError(404, f"{name!r} has no token {token_id[:20]!r}")
        self.tokens = self.store.token_digests()
        self._publish()
        await asyncio.to_thread(self._share_tokens, 3.0)
        if not self._tokens_applied:
            await self._sync_lane()

    # --- the balancer ---------------------------------------------------------------------

    def routes(self, endpoints: dict[str, dict[str, Any]] | None = None) -> BalancerState:
        """What the balancer should route: each endpoint's serving versions and shares,
        and one route per serving version for version-pinned requests."""
        routed = []
        for endpoint in sorted((endpoints or self.endpoints).values(),
                               key=lambda e: e["name"]):
            split = m.shares(endpoint)
            versions = []
            for v in endpoint["versions"]:
                if v["status"] != m.SERVING:
                    continue
                sockets = [(n, self.runner.socket_path(v["holder"], n))
                           for n in m.replica_names(v["replicas"])]
                versions.append(VersionRoute(v["version"], split.get(v["version"], 0),
                                             tuple(sockets)))
            if versions:
                routed.append(EndpointRoute(endpoint["name"], tuple(versions)))
        return BalancerState(tuple(routed))

    async def _apply(self, endpoints: dict[str, dict[str, Any]] | None = None) -> None:
        state = self.routes(endpoints)
        if not self._tokens_applied:
            await asyncio.to_thread(self._share_tokens)
        if state != self._routes:
            if not state.endpoints:  # the proxy stops sending here before HAProxy stops
                await self._sync_lane([])
            await asyncio.to_thread(self._apply_now, state)
            self._routes = state
        await self._sync_lane()

    async def _sync_lane(self, names: list[str] | None = None) -> None:
        """Tell the hub which endpoints the fast lane routes: after a change, and every
        :data:`ROUTES_CHECK` seconds (a hub or proxy that was down is told again)."""
        if self.proxy_routes is None:
            return
        if names is None:
            routed = self._routes.endpoints if self._routes and self.balancer.running() \
                and self._tokens_applied else ()
            names = sorted(e.name for e in routed)
        now = time.monotonic()
        if names == self._lane_names and now - self._lane_synced < ROUTES_CHECK:
            return
        # Asked again after ROUTES_CHECK, or at once when the names change.
        self._lane_names, self._lane_synced = names, now
        try:
            await self.proxy_routes(names)
        except Exception as e:  # the hub restarting: the gateway answers meanwhile
            log.warning("the hub did not take the endpoint routes (%s): asked again in "
                        "%g s", e, ROUTES_CHECK)

    def _apply_now(self, state: BalancerState) -> None:
        """The balancer routes ``state``: started when there is something to route (a hub
        without endpoints runs no HAProxy), reloaded or re-weighted otherwise."""
        if not self.balancer.running():
            if state.endpoints:
                self.balancer.ensure_running(state)
            return
        if not state.endpoints and not self.endpoints:
            self.balancer.stop()  # the last endpoint is gone: no HAProxy left behind
            return
        if self.balancer.apply(state):
            # A token created or revoked while the new worker read its map file would be
            # missing from, or left in, its copy: make it this moment's again.
            self._share_tokens()

    async def _check_balancer(self) -> None:
        """A balancer that died (its worker crashed, someone killed it) is started again
        with the routes at the next :meth:`_apply`."""
        now = time.monotonic()
        if now - self._balancer_checked < BALANCER_CHECK or self._routes is None or \
                not self._routes.endpoints:
            return
        self._balancer_checked = now
        if not await asyncio.to_thread(self.balancer.adopt):
            log.warning("the balancer is not running: starting it again")
            self._routes = None

    # --- supervision ----------------------------------------------------------------------

    async def run(self) -> None:
        """The supervision loop (every ``poll_interval``; 0.1 s while a version starts)."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("supervising endpoints")
            starting = any(v["status"] == m.STARTING for e in self.endpoints.values()
                           for v in e["versions"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       0.1 if starting else self.poll_interval)
            self._wake.clear()

    async def tick(self) -> None:
        # Readiness is asked before the lock, of every starting replica at once: a
        # replica that accepts and never answers (stopped by its owner) costs one
        # probe's timeout a tick, never a wait of everyone's deploys and rollbacks.
        self._ready_now = await self._probe_starting()
        async with self.lock:
            for endpoint, v in self._supervised():
                await self._supervise_isolated(endpoint, v)
            await self._check_balancer()
            await self._apply()

    def _supervised(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The versions whose replicas run and that neither start nor retire now."""
        return [(endpoint, v) for endpoint in list(self.endpoints.values())
                for v in list(endpoint["versions"])
                if v["status"] in m.RUNS and (endpoint["name"], v["version"]) not in
                self._launching and (endpoint["name"], v["version"], v["holder"])
                not in self._retiring]

    async def _probe_starting(self) -> set[tuple[str, str, int]]:
        """(holder, replica, attempt) of the starting replicas that answer readiness."""
        starting = [(v["holder"], name, rs["attempt"], endpoint["user"])
                    for endpoint, v in self._supervised()
                    for name, rs in v["replica_state"].items() if rs["state"] == "starting"]

        async def probe(holder: str, name: str, user: str) -> bool:
            await asyncio.to_thread(self.runner.claim_socket, user, holder, name)
            return bool(await self.runner.ready(holder, name))

        tasks = [asyncio.ensure_future(probe(h, n, u)) for h, n, _, u in starting]
        if not tasks:
            return set()
        # A ready replica answers in milliseconds; one that has not in PROBE_WAIT is
        # asked again next tick, so a silent one delays no other's promotion.
        await asyncio.wait(tasks, timeout=PROBE_WAIT)
        for task in tasks:
            task.cancel()
        return {(h, n, a) for (h, n, a, _), task in zip(starting, tasks, strict=True)
                if task.done() and not task.cancelled() and task.exception() is None
                and task.result() is True}

    async def _supervise_isolated(self, endpoint: dict[str, Any], v: dict[str, Any]) -> None:
        """One version's supervision; whatever goes wrong there (a user's replica leaving
        something odd behind) is logged and stays there: every other endpoint is still
        supervised, and a starting version still fails at its deadline."""
        try:
            await self._supervise(endpoint, v)
        except Exception as e:
            key = (endpoint["name"], v["version"])
            if self._errors.get(key) != str(e):  # one line per new error, not per tick
                self._errors[key] = str(e)
                log.exception("supervising endpoint %s v%d", *key)
            if v["status"] == m.STARTING and time.time() - v.get("started", 0) > START_TIMEOUT:
                with contextlib.suppress(Exception):
                    await self._fail(endpoint, v, f"its replicas were not ready after "
                                                  f"{START_TIMEOUT:.0f} s ({e})")

    async def _supervise(self, endpoint: dict[str, Any], v: dict[str, Any]) -> None:
        changed = False
        for name, rs in v["replica_state"].items():
            changed |= await self._watch_replica(endpoint, v, name, rs)
            if v["status"] == m.FAILED:
                break
        if v["status"] == m.STARTING:
            if all(rs["state"] == "ready" for rs in v["replica_state"].values()):
                await self._promote(endpoint, v)
                changed = True
            elif time.time() - v.get("started", 0) > START_TIMEOUT:
                await self._fail(endpoint, v, f"its replicas were not ready after "
                                              f"{START_TIMEOUT:.0f} s")
                changed = True
        if changed:
            self._save(endpoint)

    async def _watch_replica(self, endpoint: dict[str, Any], v: dict[str, Any], name: str,
                             rs: dict[str, Any]) -> bool:
        """One look at a replica; True when its state changed."""
        key = (endpoint["name"], v["version"], name)
        if rs["state"] == "restarting":
            if time.monotonic() < self._next_restart.get(key, 0):
                return False
            # Every start of any replica of the version is an attempt of its own (the
            # executor keeps one keeper's files per attempt).
            rs["attempt"] = v["next_attempt"]
            v["next_attempt"] += 1
            rs["state"], rs["since"] = "starting", time.time()
            try:
                await self.runner.start(endpoint, v, name, rs["attempt"])
            except Exception as e:
                rs["reason"] = f"could not restart: {e}"
                rs["state"] = "restarting"
                self._schedule_restart(key, rs)
            return True
        state = await self.runner.poll(endpoint, v, name, rs["attempt"])
        if not state.running:
            tail = self.runner.log_tail(v["holder"], name, rs["attempt"]).strip()
            why = state.reason or f"exited with {state.exit_code}"
            if v["status"] == m.STARTING:
                last = tail.splitlines()[-1] if tail else ""
                await self._fail(endpoint, v, f"{name} {why}" + (f": {last}" if last else ""))
                return True
            self._restart_later(key, rs, why)
            log.warning("endpoint %s v%d: %s %s; restarting", endpoint["name"], v["version"],
                        name, why)
            return True
        if rs["state"] == "starting":
            if (v["holder"], name, rs["attempt"]) in self._ready_now:
                rs["state"], rs["reason"] = "ready", ""
                return True
            if v["status"] == m.SERVING and time.time() - rs.get("since", time.time()) > \
                    START_TIMEOUT:  # a restarted replica that never got ready: again
                with contextlib.suppress(Exception):
                    await self.runner.stop(endpoint, v, name, rs["attempt"])
                self._restart_later(key, rs, f"not ready {START_TIMEOUT:.0f} s after its start")
                return True
        return False

    def _restart_later(self, key: tuple[str, int, str], rs: dict[str, Any], why: str) -> None:
        """A serving version's replica that stopped (``why``): started again after its
        back-off."""
        rs["restarts"] += 1
        rs["state"], rs["reason"] = "restarting", why
        self._schedule_restart(key, rs)

    def _schedule_restart(self, key: tuple[str, int, str], rs: dict[str, Any]) -> None:
        delay = min(MAX_BACKOFF, 0.5 * 2 ** min(rs["restarts"] - 1, 8))
        self._next_restart[key] = time.monotonic() + delay

    async def _promote(self, endpoint: dict[str, Any], v: dict[str, Any]) -> None:
        """A starting version is ready: it takes its traffic; what it replaces retires.

        The balancer routes the new split *before* the endpoint says so (a copy of it is
        routed first): whoever sees "serving" can call it."""
        shadow = copy.deepcopy(endpoint)
        m.promote(shadow, v["version"])
        await self._apply({**self.endpoints, endpoint["name"]: shadow})
        replaced = m.promote(endpoint, v["version"])
        self._save(endpoint)
        log.info("endpoint %s: version %d serving", endpoint["name"], v["version"])
        for x in replaced:
            self._retire_later(endpoint, x)

    def _retire_later(self, endpoint: dict[str, Any], v: dict[str, Any],
                      delay: float | None = None) -> None:
        """Retire a version once requests in flight to it had time to finish. Replaced
        again while it waits (a rollback gave it traffic back, then another version took
        it), it waits again, from then: its drain counts from its last replacement."""
        key = (endpoint["name"], v["version"], v["holder"])
        self._retire_asks[key] = self._retire_asks.get(key, 0) + 1
        if key in self._retiring:
            return
        self._retiring.add(key)

        async def retire() -> None:
            try:
                asked = 0
                while asked != self._retire_asks[key]:
                    asked = self._retire_asks[key]
                    # HAProxy workers of a configuration that still gave it traffic.
                    stale = await asyncio.to_thread(self.balancer.old_workers)
                    await asyncio.sleep(self.drain_seconds if delay is None else delay)
                    await self._old_workers_gone(stale, lambda: v["version"] not in (
                        endpoint.get("live"), endpoint.get("canary")))
                async with self.lock:
                    if self.endpoints.get(endpoint["name"]) is not endpoint:
                        return  # deleted meanwhile: the delete stopped its versions
                    if v["version"] in (endpoint.get("live"), endpoint.get("canary")):
                        return  # it took traffic again meanwhile
                    await self._stop_version(endpoint, v)
                    v["status"] = m.RETIRED if v["status"] == m.SERVING else m.FAILED \
                        if v["status"] == m.FAILED else m.RETIRED
                    await self._apply()  # routed first, then published (the gateway)
                    self._save(endpoint)
            finally:
                self._retiring.discard(key)
                self._retire_asks.pop(key, None)

        task = asyncio.ensure_future(retire())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _old_workers_gone(self, stale: tuple[int, ...],
                                still: Callable[[], bool]) -> None:
        """Wait while any of the ``stale`` HAProxy workers (those of a configuration that
        still gave the retiring version traffic) remains: one may still hold a kept-alive
        connection of the hub's proxy and send its next request there (HAProxy ends them
        after ``hard-stop-after``; the proxy's idle connections close after 5 s). Workers
        of later reloads never route to it, whatever they hold. ``still``: whether the
        version is still to retire (a rollback may give it the traffic back)."""
        deadline = time.monotonic() + OLD_WORKERS_WAIT
        while stale and still() and time.monotonic() < deadline:
            stale = tuple(set(stale) & set(await asyncio.to_thread(
                self.balancer.old_workers)))
            if stale:
                await asyncio.sleep(0.5)

    async def _fail(self, endpoint: dict[str, Any], v: dict[str, Any], reason: str) -> None:
        v["status"], v["reason"] = m.FAILED, reason[-1000:]
        log.warning("endpoint %s v%d failed: %s", endpoint["name"], v["version"], reason)
        await self._stop_version(endpoint, v)
        self._save(endpoint)

    async def _stop_version(self, endpoint: dict[str, Any], v: dict[str, Any]) -> None:
        """Every replica stopped at once. The keeper continues a replica its owner
        stopped (SIGSTOP) with its SIGTERM, so none takes the grace period unless it
        ignores SIGTERM; at worst one grace period, not one per replica."""
        async def stop(name: str, rs: dict[str, Any]) -> None:
            with contextlib.suppress(Exception):
                await self.runner.stop(endpoint, v, name, rs["attempt"])
            rs["state"] = "stopped"

        await asyncio.gather(*(stop(n, rs) for n, rs in v["replica_state"].items()))
        with contextlib.suppress(Exception):
            await self.runner.release(endpoint["user"], v["holder"])

    # --- start ----------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Adopt the balancer and every replica that still runs; restart the others (the
        next ticks do, through their polls)."""
        await asyncio.to_thread(self.balancer.adopt)
        self._share_tokens()
        self._routes = None
        async with self.lock:
            await self._apply()

    def describe(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """An endpoint as the API answers it."""
        split = m.shares(endpoint)
        return {
            "name": endpoint["name"], "user": endpoint["user"], "domain": endpoint["domain"],
            "url": f"/services/models/{endpoint['name']}/", "created": endpoint["created"],
            "status": m.status(endpoint), "live": endpoint["live"],
            "previous": _number(m.previous(endpoint)),
            "canary": endpoint["canary"],
            "versions": [{
                "version": v["version"], "format": v["format"], "image": v["image"],
                "size": v["size"], "source": v["source"], "status": m.version_status(endpoint, v),
                "reason": v["reason"], "created": v["created"],
                "traffic": split.get(v["version"], 0),
                "replicas": [{"name": n, "state": rs["state"], "restarts": rs["restarts"],
                              "reason": rs["reason"], "attempt": rs["attempt"]}
                             for n, rs in sorted(v["replica_state"].items())]}
                for v in sorted(endpoint["versions"], key=lambda x: -x["version"])]}

    def log_file(self, caller: Caller, name: str, number: int | None,
                 replica: str) -> Any:
        endpoint = self.get(caller, name)
        number = number if number is not None else (endpoint["canary"] or endpoint["live"]
                                                     or m.next_version(endpoint) - 1)
        v = m.version(endpoint, number)
        if v is None or replica not in v["replica_state"]:
            raise EndpointError(404, f"{name!r} has no version {number} replica "
                                     f"{replica[:30]!r}")
        return self.runner.log_path(v["holder"], replica, v["replica_state"][replica]
                                    ["attempt"])


def _number(version: dict[str, Any] | None) -> int | None:
    """A version's number (what ``describe``'s ``previous`` says a rollback returns to)."""
    return int(version["version"]) if version else None
