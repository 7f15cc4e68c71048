"""The handlers' common ground: JupyterHub authentication, security headers, errors.

- Every handler is :class:`HubOAuthenticated`: a browser is sent through the hub's
  OAuth login and keeps a cookie for this service; a program sends a JupyterHub API
  token (``Authorization: token …``), such as the one a user's server holds.
- Every response carries the Content-Security-Policy of :mod:`.render` (no scripts at
  all), ``nosniff`` and ``no-store``: pages show other people's notebooks.
- API handlers parse a JSON body once, refuse what no later step could handle (nesting
  too deep, lone surrogates: :mod:`.inputs`), and check it against a table of key →
  (type, required) (the habit of JupyterHub's own ``APIHandler``). Each endpoint has
  its own body bound (:attr:`APIHandler.max_body_bytes`, a notebook's for those that
  take one); a larger body is refused with 413 after reading it. Errors are always
  JSON ``{"status", "message"}``; page handlers answer them with a short page.
- User values in refusals, and in the log, are quoted by :func:`.inputs.quoted` (a
  short prefix), and every message is cut at :data:`MAX_MESSAGE_CHARS`.
- When the hub cannot be asked who a request is from (it is down or restarting), the
  answer is 503 :data:`HUB_UNREACHABLE`, not the 500 of JupyterHub's ``HubAuth``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from http.client import responses
from typing import Any, TypeVar, cast

from jupyterhub.services.auth import HubOAuth, HubOAuthenticated
from tornado import web
from tornado.http1connection import HTTP1Connection

from .inputs import InputError, check_body, clipped, quoted
from .render import CONTENT_SECURITY_POLICY
from .service import Sharing, Viewer
from .workspace import Workspace

#: A JSON body's schema: key → (type, required).
Model = Mapping[str, tuple[type, bool]]
TYPE_NAMES = {str: "a string", bool: "true or false", dict: "an object", int: "an integer"}
#: Bodies beyond this are cut off by the HTTP server instead of being read and refused.
MAX_DRAINED_BYTES = 1024 * 1024 * 1024
Method = TypeVar("Method", bound=Callable[..., Any])
INTERNAL_ERROR = ("internal error in the {service} service: an administrator can find the "
                  "details in the hub's log")
HUB_UNREACHABLE = ("the hub is not reachable: try again in a minute (if it lasts, an "
                   "administrator can check that JupyterHub runs)")
#: The longest message an answer or a log line carries (user values are quoted shorter).
MAX_MESSAGE_CHARS = 500
log = logging.getLogger("studiohub.sharing")


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Authentication, the viewer, security headers."""

    #: How an unexpected error names this service ("internal error in the … service").
    service_name = "sharing"

    def initialize(self) -> None:
        self.hub_auth: HubOAuth = self.settings["hub_auth"]

    async def prepare(self) -> None:
        """Identify the user asynchronously (HubAuth's synchronous path blocks the event
        loop for a round trip to the hub on every cache miss); ``current_user`` then
        reads the identity this left on the handler. HubAuth answers a hub it cannot
        reach (or that fails) with a 500: that is a 503 here, saying to wait."""
        await hub_or_503(self.hub_auth.get_user(self, sync=False))

    @property
    def sharing(self) -> Sharing:
        sharing: Sharing = self.settings["sharing"]
        return sharing

    @property
    def viewer(self) -> Viewer:
        """The requesting user and their domains (groups as of the last hub check)."""
        user = self.current_user
        if user is None or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "only JupyterHub users can use notebook sharing")
        return self.sharing.viewer(user["name"], list(user.get("groups") or []))

    def has_scope(self, scope: str) -> bool:
        """Whether the request's token (or cookie) carries ``scope``."""
        return bool(self.current_user) and scope in self.current_user.get("scopes", [])

    def workspace(self) -> Workspace:
        """The requester's own server, reached with the requester's own token."""
        token = self.hub_auth.get_token(self)
        if not token:
            raise web.HTTPError(403, "no token to reach your server: log in again")
        return Workspace(self.settings["servers_url"], self.settings["base_url"],
                         self.viewer.name, token)

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")

    def prefix(self, path: str = "") -> str:
        """A path under this service (``/services/sharing/<path>``)."""
        return str(self.settings["service_prefix"]) + path

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Refusals in one bounded line (tornado's own line repeats the whole message,
        with the request's full URI), under the service's own logger, and only once: the
        request's log line leaves it out (``refusal_logged``); anything else with its
        traceback."""
        if isinstance(value, web.HTTPError):
            self.refusal_logged = True
            logging.getLogger(f"studiohub.{self.service_name}").warning(
                "%d %s %s: %s", value.status_code, self.request.method,
                clipped(self.request.path, 200),
                error_message(value.status_code, (typ, value, tb), self.service_name))
        else:
            super().log_exception(typ, value, tb)


async def hub_or_503(call: Awaitable[Any]) -> Any:
    """``call``'s result; a 503 saying to wait when it failed on the hub's side (5xx)."""
    try:
        return await call
    except web.HTTPError as e:
        if e.status_code >= 500:
            raise web.HTTPError(503, HUB_UNREACHABLE) from None
        raise


def authenticated(method: Method) -> Method:
    """An API method for users only: a 403 saying how to authenticate, never a redirect.

    API handlers stream their body (see :class:`APIHandler`), so this runs after the
    whole body arrived: a refusal never cuts an upload short.
    """
    @functools.wraps(method)
    def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            raise web.HTTPError(403, "authentication required: log in to JupyterHub, or send "
                                     "'Authorization: token <your JupyterHub API token>'")
        if self._body_size > self.body_limit():  # also where no body is read
            raise web.HTTPError(413, self.too_large(self._body_size))
        return method(self, *args, **kwargs)

    return cast(Method, wrapper)


@web.stream_request_body
class APIHandler(BaseHandler):
    """JSON in, JSON out; refusals are ``{"status", "message"}``.

    The body is streamed and counted: up to :meth:`body_limit` bytes are kept, anything
    beyond is read and dropped, and the method answers 413 with a message. (A server
    that stopped reading mid-upload would leave the client, behind the proxy, with a
    bare 400 or 503 instead.) The bound is per endpoint: a copy's ``{"version": n}``
    needs a few bytes, a notebook's endpoints the notebook limit (:mod:`.api`).
    """

    #: Largest body this endpoint reads (a small JSON object, or none at all).
    max_body_bytes = 1024

    def body_limit(self) -> int:
        return self.max_body_bytes

    async def prepare(self) -> None:
        self._body, self._body_size = bytearray(), 0
        if isinstance(self.request.connection, HTTP1Connection):
            self.request.connection.set_max_body_size(MAX_DRAINED_BYTES)
        await super().prepare()

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size <= self.body_limit():
            self._body += chunk
        else:
            self._body = bytearray()

    def too_large(self, size: int) -> str:
        return f"request body is {size} bytes; at most {self.body_limit()} are accepted here"

    def get_json_body(self, model: Model) -> dict[str, Any]:
        """The request's JSON object, checked against ``model``; a 4xx names what is wrong."""
        if self._body_size > self.body_limit():
            raise web.HTTPError(413, self.too_large(self._body_size))
        if not self._body.strip():
            raise web.HTTPError(400, "request body is empty: send a JSON object")
        body = parse_json(bytes(self._body))
        if not isinstance(body, dict):
            raise web.HTTPError(400, f"request body must be a JSON object, not {json_type(body)}")
        check_model(body, model)
        return body

    def has_body(self) -> bool:
        return self._body_size > 0

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = error_message(status_code, kwargs.get("exc_info"), self.service_name)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))


class PageHandler(BaseHandler):
    """HTML pages, rendered from ``templates/`` without any script."""

    def render_page(self, template: str, **kwargs: Any) -> None:
        self.render(template, prefix=self.prefix(), hub_prefix=self.hub_auth.hub_prefix,
                    user=(self.current_user or {}).get("name", ""), when=format_time,
                    **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.render_error(status_code, error_message(status_code, kwargs.get("exc_info"),
                                                     self.service_name))

    def render_error(self, status: int, message: str, reason: str = "",
                     action_text: str = "", action_url: str = "") -> None:
        """The error page: what happened, and at most one thing to do about it."""
        self.set_status(status)
        self.render_page("error.html", status=status, message=message,
                         reason=reason or responses.get(status, "Error"),
                         action_text=action_text, action_url=action_url)


def parse_json(data: bytes) -> Any:
    """The body's JSON; a 400 naming the problem for anything that is not plain JSON.

    Refused too: nesting deeper than any notebook's (``json.loads`` itself raises
    ``RecursionError`` at about a thousand levels), lone surrogates, and NaN/Infinity
    (which Python reads but JSON does not have).
    """
    try:
        body = json.loads(data, parse_constant=_no_constant)
        check_body(body)
    except RecursionError:
        raise web.HTTPError(400, "request body nests too deeply to read: send the notebook "
                                 "as JupyterLab saves it") from None
    except InputError as e:
        raise web.HTTPError(400, str(e)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise web.HTTPError(400, f"request body is not valid JSON: {clipped(str(e), 120)}") \
            from None
    return body


def json_type(value: Any) -> str:
    """What JSON calls ``value``'s type (``array``, ``null`` …), for messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def check_model(body: Mapping[str, Any], model: Model) -> None:
    """Unknown keys, missing keys and wrong types are 400s naming the key."""
    unknown = sorted(set(body) - set(model))
    if unknown:
        named = ", ".join(quoted(k) for k in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise web.HTTPError(400, f"unknown key(s) {named}: allowed keys are "
                                 f"{', '.join(map(repr, model))}")
    for key, (kind, required) in model.items():
        if key not in body:
            if required:
                raise web.HTTPError(400, f"missing key {key!r} ({TYPE_NAMES[kind]})")
            continue
        value = body[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise web.HTTPError(400, f"{key!r} must be {TYPE_NAMES[kind]}, not "
                                     f"{type(value).__name__}")


def format_time(iso: str) -> str:
    """``2026-11-23 14:05 UTC`` from a model's ISO time."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def error_message(status_code: int, exc_info: Any, service: str = "sharing") -> str:
    """The refusal's own message (at most :data:`MAX_MESSAGE_CHARS`); a generic one for
    anything unexpected."""
    error = exc_info[1] if exc_info else None
    message = ""
    if isinstance(error, web.HTTPError):
        message = str(getattr(error, "message", None) or "")
        if not message and error.log_message:
            # Given without args, tornado doubled its ``%`` signs: formatting undoes that.
            message = error.log_message % error.args
    if not message:
        message = INTERNAL_ERROR.format(service=service) if status_code >= 500 \
            else responses.get(status_code, "error")
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS - 1] + "…"
    return message


def request_logger(name: str) -> Callable[[web.RequestHandler], None]:
    """A tornado ``log_function`` for a StudioHub service logging as ``name``: refusals at
    warning level (what an operator looks for), errors at error, the rest at debug; a
    refusal its handler logged with its message is not repeated."""
    def log_request(handler: web.RequestHandler) -> None:
        if getattr(handler, "refusal_logged", False):
            return
        status = handler.get_status()
        level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 \
            else logging.ERROR
        logging.getLogger(name).log(level, "%d %s %s %.1fms", status, handler.request.method,
                                    clipped(handler.request.path, 200),
                                    1000 * handler.request.request_time())
    return log_request
