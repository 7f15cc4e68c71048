"""JupyterHub's ``POST /hub/api/users/NAME/server``, with StudioHub's answers first.

JupyterHub answers a start of a running server "already running" before anything of
ours sees the body, and an unknown user (reached with a token for every user, e.g. an
admin's in a root shell where ``$USER`` is ``root``) with a bare 404 whose message is
null. This subclass checks the body against the catalog first (the same 400 naming the
problem and the allowed values as a start gets) and names the user it did not find;
everything else is JupyterHub's own handler. Its default handlers come before
``extra_handlers``, so :func:`install` puts it in their place.
"""

from __future__ import annotations

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

    @needs_scope("start:servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        user = self.find_user(user_name)
        if user is None:
            raise no_user(user_name)
        spawner = user.spawners.get(server_name)
        options = self.get_server_json_body().get("user_options")
        choose = getattr(spawner, "choose", None)
        if options and choose is not None:
            choose(options)  # a SpawnException(400) naming the problem, running or not
        await super().post(user_name, server_name)

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
