"""The one HTTP client from this server to the hub and its services.

Both the hub's StudioHub API (:mod:`.switching.hub`) and the sharing service
(:mod:`.sharing.client`) are called with this server's own ``$JUPYTERHUB_API_TOKEN``.
Their refusals keep their status and message (a 409 "no room" reaches the user as that
sentence); only a failure or no answer is a 502 (504 when it timed out).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import LabError

#: Longest message of theirs passed on to the browser.
MAX_MESSAGE = 2000


async def call_json(url: str, method: str, token: str, body: Mapping[str, Any] | None = None,
                    *, timeout: float = 30.0, what: str = "the hub",
                    unreachable: str = "try again in a moment") -> Any:
    """``method`` on ``url`` with ``token``; the answer's JSON (or None).

    ``what`` names the other side in messages; ``unreachable`` says what to do when it
    cannot be reached.
    """
    request = HTTPRequest(
        url, method=method, headers={"Authorization": f"token {token}",
                                     "Content-Type": "application/json"},
        body=None if body is None else json.dumps(body),
        allow_nonstandard_methods=True, request_timeout=timeout, follow_redirects=False)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        raise forwarded_error(e, what) from None
    except OSError as e:
        raise LabError(f"cannot reach {what} ({e}): {unreachable}", 502) from None
    try:
        return json.loads(response.body) if response.body else None
    except (ValueError, RecursionError):
        raise LabError(f"{what} answered something that is not JSON", 502) from None


def forwarded_error(error: HTTPClientError, what: str) -> LabError:
    """Their refusal as a :class:`LabError`: 4xx kept with its message, else 502/504."""
    body = error.response.body if error.response is not None else b""
    message = ""
    with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
        message = str(json.loads(body)["message"])[:MAX_MESSAGE]
    if 400 <= error.code < 500:
        return LabError(message or f"{what} refused the request ({error.code} "
                                   f"{error.message})", error.code)
    if error.code == 599:  # tornado's own code for a timeout
        return LabError(f"{what} did not answer in time: try again", 504)
    return LabError(f"{what} failed ({error.code}): {message or error.message}; try "
                    "again, or ask an administrator to look at the hub's log", 502)
