"""The browser pages: the preview behind a link, "Copy to my workspace", lists, audit.

No page carries a script (the service's CSP forbids them), so every action is a plain
form: "Copy to my workspace" posts with the hub's XSRF token and answers with a
redirect into the recipient's JupyterLab, opened on the copy.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any
from urllib.parse import quote, urlencode

from tornado import web

from .api import audit_filters, check_auditor, parse_version
from .base import PageHandler
from .config import AUDIT_SCOPE
from .models import event_model, share_model, version_model
from .render import preview_css
from .store import ACTIONS
from .workspace import ServerNotRunning, WorkspaceError


class IndexPage(PageHandler):
    """Shared by me, shared with my domains (searchable), recently opened."""

    @web.authenticated
    def get(self) -> None:
        viewer, store, prefix = self.viewer, self.sharing.store, self.prefix()
        query = self.get_argument("q", "")[:200]
        self.render_page(
            "index.html", query=query,
            mine=[share_model(s, viewer.name, self.sharing, prefix)
                  for s in store.shared_by(viewer.name)],
            others=[share_model(s, viewer.name, self.sharing, prefix)
                    for s in store.shared_with(viewer.domains, viewer.name, query)],
            recent=[share_model(s, viewer.name, self.sharing, prefix)
                    for s, _ in store.recently_opened(viewer.name)
                    if s.revoked is None and (s.author == viewer.name
                                              or s.domain in viewer.domains)],
            auditor=self.has_scope(AUDIT_SCOPE))


class PreviewPage(PageHandler):
    """The read-only preview of one version (the newest unless ``?version=N``)."""

    @web.authenticated
    def get(self, share_id: str) -> None:
        number = parse_version(self.get_argument("version", "latest"))
        share, version = self.sharing.open(self.viewer, share_id, number)
        self.render_page(
            "preview.html", share=share_model(share, self.viewer.name, self.sharing,
                                              self.prefix()),
            version=version_model(version, self.sharing),
            versions=[version_model(v, self.sharing)
                      for v in self.sharing.store.versions(share.id)],
            body=self.sharing.preview(share, version))


class CopyPage(PageHandler):
    """The preview's form: copy, then open the copy in the recipient's JupyterLab."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        number = parse_version(self.get_argument("version", "latest"))
        workspace = self.workspace()
        try:
            path = await self.sharing.copy(self.viewer, share_id, number, workspace)
        except ServerNotRunning as e:
            self.render_error(409, str(e), reason="Start your server first",
                              action_text="Start my server", action_url=self.spawn_url(share_id))
            return
        except WorkspaceError as e:
            raise web.HTTPError(502, str(e)) from None
        self.redirect(workspace.lab_url(path), status=303)

    def spawn_url(self, share_id: str) -> str:
        """The hub's spawn page, coming back to this preview once the server runs."""
        user = quote(self.viewer.name, safe="")
        return (f"{self.hub_auth.hub_prefix}spawn/{user}?"
                + urlencode({"next": self.prefix(f"s/{share_id}")}))


class AuditPage(PageHandler):
    """Who shared, opened, copied, revoked or was refused what, and when."""

    @web.authenticated
    def get(self) -> None:
        check_auditor(self)
        filters = audit_filters(self)
        events = [event_model(e) for e in self.sharing.store.events(**filters)]
        older = {k: v for k, v in self.request.query_arguments.items() if k != "before"}
        self.render_page("audit.html", events=events, filters=filters, actions=ACTIONS,
                         older_query=_older_query(older, events, filters["limit"]))


class CssHandler(PageHandler):
    """The preview's one stylesheet (CSP ``style-src 'self'``), cacheable by URL."""

    async def prepare(self) -> None:
        """Public, like any stylesheet: no need to identify anyone."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/css; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(preview_css())


def css_version() -> str:
    """A short hash of the stylesheet, to put in its URL so a new one is fetched."""
    return sha256(preview_css().encode()).hexdigest()[:12]


def _older_query(query: dict[str, list[bytes]], events: list[dict[str, Any]],
                 limit: int) -> str:
    """The query of the next (older) page, or "" when this page was the last."""
    if len(events) < limit:
        return ""
    args = {k: v[-1].decode() for k, v in query.items()}
    args["before"] = str(events[-1]["id"])
    return urlencode(args)
