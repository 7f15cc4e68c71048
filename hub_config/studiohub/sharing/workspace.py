"""Put a copy of a snapshot into a recipient's workspace, through their own Jupyter server.

The service never writes into anyone's home itself. It asks the recipient's own server
(``PUT /user/<name>/api/contents/<file>`` through the proxy) with the recipient's own
token: the one their browser holds for this service (which may act on their server,
``access:servers!user``) or the one their server sent with an API call. So the copy is
written by the recipient's server process, as their unix account, inside that server's
root directory, under the contents manager's own checks (no hidden files, no path
outside the root). A bug here could at worst write a file the recipient could have
written themselves, and the same code works for Kubernetes, where homes are volumes the
service cannot mount.

The cost: the server must be running. When it is not, the hub answers 424 and we say
so (:class:`ServerNotRunning`), and the preview page offers to start it.

A copy never overwrites a file, also when several are made at once (two tabs, a double
click, a script). The contents API has no "create only if absent" (its ``PUT`` replaces
a file), so the name is reserved here: looking for a free name and writing the copy
happen under one lock per user (:func:`name_lock`), and this one process is the only
writer of copies. What the lock cannot cover is the user creating a file of the same
name by hand in the same instant, between our check and our write.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from .notebooks import title_of

MAX_NAME_ATTEMPTS = 50
STOPPED_STATUS = (424, 503)


class WorkspaceError(RuntimeError):
    """The recipient's server refused or failed the copy; the message says which."""


class ServerNotRunning(WorkspaceError):
    """The recipient has no running server to write the copy."""


@dataclass(frozen=True)
class Workspace:
    """One user's server, as reached through the proxy with that user's token."""

    servers_url: str  # the proxy's address, e.g. http://127.0.0.1:8000
    base_url: str  # the hub's base URL, "/" unless JupyterHub.base_url says otherwise
    user: str
    token: str
    timeout: float = 30.0

    @property
    def user_prefix(self) -> str:
        return f"{self.base_url.rstrip('/')}/user/{quote(self.user, safe='')}"

    @property
    def contents_url(self) -> str:
        return f"{self.servers_url.rstrip('/')}{self.user_prefix}/api/contents"

    def lab_url(self, path: str) -> str:
        """The path (on the hub's host) that opens ``path`` in this user's JupyterLab."""
        return f"{self.user_prefix}/lab/tree/{quote(path)}"

    async def save_copy(self, name: str, notebook: dict[str, Any]) -> str:
        """Save ``notebook`` under a free name derived from ``name``; return that name.

        The name is chosen and written under this user's :func:`name_lock`, so copies
        made at the same time get different names."""
        body = json.dumps({"type": "notebook", "format": "json", "content": notebook})
        async with name_lock(self.user):
            target = await self.free_name(name)
            await self._fetch("PUT", target, body)
        return target

    async def free_name(self, name: str) -> str:
        """``name``, or ``<title>-2.ipynb``, ``-3`` … : a copy never overwrites a file."""
        for candidate in candidate_names(name):
            if not await self._exists(candidate):
                return candidate
        raise WorkspaceError(f"{name} and {MAX_NAME_ATTEMPTS - 1} numbered copies already "
                             "exist in your home: rename some of them")

    async def _exists(self, path: str) -> bool:
        try:
            await self._fetch("GET", path, query="?content=0")
        except HTTPClientError as e:
            if e.code == 404:
                return False
            raise
        return True

    async def _fetch(self, method: str, path: str, body: str | None = None,
                     query: str = "") -> HTTPResponse:
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        request = HTTPRequest(f"{self.contents_url}/{quote(path)}{query}", method=method,
                              body=body, headers=headers, follow_redirects=False,
                              request_timeout=self.timeout)
        try:
            return await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if e.code == 404 and method == "GET":
                raise
            raise _explain(e) from None
        except OSError as e:
            raise WorkspaceError(f"could not reach your server through {self.servers_url}: "
                                 f"{e}") from None


#: The locks of users with a copy in progress (a lock goes once no copy holds it).
_NAME_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def name_lock(user: str) -> asyncio.Lock:
    """The one lock under which ``user``'s copies pick a free name and are written."""
    lock = _NAME_LOCKS.get(user)
    if lock is None:
        lock = _NAME_LOCKS[user] = asyncio.Lock()
    return lock


def candidate_names(name: str) -> list[str]:
    """``a.ipynb``, ``a-2.ipynb``, ``a-3.ipynb`` …"""
    title = title_of(name)
    return [name] + [f"{title}-{n}.ipynb" for n in range(2, MAX_NAME_ATTEMPTS + 1)]


def _explain(error: HTTPClientError) -> WorkspaceError:
    if error.code in STOPPED_STATUS or error.code in (301, 302, 303):
        return ServerNotRunning("your server is not running: start it, then copy again")
    message = ""
    if error.response is not None and error.response.body:
        try:
            message = json.loads(error.response.body).get("message", "")
        except (ValueError, AttributeError):
            message = ""
    return WorkspaceError(f"your server refused the copy ({error.code}"
                          f"{': ' + message if message else ''})")
