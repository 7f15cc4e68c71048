"""What the sharing service does, apart from HTTP: share, publish, view, copy, revoke.

Handlers (:mod:`.api`, :mod:`.pages`) authenticate and parse; this module decides and
records. Every decision that refuses raises :class:`~.access.Refusal` (a 4xx), and
every access to a link, allowed or refused (403, 404, 410), lands in the audit trail.

A new version is prepared (validated, snapshotted, rendered) in a worker thread, then
written in one step with no ``await`` between reading the share and storing the
version, so two publications in this one-process service cannot take the same number;
the database's unique (share, number) constraint guards the rest. Files are written
before the row that points at them and removed again if the row is refused: a version
in the database always has its files.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from ..catalog import Catalog
from ..db import utcnow
from . import access
from .access import REVOKED, Refusal
from .notebooks import (
    Environment,
    NotebookError,
    check_name,
    check_note,
    environment_of,
    make_snapshot,
    parse_notebook,
    serialize,
)
from .render import render_fragment
from .snapshots import SnapshotFiles, is_share_id
from .store import Share, Store, Version
from .workspace import Workspace

In = TypeVar("In")
Out = TypeVar("Out")
#: Refusals of access to an existing link, kept in the audit trail (bad input is not).
AUDITED_REFUSALS = (403, 404, 410)


@dataclass(frozen=True)
class Limits:
    """What one user may store; each refusal names the limit and what to do."""

    max_notebook_bytes: int = 16 * 1024 * 1024
    max_shares_per_user: int = 200
    max_versions_per_share: int = 50


@dataclass(frozen=True)
class Prepared:
    """A version ready to store: the snapshot's bytes, its preview, its environment."""

    notebook: bytes
    preview: str
    environment: Environment


@dataclass(frozen=True)
class Viewer:
    """The user making a request, with the domains their groups give them."""

    name: str
    domains: list[str]


class Sharing:
    """The service's state: store, snapshot files, limits and the catalog's domains."""

    def __init__(self, store: Store, files: SnapshotFiles, limits: Limits,
                 catalog: Catalog | None = None) -> None:
        self.store, self.files, self.limits, self.catalog = store, files, limits, catalog
        self.domain_names = access.domain_names(catalog)

    def viewer(self, name: str, groups: list[str]) -> Viewer:
        return Viewer(name, access.user_domains(groups, self.catalog))

    # --- sharing and publishing --------------------------------------------------------------

    async def share(self, viewer: Viewer, domain: str, name: str, notebook: dict[str, Any],
                    include_outputs: bool, note: str) -> Share:
        """A new share of ``notebook`` with ``domain``: version 1 at a new, unguessable link."""
        access.check_can_share_to(domain, viewer.domains)
        name, note = _checked(check_name, name), _checked(check_note, note)
        prepared = await self._prepare(notebook, include_outputs)
        if self.store.count_active(viewer.name) >= self.limits.max_shares_per_user:
            raise Refusal(403, f"you already have {self.limits.max_shares_per_user} shared "
                               "notebooks, the most allowed: revoke one you no longer need")
        now = utcnow()
        share = Share(secrets.token_urlsafe(16), viewer.name, domain, name, now, now, 1, 0, None)
        version = _version(1, note, include_outputs, prepared)
        self.files.write(share.id, 1, prepared.notebook, prepared.preview)
        try:
            self.store.create_share(share, version)
        except Exception:
            self.files.remove_share(share.id)
            raise
        self.store.record(viewer.name, "share", share.id, 1, _detail(domain, include_outputs))
        return share

    async def publish(self, viewer: Viewer, share_id: str, notebook: dict[str, Any],
                      include_outputs: bool, note: str) -> Version:
        """A new version at the same link; only the author, still a member of the domain."""
        with self.audited(viewer, share_id):
            share = self.check_view(viewer, share_id)
            access.check_is_author(share, viewer.name)
            access.check_can_share_to(share.domain, viewer.domains)
            note = _checked(check_note, note)
            prepared = await self._prepare(notebook, include_outputs)
            current = self.check_view(viewer, share_id)  # revoked while we rendered?
            number = current.latest_version + 1
            if number > self.limits.max_versions_per_share:
                raise Refusal(403, f"this link already has {self.limits.max_versions_per_share}"
                                   " versions, the most allowed: share it as a new link")
            version = _version(number, note, include_outputs, prepared)
            self.files.write(share_id, number, prepared.notebook, prepared.preview)
            try:
                self.store.add_version(share_id, version)
            except IntegrityError:
                self.files.remove_version(share_id, number)
                raise Refusal(409, "another version was published at the same time: try "
                                   "again") from None
        self.store.record(viewer.name, "version", share_id, number,
                          _detail(share.domain, include_outputs))
        return version

    async def _prepare(self, notebook: dict[str, Any], include_outputs: bool) -> Prepared:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, prepare, notebook, include_outputs,
                                          self.limits.max_notebook_bytes)

    # --- viewing, copying, revoking ----------------------------------------------------------

    @contextmanager
    def audited(self, viewer: Viewer, share_id: str) -> Iterator[None]:
        """Record an access refusal (403, 404, 410) of ``share_id`` in the audit trail."""
        try:
            yield
        except Refusal as e:
            if e.status_code in AUDITED_REFUSALS:
                # An id from a URL may hold anything (NUL, which PostgreSQL refuses).
                recorded = share_id if is_share_id(share_id) else ascii(share_id[:40])
                self.store.record(viewer.name, "refuse", recorded, None,
                                  f"{e.status_code}: {e.message}")
            raise

    def check_view(self, viewer: Viewer, share_id: str) -> Share:
        """The share if ``viewer`` may see it (callers record refusals with :meth:`audited`).

        An id the service could not have made is unknown without asking the database."""
        share = self.store.share(share_id) if is_share_id(share_id) else None
        return access.check_can_view(share, viewer.name, viewer.domains, self.domain_names)

    def view(self, viewer: Viewer, share_id: str) -> Share:
        """:meth:`check_view`, audited: a share's details, not counted as an open."""
        with self.audited(viewer, share_id):
            return self.check_view(viewer, share_id)

    def pick_version(self, share: Share, number: int | None) -> Version:
        version = self.store.version(share.id, share.latest_version if number is None else number)
        if version is None:
            raise Refusal(404, f"version {number} does not exist: this link has versions "
                               f"1 to {share.latest_version}")
        return version

    def open(self, viewer: Viewer, share_id: str, number: int | None) -> tuple[Share, Version]:
        """Check, pick the version, count the view (not the author's own), record it."""
        with self.audited(viewer, share_id):
            share = self.check_view(viewer, share_id)
            version = self.pick_version(share, number)
        if viewer.name != share.author:
            self.store.count_views(share.id)
        self.store.record(viewer.name, "open", share.id, version.number)
        return share, version

    def notebook_bytes(self, share: Share, version: Version) -> bytes:
        """The snapshot as stored (a revocation may have removed it since the check)."""
        try:
            return self.files.read_notebook(share.id, version.number)
        except FileNotFoundError:
            raise Refusal(410, REVOKED) from None

    def preview(self, share: Share, version: Version) -> str:
        try:
            return self.files.read_preview(share.id, version.number)
        except FileNotFoundError:
            raise Refusal(410, REVOKED) from None

    async def copy(self, viewer: Viewer, share_id: str, number: int | None,
                   workspace: Workspace) -> str:
        """Save the version into the viewer's workspace; the file name it got."""
        with self.audited(viewer, share_id):
            share = self.check_view(viewer, share_id)
            version = self.pick_version(share, number)
        notebook = json.loads(self.notebook_bytes(share, version))
        path = await workspace.save_copy(share.name, notebook)
        self.store.record(viewer.name, "copy", share.id, version.number, f"saved as {path}")
        return path

    def revoke(self, viewer: Viewer, share_id: str) -> Share:
        """Stop the link for everyone and delete its snapshots; the audit trail stays."""
        with self.audited(viewer, share_id):
            share = self.check_view(viewer, share_id)
            access.check_is_author(share, viewer.name)
        self.store.revoke(share.id)
        self.files.remove_share(share.id)
        self.store.record(viewer.name, "revoke", share.id, share.latest_version)
        return share


def prepare(data: dict[str, Any], include_outputs: bool, max_bytes: int) -> Prepared:
    """Validate, snapshot, size-check and render (CPU work, run in a worker thread)."""
    snapshot = make_snapshot(_checked(parse_notebook, data), include_outputs)
    blob = serialize(snapshot)
    if len(blob) > max_bytes:
        raise Refusal(413, f"notebook is {_mib(len(blob))} MiB"
                           f"{'' if include_outputs else ' without outputs'}; the limit is "
                           f"{_mib(max_bytes)} MiB: clear large outputs, or share without them")
    try:
        preview = render_fragment(snapshot)
    except Exception as e:  # nbconvert on content it cannot handle: the input's fault
        raise Refusal(400, f"the notebook could not be rendered for preview: {e}") from None
    return Prepared(blob, preview, environment_of(snapshot))


def _checked(check: Callable[[In], Out], value: In) -> Out:
    """Run a pure check from :mod:`.notebooks`, turning its error into a 400."""
    try:
        return check(value)
    except NotebookError as e:
        raise Refusal(400, str(e)) from None


def _version(number: int, note: str, include_outputs: bool, prepared: Prepared) -> Version:
    env = prepared.environment
    return Version(number, utcnow(), note, include_outputs, env.image, env.size, env.kernel,
                   len(prepared.notebook))


def _detail(domain: str, include_outputs: bool) -> str:
    return f"domain {domain}, outputs {'included' if include_outputs else 'excluded'}"


def _mib(nbytes: int) -> str:
    return f"{nbytes / 1024 / 1024:.1f}"
