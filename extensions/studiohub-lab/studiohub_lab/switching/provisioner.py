"""Kernels that run on the image and size their notebook chose.

``StudioHubProvisioner`` is the server's default kernel provisioner (the server
extension sets it, see ``StudioHubLab.place_kernels``). Before a StudioHub kernel starts, it
looks up its notebook's choice in the server's :class:`~.choices.ChoiceBook`; if there
is one, the hub places the kernel (:mod:`.hub`: the one check of the choice, GPUs given,
a cgroup leaf made) and the kernel process joins that leaf before it runs a single
instruction, with the size's environment (``CUDA_VISIBLE_DEVICES``, thread counts).
Without a choice it is jupyter_client's ``LocalProvisioner``: the kernel shares the
server's size. Either way the kernel talks ZMQ over unix sockets only
(:mod:`.kernel_launcher`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from tornado import web

from studiohub import contract
from studiohub.cgroups import make_join

from ..errors import LabError
from . import hub
from .choices import ChoiceBook, KernelChoice, book_of
from .kernel_launcher import launcher_command


class StudioHubProvisioner(LocalProvisioner):
    placement: dict[str, Any] | None = None

    @property
    def book(self) -> ChoiceBook:
        """The server's book (an empty one outside a StudioHub server: nothing placed)."""
        found = book_of(self.parent)
        if found is None:
            found = self._own_book = getattr(self, "_own_book", None) or ChoiceBook()
        return found

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        private = self._private_sockets()
        kwargs = await super().pre_launch(**kwargs)
        if private:
            kwargs["cmd"] = launcher_command(kwargs["cmd"])
        env = kwargs.get("env") or {}
        choice = self._choice(env.get("JPY_SESSION_NAME"))
        if choice is None or not hub.available():
            self.log.debug("Kernel %s runs within the server's size", self.kernel_id)
            return kwargs
        self.placement = await self._place(choice, env.get("JPY_SESSION_NAME"))
        if self.placement is None:
            return kwargs
        self.book.placed[self.kernel_id] = self.placement
        self.log.info("Kernel %s placed on %s · %s", self.kernel_id,
                      self.placement["image_label"], self.placement["size_label"])
        kwargs["env"] = {**env, **self.placement["env"]}
        return kwargs

    def _choice(self, session_name: str | None) -> KernelChoice | None:
        """This kernel's choice: its placement's on a restart, else its notebook's."""
        if self.placement is not None:  # a restart keeps its image, size and leaf
            return KernelChoice(self.placement["image"], self.placement["size"])
        kernel_name = getattr(self.parent, "kernel_name", "") or ""
        choice = self.book.for_kernel(session_name, kernel_name)
        server = contract.read_server_env()
        if choice is not None and choice.saved and hub.switching() == contract.SWITCH_SERVER \
                and (choice.image, choice.size) != (server.image, server.size):
            # Saved elsewhere on another image or size: say why it runs on the server's.
            self.book.fallbacks[self.kernel_id] = {"image": choice.image, "size": choice.size,
                                                   "reason": hub.PER_SERVER}
        return choice

    async def _place(self, choice: KernelChoice, session_name: str | None
                     ) -> dict[str, Any] | None:
        """The hub's placement: the one check of the choice. A refused saved choice runs
        within the server's size (None); a refused new one is a :class:`KernelRefused`."""
        body = {"kernel_id": self.kernel_id, "image": choice.image, "size": choice.size}
        if choice.replaces:
            body["replaces"] = choice.replaces
        try:
            placement: dict[str, Any] = await hub.call("POST", "kernels", body)
        except LabError as e:
            if choice.saved:
                # A notebook opened with a choice this user or machine cannot have now:
                # run within the server's size and let the front end offer another.
                self.book.fallbacks[self.kernel_id] = {"image": choice.image,
                                                       "size": choice.size,
                                                       "reason": e.message}
                return None
            # A refusal the user can act on, never a hung "Starting" kernel; the refused
            # choice is not tried again by this notebook's next kernel.
            self.book.forget(session_name)
            raise KernelRefused(e.status, e.message) from None
        return placement

    def _private_sockets(self) -> bool:
        """ZMQ over unix sockets in the account's 0700 directory, not localhost TCP ports:
        other local users cannot connect to the kernel at all (not even to IOPub, which
        the message signature does not protect from readers). True when set up."""
        sockets = contract.read_server_env().kernel_sockets
        km = self.parent
        if not sockets or km is None:
            return False
        if self.connection_info:
            return True  # a restart that keeps its connection file (already ipc)
        km.transport = "ipc"
        km.ip = os.path.join(sockets, self.kernel_id[:8])
        km.cache_ports = False
        return True

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if self.placement and self.placement.get("procs"):
            kwargs["preexec_fn"] = make_join(self.placement["procs"])
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if restart or self.placement is None:
            return
        self.placement = None
        await release_placement(self.book, self.kernel_id)


async def release_placement(book: ChoiceBook, kernel_id: str) -> None:
    """Give a placed kernel's size back to the hub (its leaf, memory and GPUs)."""
    if book.placed.pop(kernel_id, None) is None:
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
