"""Kernels that run on the image and size their notebook chose.

``StudioHubProvisioner`` is the server's default kernel provisioner (the server
extension sets it, see ``StudioHubLab.place_kernels``). Before a StudioHub kernel starts, it
looks up its notebook's choice (:mod:`.choices`); if there is one, the hub places the
kernel (:mod:`.hub`: size checked, GPUs given, a cgroup leaf made) and the kernel
process joins that leaf before it runs a single instruction, with the size's
environment (``CUDA_VISIBLE_DEVICES``, thread counts). Without a choice it is exactly
jupyter_client's ``LocalProvisioner``: the kernel shares the server's size.
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from tornado import web

from studiohub.cgroups import make_join

from . import hub
from .choices import BOOK, KernelChoice
from .errors import LabError

#: Where a refusal is also told to the request whose kernel it was (set by
#: :mod:`.sessions`, whose handlers answer with its status and message).
REFUSALS: ContextVar[list[KernelRefused] | None] = ContextVar("studiohub_refusals",
                                                               default=None)


class StudioHubProvisioner(LocalProvisioner):
    placement: dict[str, Any] | None = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self._private_sockets()
        kwargs = await super().pre_launch(**kwargs)
        env = kwargs.get("env") or {}
        kernel_name = getattr(self.parent, "kernel_name", "") or ""
        if self.placement is not None:  # a restart keeps its image, size and leaf
            choice: KernelChoice | None = KernelChoice(self.placement["image"],
                                                       self.placement["size"])
        else:
            choice = BOOK.for_kernel(env.get("JPY_SESSION_NAME"), kernel_name)
        if choice is not None and choice.saved and hub.switching() == "server" and (
                choice.image, choice.size) != (os.environ.get("STUDIOHUB_IMAGE"),
                                               os.environ.get("STUDIOHUB_SIZE")):
            # Saved elsewhere on another image or size: say why it runs on the server's.
            BOOK.fallbacks[self.kernel_id] = {"image": choice.image, "size": choice.size,
                                              "reason": hub.PER_SERVER}
        if choice is None or not hub.available():
            self.log.debug("Kernel %s runs within the server's size", self.kernel_id)
            return kwargs
        body = {"kernel_id": self.kernel_id, "image": choice.image, "size": choice.size}
        if choice.replaces:
            body["replaces"] = choice.replaces
        try:
            self.placement = await hub.call("POST", "kernels", body)
        except LabError as e:
            if choice.saved:
                # A notebook opened with a choice this user or machine cannot have now:
                # run within the server's size and let the front end offer another.
                BOOK.fallbacks[self.kernel_id] = {"image": choice.image, "size": choice.size,
                                                  "reason": e.message}
                return kwargs
            # A refusal the user can act on, never a hung "Starting" kernel; the refused
            # choice is not tried again by this notebook's next kernel.
            BOOK.forget(env.get("JPY_SESSION_NAME"))
            refused = KernelRefused(e.status, e.message)
            if (told := REFUSALS.get()) is not None:
                told.append(refused)
            raise refused from None
        assert self.placement is not None
        BOOK.placed[self.kernel_id] = self.placement
        self.log.info("Kernel %s placed on %s · %s", self.kernel_id,
                      self.placement["image_label"], self.placement["size_label"])
        kwargs["env"] = {**env, **self.placement["env"]}
        return kwargs

    def _private_sockets(self) -> None:
        """ZMQ over unix sockets in the account's 0700 directory, not localhost TCP ports:
        other local users cannot connect to the kernel at all (not even to IOPub, which
        the message signature does not protect from readers)."""
        sockets = os.environ.get("STUDIOHUB_KERNEL_SOCKETS")
        km = self.parent
        if not sockets or km is None or self.connection_info:
            return  # not StudioHub's hub, or a restart that keeps its connection file
        km.transport = "ipc"
        km.ip = os.path.join(sockets, self.kernel_id[:8])
        km.cache_ports = False

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if self.placement and self.placement.get("procs"):
            kwargs["preexec_fn"] = make_join(self.placement["procs"])
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if restart or self.placement is None:
            return
        self.placement = None
        await release_placement(self.kernel_id)


async def release_placement(kernel_id: str) -> None:
    """Give a placed kernel's size back to the hub (its leaf, memory and GPUs)."""
    if BOOK.placed.pop(kernel_id, None) is None:
        return
    with contextlib.suppress(LabError):
        await hub.call("DELETE", f"kernels/{kernel_id}")


class KernelRefused(web.HTTPError):
    """The hub refused this kernel's placement: the status and message the user acts on
    (answered as they are by :mod:`.sessions` and Jupyter server's kernels API)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, reason=_reason(message), log_message=message)
        self.message = message

    @property
    def log_message(self) -> str:
        """As the hub wrote it: Jupyter server's API errors send this to the user as it
        is (tornado's own doubles each "%" for formatting it never does here)."""
        return self.message


def _reason(message: str) -> str:
    """HTTP reason phrases are one line of Latin-1."""
    return message.replace("\n", " ").encode("latin-1", "replace").decode("latin-1")[:200]
