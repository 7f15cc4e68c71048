"""StudioHub's endpoints in the hub's own API: kernel placements and server switches.

They live in the hub process (``JupyterHub.extra_handlers``) rather than in a hub
service because what they decide belongs to the hub: the GPU allocator that spawners
use, the running servers' sizes, and root access to the cgroup tree. A service would
need a second copy of each. Each user's server calls them with its own API token, which
carries :data:`KERNELS_SCOPE` for its owner only (see :func:`update_hubapi`).

    GET    /hub/api/studiohub/users/NAME/kernel-options   images, sizes, what is unavailable and why
                                                          (?replacing=ID: as if ID were gone)
    POST   /hub/api/studiohub/users/NAME/kernels          place a kernel {kernel_id, image, size,
                                                          replaces?}
    DELETE /hub/api/studiohub/users/NAME/kernels/ID       release it
    POST   /hub/api/studiohub/users/NAME/server-restart   restart the server on {image, size}
                                                          (check: true: only say if it would)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web
from traitlets.config import Config

from . import cgroups, gpus, placements
from .catalog import Catalog, ChoiceError, Image, Size
from .envs import kernel_registered
from .paths import system_mode
from .placements import Host, Placement, PlacementBook

KERNELS_SCOPE = "custom:studiohub:kernels"
PREFIX = r"/api/studiohub/users/(?P<user_name>[^/]+)"
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def update_hubapi(c: Config, settings: dict[str, Any]) -> None:
    """Mount the handlers, define the scope, give it to users and their server tokens."""
    kw = {"book_path": str(Path(settings["state_dir"]) / "placements.json")}
    c.JupyterHub.extra_handlers = [
        (rf"{PREFIX}/kernel-options", KernelOptionsHandler, kw),
        (rf"{PREFIX}/kernels", KernelsHandler, kw),
        (rf"{PREFIX}/kernels/(?P<kernel_id>[^/]+)", KernelHandler, kw),
        (rf"{PREFIX}/server-restart", ServerRestartHandler, kw),
    ]
    c.StudioSpawner.placements_file = kw["book_path"]
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), KERNELS_SCOPE: {
        "description": "Place kernels of your own server on an image and size of the "
                       "catalog, and restart your server on another image and size."}}
    from .sharing.config import DEFAULT_SERVER_SCOPES, _grant_user_role

    _grant_user_role(c, f"{KERNELS_SCOPE}!user")
    current = c.Spawner.get("server_token_scopes", DEFAULT_SERVER_SCOPES)
    if isinstance(current, list) and f"{KERNELS_SCOPE}!user" not in current:
        c.Spawner.server_token_scopes = [*current, f"{KERNELS_SCOPE}!user"]


class StudioHubAPIHandler(APIHandler):
    """Common checks: the caller holds the scope for this user, whose server runs."""

    book: PlacementBook

    def initialize(self, book_path: str) -> None:
        self.book = placements.book(book_path)

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
            raise web.HTTPError(403, f"this token may not place kernels for {user_name}")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        return user

    def running_spawner(self, user: Any) -> Any:
        spawner = user.spawners.get("")
        if spawner is None or not spawner.active:
            raise web.HTTPError(409, "your server is not running: start it from the hub home")
        return spawner

    def host(self, spawner: Any) -> Host:
        return Host.detect(len(spawner.allocator.gpus))

    def reserved_memory(self, excluding: Sequence[str] = (), server_of: str = "") -> int:
        """Memory held by running servers (their size) and placed kernels.

        ``excluding``: kernels whose size is being freed; ``server_of``: a user whose
        server is being restarted (its size is freed too).
        """
        held = self.book.reserved_memory(excluding=excluding)
        for user in self.users.values():
            for spawner in user.spawners.values():
                if spawner.active and not (user.name == server_of and spawner.name == ""):
                    held += server_memory(spawner)
        return held

    def reason(self, spawner: Any, image: Image, size: Size, excluding: Sequence[str] = (),
               server_of: str = "") -> str | None:
        """Why ``size`` cannot run ``image`` now, counting what is being replaced as free."""
        if not kernel_registered(image.id):
            return (f"{image.label} is not built on this machine: ask an administrator to "
                    f"run `studiohub env build {image.id}`")
        holders = [p.gpu_holder for p in map(self.book.get, excluding) if p]
        if server_of:
            holders.append(spawner.gpu_holder)
        # What those holders hold now (a GPU taken over by a switch is counted once).
        freed_gpus = len({g.id for h in holders for g in spawner.allocator.held_by(h)})
        return placements.unavailable_reason(
            image, size, self.host(spawner),
            reserved_memory=self.reserved_memory(excluding, server_of),
            free_gpus=len(spawner.allocator.free_gpus()) + freed_gpus,
            overcommit=float(getattr(spawner, "memory_overcommit", 1.0)))

    def require_room(self, spawner: Any, choice: Any, excluding: Sequence[str] = (),
                     server_of: str = "") -> None:
        """A 409 saying why, when this machine cannot run the choice now."""
        why = self.reason(spawner, choice.image, choice.size, excluding, server_of)
        if why:
            raise web.HTTPError(409, f"{choice.size.display_name} cannot run "
                                     f"{choice.image.label} now: {why}")

    def choice(self, spawner: Any, body: dict[str, Any]) -> Any:
        """The catalog's verdict on ``{image, size}``, both required (400 otherwise)."""
        missing = [k for k in ("image", "size") if not isinstance(body.get(k), str)]
        if missing:
            raise web.HTTPError(400, f"{' and '.join(missing)} required: give the image and "
                                     "the size by id")
        try:
            return spawner.catalog.choose(spawner.groups, {"image": body["image"],
                                                           "size": body["size"]})
        except ChoiceError as e:
            raise web.HTTPError(400, str(e)) from None

    def own(self, user_name: str, kernel_id: Any) -> list[str]:
        """``[kernel_id]`` if it is a placed kernel of this user (its size is being freed)."""
        placement = self.book.get(str(kernel_id or ""))
        return [placement.kernel_id] if placement and placement.user == user_name else []

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def body(self, allowed: set[str]) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, f"request body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise web.HTTPError(400, f"unknown field(s) {', '.join(unknown)}; allowed: "
                                     f"{', '.join(sorted(allowed))}")
        return data


def server_memory(spawner: Any) -> int:
    """The memory a running server's size holds (0 when unknown)."""
    choice = getattr(spawner, "choice", None)
    if choice is not None:
        return int(choice.size.memory)
    size_id = (spawner.user_options or {}).get("size")
    catalog: Catalog | None = getattr(spawner, "catalog", None)
    size = catalog.sizes.get(size_id) if catalog and isinstance(size_id, str) else None
    return size.memory if size else 0


def image_model(image: Image) -> dict[str, Any]:
    return {"id": image.id, "label": image.label, "display_name": image.display_name,
            "framework": image.framework, "framework_version": image.framework_version,
            "accelerator": image.accelerator, "kernel_name": f"studiohub-{image.id}",
            "description": image.description}


def size_model(size: Size) -> dict[str, Any]:
    return {"id": size.id, "label": size.display_name, "cpus": size.cpus,
            "memory": size.memory, "gpus": size.gpus}


class KernelOptionsHandler(StudioHubAPIHandler):
    """What this user may choose, with the reason each unavailable pair is unavailable."""

    async def get(self, user_name: str) -> None:
        user = self.owner(user_name)
        spawner = self.running_spawner(user)
        catalog: Catalog = spawner.catalog
        groups = spawner.groups
        images = catalog.allowed_images(groups)
        sizes = sorted(catalog.allowed_sizes(groups), key=lambda s: (s.gpus, s.cpus, s.memory))
        replacing = self.own(user.name, self.get_argument("replacing", ""))
        unavailable = {}
        for image in images:
            for size in sizes:
                why = self.reason(spawner, image, size, excluding=replacing)
                if why:
                    unavailable[f"{image.id}/{size.id}"] = why
        server = spawner.choice.as_options() if getattr(spawner, "choice", None) else \
            dict(spawner.user_options or {})
        self.write_json({"images": [image_model(i) for i in images],
                         "sizes": [size_model(s) for s in sizes],
                         "unavailable": unavailable, "server": server,
                         "placements": [p.kernel_id for p in self.book.of_user(user.name)]})


class KernelsHandler(StudioHubAPIHandler):
    """Place one kernel: validate, check room, take GPUs, make its cgroup leaf."""

    async def post(self, user_name: str) -> None:
        user = self.owner(user_name)
        spawner = self.running_spawner(user)
        body = self.body({"kernel_id", "image", "size", "replaces"})
        kernel_id = str(body.get("kernel_id", ""))
        if not KERNEL_ID.match(kernel_id):
            raise web.HTTPError(400, "kernel_id: a kernel's UUID is required")
        choice = self.choice(spawner, body)
        existing = self.book.get(kernel_id)
        if existing is not None and existing.user != user.name:
            raise web.HTTPError(409, f"kernel {kernel_id} belongs to someone else")
        if existing is not None and (existing.image, existing.size) == (choice.image.id,
                                                                         choice.size.id):
            self.write_json(self.answer(spawner, existing))  # a restart: same leaf
            return
        if existing is not None:
            await asyncio.to_thread(release, spawner, self.book, existing)
        replaced = self.own(user.name, body.get("replaces"))
        most = int(getattr(spawner, "max_placed_kernels", 16))
        if len([p for p in self.book.of_user(user.name) if p.kernel_id not in replaced]) >= most:
            raise web.HTTPError(409, f"you already run {most} kernels on sizes of their own: "
                                     "shut one down (Kernel > Shut Down Kernel) and try again")
        self.require_room(spawner, choice, excluding=replaced)
        holder = f"{user.name}/kernel/{kernel_id}"
        # The kernel being replaced stops once this one starts: its GPUs may be taken over.
        takeover = [p.gpu_holder for p in map(self.book.get, replaced) if p is not None]
        try:
            held = spawner.allocator.allocate(holder, choice.size.gpus, takeover=takeover)
        except gpus.NoGpuFree as e:
            raise web.HTTPError(409, str(e)) from None
        placement = Placement(user.name, kernel_id, spawner.cgroup, choice.image.id,
                              choice.size.id, choice.size.cpus, choice.size.memory,
                              tuple(g.id for g in held))
        self.book.add(placement)  # before any await: a concurrent placement counts it
        try:
            await asyncio.to_thread(make_leaf, spawner, placement)
        except OSError as e:
            self.book.remove(kernel_id)
            give_back(spawner, self.book, spawner.allocator.free(holder))
            self.log.error("cgroup for kernel %s of %s: %s", kernel_id, user.name, e)
            raise web.HTTPError(500, "could not create the kernel's cgroup: see the hub log") \
                from None
        self.log.info("Placed kernel %s of %s on %s", kernel_id, user.name, choice.label)
        self.write_json(self.answer(spawner, placement), 201)

    def answer(self, spawner: Any, placement: Placement) -> dict[str, Any]:
        catalog: Catalog = spawner.catalog
        image, size = catalog.images.get(placement.image), catalog.sizes.get(placement.size)
        model = placements.describe(placement, image, size)
        procs: list[str] = []
        memory_dir = ""
        if placement.cgroup:
            tree = cgroups.Cgroups(spawner.caps, spawner.cgroup_root)
            procs = tree.procs_files(placement.cgroup, placement.leaf)
            dirs = tree.leaf_dirs(placement.cgroup, placement.leaf)
            memory_dir = str(dirs.get(cgroups.UNIFIED) or dirs.get("memory") or "")
        model.update(procs=procs, memory_cgroup=memory_dir, cgroup_version=spawner.caps.version,
                     env=placements.limits_env(placement, model))
        return model


def make_leaf(spawner: Any, placement: Placement) -> None:
    """The kernel's cgroup leaf with its size's limits, movable-into by the user only."""
    if not placement.cgroup:
        return
    caps = spawner.caps
    tree = cgroups.Cgroups(caps, spawner.cgroup_root)
    settings = cgroups.make_settings(caps, placement.cpus, placement.memory, spawner.pids_limit)
    tree.remove_leaf(placement.cgroup, placement.leaf)
    tree.ensure_leaf(placement.cgroup, placement.leaf, settings)
    if system_mode():
        account = spawner.account
        tree.delegate(placement.cgroup, account.pw_uid, account.pw_gid, placement.leaf)


def release(spawner: Any, book: PlacementBook, placement: Placement) -> None:
    """Kill what is left in the kernel's leaf, remove it, free its GPUs, forget it."""
    if placement.cgroup:
        cgroups.Cgroups(spawner.caps, spawner.cgroup_root).remove_leaf(placement.cgroup,
                                                                        placement.leaf)
    book.remove(placement.kernel_id)
    give_back(spawner, book, spawner.allocator.free(placement.gpu_holder))


def give_back(spawner: Any, book: PlacementBook, freed: Sequence[gpus.Gpu]) -> None:
    """Freed GPUs a booked kernel still uses go back to it.

    A switch's new kernel takes over the GPUs of the kernel it replaces; if the new one
    goes first (it failed, or was stopped while the old one still runs), they are the
    old one's again, never free for someone else.
    """
    for other in book.all():
        back = [g.id for g in freed if g.id in other.gpus]
        if back:
            spawner.allocator.reserve(other.gpu_holder, back)


class KernelHandler(StudioHubAPIHandler):
    async def delete(self, user_name: str, kernel_id: str) -> None:
        user = self.owner(user_name)
        placement = self.book.get(kernel_id)
        if placement is None or placement.user != user.name:
            raise web.HTTPError(404, f"no placed kernel {kernel_id} of {user.name}")
        spawner = user.spawners.get("")
        if spawner is None:
            self.book.remove(kernel_id)
            gpus.shared_allocator().free(placement.gpu_holder)
        else:
            await asyncio.to_thread(release, spawner, self.book, placement)
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
        check = body.pop("check", False)
        if not isinstance(check, bool):
            raise web.HTTPError(400, "check: true (only check the choice) or false")
        choice = self.choice(spawner, body)
        if spawner.pending:
            raise web.HTTPError(409, f"your server is already {spawner.pending}ing: wait for it")
        # Checked before stopping anything: a refused size must not cost every kernel.
        mine = [p.kernel_id for p in self.book.of_user(user.name)]
        self.require_room(spawner, choice, excluding=mine, server_of=user.name)
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

