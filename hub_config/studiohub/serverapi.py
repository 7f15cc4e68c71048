"""JupyterHub's ``POST /hub/api/users/NAME/server``, with StudioHub's answers first.

JupyterHub answers a start of a running server "already running" before anything of
ours sees the body, and an unknown user (reached with a token for every user, e.g. an
admin's in a root shell where ``$USER`` is ``root``) with a bare 404 whose message is
null. This subclass checks the body against the catalog first (the same 400 naming the
problem and the allowed values as a start gets, or the 409 of a size too big or an image
not built here) and names the user it did not find; a body that is not JSON is a 400 without
the traceback JupyterHub logs for it;
everything else is JupyterHub's own handler. Its default handlers come before
``extra_handlers``, so :func:`install` puts it in their place.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub import apihandlers
from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .catalog import quote_value


def no_user(user_name: str) -> web.HTTPError:
    """The 404 of a user name the hub does not know."""
    return web.HTTPError(404, f"no user {quote_value(user_name)}: use your hub user name")


class StudioServerAPIHandler(UserServerAPIHandler):
    """Start/stop a server: JupyterHub's, after StudioHub's checks of the request."""

    def get_json_body(self) -> Any:
        """The body as JSON; one that is not is a 400 saying why, logged in one line
        (JupyterHub's own logs it as an error with a traceback)."""
        if not self.request.body:
            return None
        try:
            return json.loads(self.request.body)
        except RecursionError:
            raise web.HTTPError(400, "request body is nested too deeply") from None
        except ValueError as e:
            raise web.HTTPError(400, f"request body is not valid JSON: {e}") from None

    def get_server_json_body(self) -> Any:
        """JupyterHub's, which parses with ``APIHandler.get_json_body`` itself: the body
        is checked here first."""
        self.get_json_body()
        return super().get_server_json_body()

    @needs_scope("start:servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        user = self.find_user(user_name)
        if user is None:
            raise no_user(user_name)
        options = self.get_server_json_body().get("user_options")
        if options:
            self.check_options(user, server_name, options)
        await super().post(user_name, server_name)

    def check_options(self, user: Any, server_name: str, options: dict[str, Any]) -> None:
        """A SpawnException (4xx) naming the problem with ``options``, running or not.

        A user's first start has no spawner yet: the default server's is made here as
        JupyterHub's handler would make it next, so that its first bad request is refused
        here too (a refusal in JupyterHub's ``apply_user_options`` is logged as an error
        with a traceback, though it is the request's fault).
        """
        spawner = user.get_or_create_spawner("", "", replace_failed=True) if not server_name \
            else user.spawners.get(server_name)
        check = getattr(spawner, "check_choice", None) or getattr(spawner, "choose", None)
        if check is not None:
            check(options)

    @needs_scope("delete:servers")
    async def delete(self, user_name: str, server_name: str = "") -> None:
        if self.find_user(user_name) is None:
            raise no_user(user_name)
        await super().delete(user_name, server_name)


def install() -> None:
    """Serve the server API with :class:`StudioServerAPIHandler` (idempotent)."""
    handlers: list[Any] = apihandlers.default_handlers
    for i, (pattern, handler, *rest) in enumerate(handlers):
        if handler is UserServerAPIHandler:
            handlers[i] = (pattern, StudioServerAPIHandler, *rest)
