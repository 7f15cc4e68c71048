"""Jupyter server's sessions API, answering a kernel the hub refused with the hub's 4xx.

Opening a notebook (``POST /api/sessions``) or changing its kernel (``PATCH
/api/sessions/ID``) starts the kernel inside Jupyter server's handlers, which turn any
failure to start into a 500 or a 501. When the hub refused to place the kernel (no room
left since the picker looked, for instance) that failure is the user's to act on: these
subclasses answer it as the hub did, its status and its message. They take the place of
Jupyter server's own at the same paths (extension routes are matched first).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.services.sessions import handlers as sessions
from tornado import web

from .provisioner import REFUSALS, KernelRefused


class SessionRootHandler(sessions.SessionRootHandler):
    @web.authenticated
    async def post(self) -> None:
        told: list[KernelRefused] = []
        REFUSALS.set(told)
        try:
            await ensure_async(super().post())
        except web.HTTPError:
            if told:
                raise told[-1] from None
            raise


class SessionHandler(sessions.SessionHandler):
    _told: list[KernelRefused] | None = None

    @web.authenticated
    async def patch(self, session_id: str) -> None:
        self._told = []
        REFUSALS.set(self._told)
        await ensure_async(super().patch(session_id))

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # Jupyter server answers a failed kernel change itself (501), without raising.
        if self._told and self.get_status() == 501:
            refused = self._told[-1]
            self.set_status(refused.status_code)
            args = (json.dumps({"message": refused.message, "reason": refused.reason}),)
            kwargs.pop("chunk", None)
        return super().finish(*args, **kwargs)


def session_handlers() -> list[tuple[str, type[web.RequestHandler]]]:
    """Routes for the extension, relative to the server's base URL."""
    return [
        (r"api/sessions", SessionRootHandler),
        (rf"api/sessions/{sessions._session_id_regex}", SessionHandler),
    ]
