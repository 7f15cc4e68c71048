"""Routes of per-notebook switching: this server's info, a kernel's placement and usage,
the hub's options, recording a notebook's choice, restarting the server elsewhere.

A switch is: ``GET kernel-options`` (the picker), ``POST kernel-choices`` (recorded
here, shape checked only), then the session's kernel change, whose start the hub
places or refuses (:mod:`.provisioner`, :mod:`.sessions`): one check, the hub's.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from tornado import web

from studiohub import contract

from .._version import __version__
from ..base import LabAPIHandler, Route
from ..errors import LabError
from . import hub
from .choices import KernelChoice
from .info import make_info


def routes(api: str, kw: dict[str, Any]) -> list[Route]:
    return [
        (rf"{api}/info", InfoHandler, kw),
        (rf"{api}/kernels/(?P<kernel_id>[0-9a-f-]{{36}})", KernelHandler, kw),
        (rf"{api}/kernel-options", KernelOptionsHandler, kw),
        (rf"{api}/kernel-choices", KernelChoicesHandler, kw),
        (rf"{api}/server-restart", ServerRestartHandler, kw),
    ]


class InfoHandler(LabAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(make_info(os.environ, __version__))


class KernelHandler(LabAPIHandler):
    """One kernel: where it runs, its live usage, why it last died.

    ``{id, choice: {image, size, image_label, size_label, limits, placed},
    usage: {cpu_percent, memory, memory_limit, gpu_memory}, last_exit, fallback}``
    """

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        report = self.lab.kernel_exits.report(kernel_id)
        if report is None:
            raise LabError(f"no kernel {kernel_id} on this server", 404)
        kernel = self.lab.serverapp.kernel_manager.get_kernel(kernel_id)
        book = self.lab.book
        report.update(book.report(kernel_id, getattr(kernel, "kernel_name", ""), os.environ))
        provisioner = getattr(kernel, "provisioner", None)
        limits = report["choice"]["limits"]
        # A walk of the process tree (and nvidia-smi on GPU hosts), every 2 s per open
        # notebook: off the server's event loop.
        visible = book.placed[kernel_id].get("cuda_visible_devices", "") \
            if report["choice"]["placed"] else os.environ.get("CUDA_VISIBLE_DEVICES", "")
        report["usage"] = await asyncio.to_thread(
            self.lab.usage.measure, kernel_id, getattr(provisioner, "pid", None),
            limits.get("cpus"), limits.get("memory"), visible)
        self.write_json(report)


class KernelOptionsHandler(LabAPIHandler):
    """The hub's images and sizes for this user, what is unavailable and why."""

    @web.authenticated
    async def get(self) -> None:
        replacing = self.get_query_argument("replacing", "")
        query = f"?replacing={replacing}" if contract.is_kernel_id(replacing) else ""
        options = await hub.call("GET", f"kernel-options{query}")
        if isinstance(options, dict):
            self.lab.book.remember_labels(options)
        self.write_json(options)


class KernelChoicesHandler(LabAPIHandler):
    """Record a notebook's new image and size before the front end restarts its kernel.

    ``{path, image, size, replaces?}`` → ``{kernel_name, image, size, image_label,
    size_label}``. Only the shape is checked here (400): whether this user may have the
    choice and whether there is room is the hub's answer when the kernel starts, which
    the session's kernel change answers as the hub worded it. Nothing else changes until
    the kernel restarts.
    """

    max_body = 16 * 1024

    @web.authenticated
    async def post(self) -> None:
        body = self.body({"path": str, "image": str, "size": str, "replaces": str},
                         required=("path", "image", "size"))
        hub.require_switching()
        book = self.lab.book
        path, choice = book.check(body["path"], body["image"], body["size"],
                                  body.get("replaces"))
        if not self.has_kernel(contract.kernel_name(choice.image)):
            await self.why_not(choice)
        book.record(path, choice)
        self.write_json(book.answer(choice))

    def has_kernel(self, name: str) -> bool:
        """Whether this server has the kernel spec ``name``."""
        try:
            return name in self.lab.serverapp.kernel_spec_manager.find_kernel_specs()
        except (OSError, ValueError):
            return False

    async def why_not(self, choice: KernelChoice) -> None:
        """This server cannot start the image's kernel, so no session change could ask
        the hub: ask now, with the hub's dry run, and answer its refusal as worded."""
        body: dict[str, Any] = {"image": choice.image, "size": choice.size, "check": True}
        if choice.replaces:
            body["replaces"] = choice.replaces
        await hub.call("POST", "kernels", body)
        name = contract.kernel_name(choice.image)
        raise LabError(f"image {choice.image!r} has no kernel on this server ({name}): "
                       "choose another image, or ask an administrator to build this one")


class ServerRestartHandler(LabAPIHandler):
    """Restart this whole server on another image and size (every kernel stops).

    The hub checks the choice first (``check: true``), and the browser gets its answer
    (202, or why not) before the hub is asked to restart: the restart stops this very
    server, which could then no longer answer.
    """

    max_body = 16 * 1024

    @web.authenticated
    async def post(self) -> None:
        body = self.body({"image": str, "size": str})
        choice = {"image": body.get("image"), "size": body.get("size")}
        accepted = await hub.call("POST", "server-restart", {**choice, "check": True})
        self.set_status(202)
        await self.finish(json.dumps(accepted))
        try:
            await hub.call("POST", "server-restart", choice)
        except LabError as e:  # the room went since the check: the server stays as it is
            self.log.warning("StudioHub: the hub refused the server restart: %s", e)
