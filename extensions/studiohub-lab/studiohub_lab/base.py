"""What every handler of the extension shares: JSON ``{status, message}`` errors and the
one check of a request's JSON body.

A body is parsed once, bounded in size (413) and depth (400), and its keys and types
are checked against the handler's table (400 naming the key). A bad value is quoted by a
short prefix only (:func:`quoted`), so no request makes an answer or a log line large.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from http import HTTPStatus
from typing import Any, cast

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from .errors import LabError

#: Bodies larger than this are refused (413) unless a handler allows more.
MAX_BODY = 64 * 1024
#: Deepest nesting of arrays and objects a body may have.
MAX_DEPTH = 32
#: Characters of a bad value quoted back in an answer.
QUOTE_CHARS = 60


def quoted(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long the value was."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}…{size}"


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = [*item.keys(), *item.values()]
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def bad_text(value: Any) -> str | None:
    """The first string in ``value`` (keys included) that is not Unicode text: a lone
    surrogate (``"\\ud800"`` in JSON) names no file and cannot be sent on as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
    return None


def parse_body(raw: bytes, limit: int = MAX_BODY, max_depth: int = MAX_DEPTH
               ) -> dict[str, Any]:
    """A request body as a JSON object ({} when empty), or the LabError saying why not."""
    if len(raw) > limit:
        raise LabError(f"request body is {len(raw)} bytes; at most {limit} are accepted "
                       "here", 413)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise LabError(f"request body nests too deeply: at most {max_depth} levels of "
                       "arrays and objects") from None
    except ValueError as e:
        raise LabError(f"request body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(body, dict):
        raise LabError("request body must be a JSON object")
    if depth(body) > max_depth:
        raise LabError(f"request body nests too deeply: at most {max_depth} levels of "
                       "arrays and objects")
    text = bad_text(body)
    if text is not None:
        raise LabError(f"request body has a string that is not Unicode text (a lone "
                       f"surrogate) in {quoted(text.encode('utf-8', 'backslashreplace'))}: "
                       "send valid UTF-8")
    return body


def check_fields(body: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]],
                 required: Collection[str] = ()) -> dict[str, Any]:
    """``body`` with only ``fields`` (key → type), the ``required`` ones present.

    Unknown keys, missing keys and wrong types are 400s naming the key; ``null`` counts
    as absent. Booleans are not integers here.
    """
    unknown = sorted(set(body) - set(fields))
    if unknown:
        names = ", ".join(quoted(k, 30).strip("'") for k in unknown[:5])
        raise LabError(f"unknown field(s) {names}: send {', '.join(fields)}")
    present = {k: v for k, v in body.items() if v is not None}
    for key in required:
        if key not in present:
            raise LabError(f"{key}: required (send {', '.join(fields)})")
    for key, value in present.items():
        kind = fields[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise LabError(f"{key} must be {names}, not {type(value).__name__}")
    return present


class LabHandlerMixin:
    """Errors as JSON ``{status, message}``: :class:`LabError` keeps its status and
    message, ``HTTPError`` its message, anything else is a 500 that names no internals."""

    lab: Any  # the StudioHubLab app (typed loosely: app.py imports the handlers)

    def initialize(self, lab: Any) -> None:
        self.lab = lab

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler = cast(JupyterHandler, self)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabError):
            status_code, message = exc.status, exc.message
            handler.set_status(status_code)
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "internal error in the StudioHub server extension: see the server log"
        else:
            message = HTTPStatus(status_code).phrase
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"status": status_code, "message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, LabError):
            handler = cast(JupyterHandler, self)
            handler.log.warning("%s %s: %s", handler.request.method, value.status,
                                value.message[:500])
        else:
            super().log_exception(typ, value, tb)  # type: ignore[misc]


class LabAPIHandler(LabHandlerMixin, APIHandler):
    """A JSON API handler: ``body(fields)`` is the one way to read a request body."""

    #: Largest body this handler accepts (413 beyond).
    max_body = MAX_BODY

    def body(self, fields: Mapping[str, type | tuple[type, ...]],
             required: Collection[str] = ()) -> dict[str, Any]:
        """The request's JSON object, checked against ``fields`` (see :func:`check_fields`)."""
        return check_fields(parse_body(self.request.body or b"", self.max_body), fields,
                            required)

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))


Route = tuple[str, type[web.RequestHandler], dict[str, Any]]
