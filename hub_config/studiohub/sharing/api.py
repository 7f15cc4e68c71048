"""The REST API under ``<prefix>api/v1/``, used by the JupyterLab panel and by scripts.

| method and path                           | what                                        |
| ----------------------------------------- | ------------------------------------------- |
| ``GET domains``                           | the caller's domains (where they can share) |
| ``GET shares?filter=domains&q=&domain=``  | shared with my domains (by others), search  |
| ``GET shares?filter=mine``                | shared by me, with views, revoked included  |
| ``POST shares``                           | share a notebook: a new link, version 1     |
| ``GET shares/<id>``                       | one share, its versions                     |
| ``DELETE shares/<id>``                    | revoke (author)                             |
| ``POST shares/<id>/versions``             | publish a new version to the link (author)  |
| ``GET shares/<id>/versions/<n|latest>``   | a version's notebook (counts as an open)    |
| ``POST shares/<id>/copy``                 | copy into the caller's workspace            |
| ``GET recent``                            | shares I opened lately                      |
| ``GET audit?share=&user=&action=&before=``| the audit trail (``AUDIT_SCOPE`` holders)   |
"""

from __future__ import annotations

from typing import Any

from tornado import web

from .base import APIHandler, BaseHandler, Model, authenticated
from .config import AUDIT_SCOPE
from .inputs import quoted
from .models import event_model, share_model, version_model
from .store import ACTIONS
from .workspace import ServerNotRunning, WorkspaceError

#: Room in a request body for the keys around the notebook.
BODY_SLACK = 64 * 1024

SHARE: Model = {"domain": (str, True), "name": (str, True), "notebook": (dict, True),
                "include_outputs": (bool, False), "note": (str, False)}
VERSION: Model = {"notebook": (dict, True), "include_outputs": (bool, False),
                  "note": (str, False)}
COPY: Model = {"version": (int, False)}


class NotebookBodyHandler(APIHandler):
    """Handlers that receive a notebook: bodies up to the notebook limit (plus the keys,
    ``sharing.max_notebook_size`` in the settings); every other endpoint reads at most
    :attr:`APIHandler.max_body_bytes`."""

    def body_limit(self) -> int:
        return int(self.sharing.limits.max_notebook_bytes) + BODY_SLACK

    def too_large(self, size: int) -> str:
        limit = self.sharing.limits.max_notebook_bytes
        return (f"request is {size / 2**20:.1f} MiB; notebooks may be at most "
                f"{limit / 2**20:.1f} MiB: clear large outputs, or share without them")


class DomainsHandler(APIHandler):
    @authenticated
    def get(self) -> None:
        names = self.sharing.domain_names
        self.write_json({"domains": [{"id": d, "name": names.get(d, d)}
                                     for d in self.viewer.domains]})


class SharesHandler(NotebookBodyHandler):
    @authenticated
    def get(self) -> None:
        viewer, what = self.viewer, self.get_argument("filter", "domains")
        if what == "mine":
            shares = self.sharing.store.shared_by(viewer.name)
        elif what == "domains":
            domains = viewer.domains
            if self.get_argument("domain", ""):
                domains = [d for d in domains if d == self.get_argument("domain")]
            shares = self.sharing.store.shared_with(domains, viewer.name,
                                                    self.get_argument("q", "")[:200])
        else:
            raise web.HTTPError(400, f"filter {quoted(what)} is not known: use 'mine' or 'domains'")
        self.write_json({"shares": [share_model(s, viewer.name, self.sharing, self.prefix())
                                    for s in shares]})

    @authenticated
    async def post(self) -> None:
        body = self.get_json_body(SHARE)
        share = await self.sharing.share(self.viewer, body["domain"], body["name"],
                                         body["notebook"], body.get("include_outputs", True),
                                         body.get("note", ""))
        self.write_json(share_model(share, share.author, self.sharing, self.prefix()), 201)


class ShareHandler(APIHandler):
    @authenticated
    def get(self, share_id: str) -> None:
        viewer = self.viewer
        share = self.sharing.view(viewer, share_id)
        versions = self.sharing.store.versions(share.id)
        model = share_model(share, viewer.name, self.sharing, self.prefix())
        model["versions"] = [version_model(v, self.sharing) for v in versions]
        self.write_json(model)

    @authenticated
    def delete(self, share_id: str) -> None:
        share = self.sharing.revoke(self.viewer, share_id)
        self.write_json({"id": share.id, "revoked": True})


class VersionsHandler(NotebookBodyHandler):
    @authenticated
    async def post(self, share_id: str) -> None:
        body = self.get_json_body(VERSION)
        version = await self.sharing.publish(self.viewer, share_id, body["notebook"],
                                             body.get("include_outputs", True),
                                             body.get("note", ""))
        self.write_json(version_model(version, self.sharing), 201)


class VersionHandler(APIHandler):
    @authenticated
    def get(self, share_id: str, number: str) -> None:
        share, version = self.sharing.open(self.viewer, share_id, parse_version(number))
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", f'attachment; filename="{share.id}.ipynb"')
        self.finish(self.sharing.notebook_bytes(share, version))  # the stored JSON, as is


class CopyHandler(APIHandler):
    @authenticated
    async def post(self, share_id: str) -> None:
        body = self.get_json_body(COPY) if self.has_body() else {}
        workspace = self.workspace()
        try:
            path = await self.sharing.copy(self.viewer, share_id,
                                           checked_version(body.get("version")), workspace)
        except ServerNotRunning as e:
            raise web.HTTPError(409, str(e)) from None
        except WorkspaceError as e:
            raise web.HTTPError(502, str(e)) from None
        self.write_json({"path": path, "url": workspace.lab_url(path)}, 201)


class RecentHandler(APIHandler):
    @authenticated
    def get(self) -> None:
        viewer = self.viewer
        shares = []
        for share, opened in self.sharing.store.recently_opened(viewer.name):
            if share.revoked is None and (share.author == viewer.name
                                          or share.domain in viewer.domains):
                shares.append({**share_model(share, viewer.name, self.sharing, self.prefix()),
                               "opened": opened.isoformat()})
        self.write_json({"shares": shares})


class AuditHandler(APIHandler):
    @authenticated
    def get(self) -> None:
        check_auditor(self)
        events = self.sharing.store.events(**audit_filters(self))
        self.write_json({"events": [event_model(e) for e in events]})


def check_auditor(handler: BaseHandler) -> None:
    """Only holders of the audit scope (the sharing-auditors role) read the trail."""
    if not handler.has_scope(AUDIT_SCOPE):
        raise web.HTTPError(403, f"the audit trail needs the scope {AUDIT_SCOPE!r}: ask an "
                                 "administrator to add you to the sharing-auditors role")


def audit_filters(handler: web.RequestHandler) -> dict[str, Any]:
    """``share``, ``user``, ``action``, ``before`` and ``limit`` query arguments, checked."""
    action = handler.get_argument("action", "") or None
    if action and action not in ACTIONS:
        raise web.HTTPError(400, f"action {quoted(action)} is not known: use one of "
                                 f"{', '.join(ACTIONS)}")
    return {"share_id": handler.get_argument("share", "") or None,
            "actor": handler.get_argument("user", "") or None, "action": action,
            "before": _int_argument(handler, "before", None),
            "limit": min(_int_argument(handler, "limit", 100) or 100, 1000)}


#: The largest number a version or an audit id may be (the tables' 32-bit integers).
MAX_NUMBER = 2**31 - 1


def _number(text: str, low: int) -> int | None:
    """``text`` as an integer from ``low`` to :data:`MAX_NUMBER`, else None.

    At most ten digits are read, so a huge argument is refused before ``int()`` (whose
    4300-digit limit would be a 500)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    value = int(text)
    return value if low <= value <= MAX_NUMBER else None


def parse_version(number: str) -> int | None:
    """``latest`` or a positive integer, from a URL."""
    if number == "latest":
        return None
    version = _number(number, 1)
    if version is None:
        raise web.HTTPError(400, f"version {number[:20]!r} must be 'latest' or an integer "
                                 f"from 1 to {MAX_NUMBER}")
    return version


def checked_version(value: int | None) -> int | None:
    """A version number from a JSON body, in the range the URL accepts."""
    if value is not None and not 1 <= value <= MAX_NUMBER:
        raise web.HTTPError(400, f"version must be an integer from 1 to {MAX_NUMBER}")
    return value


def _int_argument(handler: web.RequestHandler, name: str, default: int | None) -> int | None:
    # Not stripped: tornado turns control characters into spaces, and "limit=%00" is
    # a bad number, not an absent one.
    value = handler.get_argument(name, "", strip=False)
    if not value:
        return default
    number = _number(value, 0)
    if number is None:
        raise web.HTTPError(400, f"{name} {value[:20]!r} must be an integer from 0 to "
                                 f"{MAX_NUMBER}")
    return number
