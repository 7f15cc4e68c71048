"""StudioHub's endpoints in the hub's own API: kernel placements and server switches.

They live in the hub process (``JupyterHub.extra_handlers``) rather than in a hub
service because what they decide belongs to the hub: the GPU allocator that spawners
use, the running servers' sizes, and root access to the cgroup tree. A service would
need a second copy of each. Each user's server calls them with its own API token, which
carries :data:`KERNELS_SCOPE` for its owner only (see :func:`update_hubapi`).

Each handler parses, authorizes, calls :mod:`studiohub.placement` and answers: what may
run where is decided there, never here. Bodies are bounded (:data:`MAX_BODY`), and bad
values are quoted back shortened (:func:`studiohub.catalog.quote_value`).

    GET    /hub/api/studiohub/users/NAME/kernel-options   images, sizes, what is unavailable and why
                                                          (?replacing=ID: as if ID were gone)
    POST   /hub/api/studiohub/users/NAME/kernels          place a kernel {kernel_id, image, size,
                                                          replaces?} (check: true, no kernel_id:
                                                          only say if it would be placed)
    DELETE /hub/api/studiohub/users/NAME/kernels/ID       release it
    POST   /hub/api/studiohub/users/NAME/server-restart   restart the server on {image, size}
                                                          (check: true: only say if it would)
    POST   /hub/api/studiohub/users/NAME/jobs/ID/placement  place a training job's replicas
                                                          {image, size, replicas, check?}
    DELETE /hub/api/studiohub/users/NAME/jobs/ID/placement  release them (the jobs service
                                                          only: JOBS_PLACEMENT_SCOPE)
    POST   /hub/api/studiohub/users/NAME/endpoints/ID/placement  place a model endpoint
    DELETE /hub/api/studiohub/users/NAME/endpoints/ID/placement  version's replicas, release
                                                          them (the models service only:
                                                          ENDPOINTS_PLACEMENT_SCOPE)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web
from traitlets.config import Config

from . import contract, placement, serverapi
from .catalog import Catalog, Choice, Image, Size, quote_value
from .placement import Placement, Placer, Refused, describe, limits_env
from .placement import jobs as placement_jobs
from .placement.leaves import leaf_paths
from .placement.service import servers_of

KERNELS_SCOPE = "custom:studiohub:kernels"
JOBS_PLACEMENT_SCOPE = "custom:studiohub:jobs-placement"
ENDPOINTS_PLACEMENT_SCOPE = "custom:studiohub:endpoints-placement"
#: Each kind of replica group: its scope and who holds it (:mod:`.placement.jobs`).
GROUP_SCOPES = {placement_jobs.JOB: (JOBS_PLACEMENT_SCOPE, "the jobs service"),
                placement_jobs.ENDPOINT: (ENDPOINTS_PLACEMENT_SCOPE, "the models service")}
PREFIX = r"/api/studiohub/users/(?P<user_name>[^/]+)"
#: Largest request body these endpoints read (a choice is a few hundred bytes).
MAX_BODY = 64 * 1024
#: What a server that is changing state is doing, as the 409 says it.
PENDING_WORDS = {"spawn": "starting", "stop": "stopping", "check": "being checked"}


def update_hubapi(c: Config, settings: dict[str, Any]) -> None:
    """Mount the handlers, define the scope, give it to users and their server tokens."""
    from .serving.hubroutes import ROUTES_SCOPE, EndpointRoutesHandler
    from .serving.layout import direct_socket

    kw = {"book_path": str(Path(settings["state_dir"]) / "placements.json")}
    serverapi.install()
    c.JupyterHub.extra_handlers = [
        (rf"{PREFIX}/kernel-options", KernelOptionsHandler, kw),
        (rf"{PREFIX}/kernels", KernelsHandler, kw),
        (rf"{PREFIX}/kernels/(?P<kernel_id>[^/]+)", KernelHandler, kw),
        (rf"{PREFIX}/server-restart", ServerRestartHandler, kw),
        (rf"{PREFIX}/jobs/(?P<job_id>[^/]+)/placement", JobPlacementHandler,
         {**kw, "kind": placement_jobs.JOB}),
        (rf"{PREFIX}/endpoints/(?P<job_id>[^/]+)/placement", JobPlacementHandler,
         {**kw, "kind": placement_jobs.ENDPOINT}),
        (r"/api/studiohub/endpoint-routes", EndpointRoutesHandler,
         {**kw, "direct_socket": str(direct_socket(settings["state_dir"]))}),
    ]
    c.StudioSpawner.placements_file = kw["book_path"]
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), KERNELS_SCOPE: {
        "description": "Place kernels of your own server on an image and size of the "
                       "catalog, and restart your server on another image and size."}}
    c.JupyterHub.custom_scopes[JOBS_PLACEMENT_SCOPE] = {
        "description": "Place and release the replicas of any user's training jobs (the "
                       "jobs service's own role only)."}
    c.JupyterHub.custom_scopes[ENDPOINTS_PLACEMENT_SCOPE] = {
        "description": "Place and release the replicas of any user's model endpoints (the "
                       "models service's own role only)."}
    c.JupyterHub.custom_scopes[ROUTES_SCOPE] = {
        "description": "Route the proxy's /services/models/<endpoint>/ paths to the model "
                       "endpoints' balancer (the models service's own role only)."}
    from .configurer import add_server_token_scope, grant_user_role

    grant_user_role(c, f"{KERNELS_SCOPE}!user")
    add_server_token_scope(c, f"{KERNELS_SCOPE}!user")


def parse_body(raw: bytes, allowed: set[str], limit: int = MAX_BODY) -> dict[str, Any]:
    """A request body as a JSON object of ``allowed`` keys, else :class:`Refused` (4xx).

    Too large a body is a 413 before it is parsed; nesting too deep for the parser
    (``"[" * 100000``) is a 400 like any other invalid JSON, never a 500.
    """
    if len(raw) > limit:
        raise Refused(413, f"request body of {len(raw)} bytes is too large: at most "
                           f"{limit} bytes")
    try:
        data = json.loads(raw or b"{}")
    except RecursionError:
        raise Refused(400, "request body is nested too deeply: send a flat JSON "
                           "object") from None
    except ValueError as e:
        raise Refused(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise Refused(400, "request body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise Refused(400, f"unknown field(s) {', '.join(map(quote_value, unknown[:5]))}; "
                           f"allowed: {', '.join(sorted(allowed))}")
    return data


def parse_check(body: dict[str, Any]) -> bool:
    check = body.pop("check", False)
    if not isinstance(check, bool):
        raise Refused(400, f"check: true (only check the choice) or false, not "
                           f"{quote_value(check)}")
    return check


class StudioHubAPIHandler(APIHandler):
    """Common steps: parse, authorize (the scope for this user, whose server runs)."""

    placer: Placer

    def initialize(self, book_path: str) -> None:
        self.placer = placement.placer(book_path, servers_of(self.users))
        self.placer.start_sweeping()

    def check_xsrf_cookie(self) -> None:
        # Token-authenticated only (browsers reach these through the user's server).
        if self.request.headers.get("Authorization"):
            return
        super().check_xsrf_cookie()

    def owner(self, user_name: str) -> Any:
        """The user (403 without the scope for them, 404 if they do not exist)."""
        if not self.current_user:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if not has_scope(f"{KERNELS_SCOPE}!user={user_name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"this token may not place kernels for "
                                     f"{quote_value(user_name)}: use your hub user name")
        user = self.find_user(user_name)
        if user is None:
            raise serverapi.no_user(user_name)
        return user

    def running_spawner(self, user: Any) -> Any:
        spawner = user.spawners.get("")
        if spawner is None or not spawner.active:
            raise web.HTTPError(409, "your server is not running: start it from the hub home")
        return spawner

    def body(self, allowed: set[str]) -> dict[str, Any]:
        return parse_body(self.request.body, allowed)

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A :class:`Refused` from the placement is answered as it is: status and message."""
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], Refused):
            refused = exc_info[1]
            self.set_status(refused.status)
            self.write_json({"status": refused.status, "message": refused.message},
                            refused.status)
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, Refused):  # an answer, not a failure: one short line
            self.log.warning("%s %s: %s %s", self.request.method, self.request.path[:200],
                             value.status, value.message[:300])
            return
        super().log_exception(typ, value, tb)


def image_model(image: Image) -> dict[str, Any]:
    return {"id": image.id, "label": image.label, "display_name": image.display_name,
            "framework": image.framework, "framework_version": image.framework_version,
            "accelerator": image.accelerator, "kernel_name": contract.kernel_name(image.id),
            "description": image.description}


def size_model(size: Size) -> dict[str, Any]:
    return {"id": size.id, "label": size.display_name, "cpus": size.cpus,
            "memory": size.memory, "gpus": size.gpus}


def choice_model(choice: Choice) -> dict[str, Any]:
    """The answer to a dry run: what would be placed, as the picker shows it."""
    return {"image": choice.image.id, "size": choice.size.id,
            "image_label": choice.image.label, "size_label": choice.size.display_name,
            "kernel_name": contract.kernel_name(choice.image.id)}


class KernelOptionsHandler(StudioHubAPIHandler):
    """What this user may choose, with the reason each unavailable pair is unavailable."""

    async def get(self, user_name: str) -> None:
        user = self.owner(user_name)
        spawner = self.running_spawner(user)
        catalog: Catalog = spawner.catalog
        groups = spawner.groups
        images = catalog.allowed_images(groups)
        sizes = sorted(catalog.allowed_sizes(groups), key=lambda s: (s.gpus, s.cpus, s.memory))
        replacing = self.placer.own(user.name, self.get_argument("replacing", "")[:100])
        self.placer.sweep()
        unavailable = {}
        for image in images:
            for size in sizes:
                why = self.placer.reason(spawner, image, size, excluding=replacing)
                if why:
                    unavailable[f"{image.id}/{size.id}"] = why
        server = spawner.choice.as_options() if getattr(spawner, "choice", None) else \
            dict(spawner.user_options or {})
        self.write_json({"images": [image_model(i) for i in images],
                         "sizes": [size_model(s) for s in sizes],
                         "unavailable": unavailable, "server": server,
                         "placements": [p.id for p in self.placer.book.of_user(user.name)]})


class KernelsHandler(StudioHubAPIHandler):
    """Place one kernel (or, with ``check``, only say whether it would be placed)."""

    async def post(self, user_name: str) -> None:
        user = self.owner(user_name)
        spawner = self.running_spawner(user)
        body = self.body({"kernel_id", "image", "size", "replaces", "check"})
        check = parse_check(body)
        kernel_id = body.get("kernel_id")
        if not (check and kernel_id is None) and not contract.is_kernel_id(kernel_id):
            raise Refused(400, "kernel_id: a kernel's UUID is required")
        choice = placement.choose(spawner, body.get("image"), body.get("size"))
        if check:
            self.placer.check(spawner, user.name, kernel_id, choice, body.get("replaces"))
            self.write_json(choice_model(choice))
            return
        try:
            placed, new = await self.placer.place(spawner, user.name, str(kernel_id), choice,
                                                  body.get("replaces"))
        except OSError as e:
            self.log.error("cgroup for kernel %s of %s: %s", kernel_id, user.name, e)
            raise web.HTTPError(500, "could not create the kernel's cgroup: see the hub log") \
                from None
        if new:
            self.log.info("Placed kernel %s of %s on %s", kernel_id, user.name, choice.label)
        self.write_json(self.answer(spawner, placed), 201 if new else 200)

    def answer(self, spawner: Any, placed: Placement) -> dict[str, Any]:
        catalog: Catalog = spawner.catalog
        image, size = catalog.images.get(placed.image), catalog.sizes.get(placed.size)
        model = describe(placed, image, size)
        model.update(leaf_paths(spawner, placed), env=limits_env(placed, model))
        return model


class KernelHandler(StudioHubAPIHandler):
    async def delete(self, user_name: str, kernel_id: str) -> None:
        user = self.owner(user_name)
        placed = self.placer.book.get(kernel_id)
        if placed is None or placed.user != user.name:
            raise Refused(404, f"no placed kernel {quote_value(kernel_id)} of {user.name}")
        spawner = user.spawners.get("")
        await asyncio.to_thread(self.placer.release, spawner, placed)
        self.set_status(204)
        self.finish()


class ServerRestartHandler(StudioHubAPIHandler):
    """Stop the server and start it again on another image and size (every kernel stops).

    ``{"check": true}`` only answers whether the restart would be accepted (200, or the
    4xx it would get). The Lab extension asks that first and answers its browser before
    it asks for the restart itself, because the restart stops the very server that asks:
    its answer to the browser could not be relied on to get out in time.
    """

    async def post(self, user_name: str) -> None:
        user = self.owner(user_name)
        spawner = self.running_spawner(user)
        body = self.body({"image", "size", "check"})
        check = parse_check(body)
        choice = placement.choose(spawner, body.get("image"), body.get("size"))
        if spawner.pending:
            doing = PENDING_WORDS.get(spawner.pending, spawner.pending)
            raise web.HTTPError(409, f"your server is already {doing}: wait for it")
        # Checked before stopping anything: a refused size must not cost every kernel.
        mine = [p.id for p in self.placer.book.of_user(user.name)]
        self.placer.require_room(spawner, choice, excluding=mine, server_of=user.name)
        pending = f"{self.hub.base_url}spawn-pending/{user.name}"
        answer = {"image": choice.image.id, "size": choice.size.id, "pending_url": pending}
        if check:
            self.write_json(answer)
            return
        self.write_json(answer, 202)
        try:
            stopping = await self.stop_single_user(user, "")
            await stopping  # it can outlast the hub's slow_stop_timeout (10 s)
            await self.spawn_single_user(user, "", options=choice.as_options())
        except Exception:  # answered already: the progress page shows a failed spawn
            self.log.exception("Restarting the server of %s failed", user.name)


class JobPlacementHandler(StudioHubAPIHandler):
    """A group of replicas (a training job's, a model endpoint version's), placed for the
    service that runs them (:mod:`.placement.jobs`); ``kind`` comes from the route."""

    def initialize(self, book_path: str, kind: str = placement_jobs.JOB) -> None:
        super().initialize(book_path)
        self.kind = kind

    def job_owner(self, user_name: str, job_id: str) -> Any:
        scope, holder = GROUP_SCOPES[self.kind]
        if not self.current_user or not has_scope(scope, self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"only {holder} may place {self.kind}s")
        if not placement_jobs.JOB_ID.match(job_id):
            raise Refused(400, f"{self.kind} id {quote_value(job_id)}: 12 lowercase hex "
                               "characters")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {quote_value(user_name)}")
        placement_jobs.restore_gpus(self.placer, user.spawners[""].allocator)
        return user, placement_jobs.JobSite(user.spawners[""], job_id, self.kind)

    async def post(self, user_name: str, job_id: str) -> None:
        user, site = self.job_owner(user_name, job_id)
        body = self.body({"image", "size", "replicas", "check"})
        check = parse_check(body)
        names = body.get("replicas")
        if not isinstance(names, list) or not 0 < len(names) <= placement_jobs.MAX_REPLICAS \
                or len(set(map(str, names))) != len(names) or not all(
                    isinstance(n, str) and placement_jobs.REPLICA.match(n) for n in names):
            raise Refused(400, "replicas: a list of 1 to "
                               f"{placement_jobs.MAX_REPLICAS} distinct names like worker-0")
        choice = placement.choose(site, body.get("image"), body.get("size"))
        if check:
            placement_jobs.check_job(self.placer, site, choice, len(names))
            self.write_json({"ok": True})
            return
        try:
            placed, new = await placement_jobs.place_job(self.placer, site, user.name, job_id,
                                                         choice, names, self.kind)
        except OSError as e:
            self.log.error("cgroups of %s %s of %s: %s", self.kind, job_id, user.name, e)
            raise web.HTTPError(500, f"could not create the {self.kind}'s cgroups: see the "
                                "hub log") from None
        if new:
            self.log.info("Placed %s %s of %s: %d x %s", self.kind, job_id, user.name,
                          len(placed), choice.label)
        catalog: Catalog = site.catalog

        def env(placed_one: Placement) -> dict[str, str]:
            size = catalog.sizes.get(placed_one.size)
            return limits_env(placed_one, {"size_label": size.display_name if size
                                           else placed_one.size})

        self.write_json(placement_jobs.describe_job(site, placed, env), 201 if new else 200)

    async def delete(self, user_name: str, job_id: str) -> None:
        user, site = self.job_owner(user_name, job_id)
        gone = await asyncio.to_thread(placement_jobs.release_job, self.placer, site,
                                       user.name, job_id, self.kind)
        if not gone:
            raise Refused(404, f"no placed {self.kind} {quote_value(job_id)} of {user.name}")
        self.set_status(204)
        self.finish()
