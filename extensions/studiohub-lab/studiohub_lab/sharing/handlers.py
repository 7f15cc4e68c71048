"""``studiohub/api/v1/sharing/…``: the Lab's calls to the hub's sharing service.

Sharing and publishing read the notebook here (:mod:`.notebooks`); everything else is
forwarded as it came, after the body check every handler shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado import web

from ..base import LabAPIHandler, Route
from ..errors import LabError
from .client import SharingClient
from .notebooks import notebook_name, read_notebook

#: What the Lab may send when sharing or publishing (the notebook is read here).
SHARE_KEYS: dict[str, type] = {"path": str, "domain": str, "include_outputs": bool,
                               "note": str}
VERSION_KEYS: dict[str, type] = {"path": str, "include_outputs": bool, "note": str}
COPY_KEYS: dict[str, type] = {"version": int}
LIST_ARGUMENTS = ("filter", "q", "domain")
#: Share ids are URL-safe base64; nothing else may reach the service's URL.
SHARE_ID = r"(?P<share_id>[A-Za-z0-9_-]{1,64})"
MAX_NOTE = 10_000


def routes(api: str, kw: dict[str, Any]) -> list[Route]:
    return [
        (rf"{api}/sharing/domains", DomainsHandler, kw),
        (rf"{api}/sharing/shares", SharesHandler, kw),
        (rf"{api}/sharing/shares/{SHARE_ID}", ShareHandler, kw),
        (rf"{api}/sharing/shares/{SHARE_ID}/versions", VersionsHandler, kw),
        (rf"{api}/sharing/shares/{SHARE_ID}/copy", CopyHandler, kw),
        (rf"{api}/sharing/recent", RecentHandler, kw),
    ]


def options(body: Mapping[str, Any]) -> dict[str, Any]:
    """``include_outputs`` and ``note`` as the Lab sent them (the service has defaults)."""
    if len(body.get("note") or "") > MAX_NOTE:
        raise LabError(f"note: at most {MAX_NOTE} characters")
    return {k: body[k] for k in ("include_outputs", "note") if k in body}


def list_query(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """The listing's query arguments the service knows, passed through as they came."""
    return {k: arguments[k][-1].decode("utf-8", "replace")[:200]
            for k in LIST_ARGUMENTS if arguments.get(k)}


class SharingHandler(LabAPIHandler):
    max_body = 16 * 1024

    @property
    def client(self) -> SharingClient:
        return SharingClient(parent=self.lab)

    async def read(self, path: str) -> dict[str, Any]:
        return await read_notebook(self.lab.serverapp.contents_manager, path)


class DomainsHandler(SharingHandler):
    """``GET sharing/domains``: where this user can share."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "domains"))


class SharesHandler(SharingHandler):
    """``GET sharing/shares?filter=mine|domains&q=&domain=``; ``POST sharing/shares``
    ``{path, domain, include_outputs?, note?}`` shares the saved notebook at ``path``."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "shares",
                                               query=list_query(self.request.arguments)))

    @web.authenticated
    async def post(self) -> None:
        body = self.body(SHARE_KEYS)
        name = notebook_name(body.get("path"))
        if not body.get("domain"):
            raise LabError("domain: choose one of your domains to share with")
        extra = options(body)
        notebook = await self.read(body["path"])
        forward: dict[str, Any] = {"domain": body["domain"], "name": name,
                                   "notebook": notebook, **extra}
        self.write_json(await self.client.call("POST", "shares", forward), 201)


class ShareHandler(SharingHandler):
    """``GET sharing/shares/<id>`` (with its versions); ``DELETE`` revokes."""

    @web.authenticated
    async def get(self, share_id: str) -> None:
        self.write_json(await self.client.call("GET", f"shares/{share_id}"))

    @web.authenticated
    async def delete(self, share_id: str) -> None:
        self.write_json(await self.client.call("DELETE", f"shares/{share_id}"))


class VersionsHandler(SharingHandler):
    """``POST sharing/shares/<id>/versions`` ``{path, include_outputs?, note?}``: publish
    the saved notebook at ``path`` as the link's new version."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        body = self.body(VERSION_KEYS)
        notebook_name(body.get("path"))
        extra = options(body)
        notebook = await self.read(body["path"])
        forward: dict[str, Any] = {"notebook": notebook, **extra}
        self.write_json(await self.client.call("POST", f"shares/{share_id}/versions",
                                               forward), 201)


class CopyHandler(SharingHandler):
    """``POST sharing/shares/<id>/copy`` ``{version?}``: into this user's home."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        body = self.body(COPY_KEYS)
        self.write_json(await self.client.call("POST", f"shares/{share_id}/copy", body), 201)


class RecentHandler(SharingHandler):
    """``GET sharing/recent``: shares this user opened lately."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "recent"))
