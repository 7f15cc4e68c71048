"""Jupyter server's sessions API, answering a kernel the hub refused with the hub's 4xx.

Opening a notebook (``POST /api/sessions``) or changing its kernel (``PATCH
/api/sessions/ID``) starts the kernel inside Jupyter server's handlers, which turn any
failure to start into a 500 or a 501. When the hub refused to place the kernel (no room
left, a size this user may not have) that failure is the user's to act on: these
subclasses answer it as the hub did, its status and its message. They take the place of
Jupyter server's own at the same paths (extension routes are matched first).

The refusal travels with the exception itself: the provisioner raises
:class:`~.provisioner.KernelRefused`, which jupyter_client re-raises to the handler, and
Jupyter server wraps (POST) or catches (PATCH) it; :func:`refusal_in` finds it there.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.services.sessions import handlers as sessions
from tornado import web

from .provisioner import KernelRefused


def refusal_in(error: BaseException | None) -> KernelRefused | None:
    """The hub's refusal among ``error`` and the exceptions it was raised from."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KernelRefused):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class SessionRootHandler(sessions.SessionRootHandler):
    @web.authenticated
    async def post(self) -> None:
        try:
            await ensure_async(super().post())
        except web.HTTPError as e:
            refused = refusal_in(e)
            if refused is not None and refused is not e:
                raise refused from None
            raise


class SessionHandler(sessions.SessionHandler):
    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # Jupyter server answers a failed kernel change itself (501) from inside the
        # ``except`` that caught the start's exception: it is still the one handled.
        refused = refusal_in(sys.exc_info()[1]) if self.get_status() == 501 else None
        if refused is not None:
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
