"""The sharing service's own tables (SQLAlchemy): shares, their versions, the audit trail.

SQLite in the hub's state directory by default; any SQLAlchemy URL in production
(``postgresql://...``, with psycopg 3, which StudioHub installs for the hub).
The tables are created on start when missing. Notebook bytes are not stored here but
in snapshot files (:mod:`studiohub.sharing.snapshots`): the database stays small, and
listings never read notebooks.

Every method runs one short transaction and returns plain dataclasses, so handlers
never hold a session (or a connection) across an ``await``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..db import aware, make_engine, utcnow

ACTIONS = ("share", "version", "revoke", "open", "copy", "refuse")


class Base(DeclarativeBase):
    pass


class ShareRow(Base):
    __tablename__ = "sharing_shares"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    author: Mapped[str] = mapped_column(String(255), index=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    views: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VersionRow(Base):
    __tablename__ = "sharing_versions"
    __table_args__ = (UniqueConstraint("share_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_id: Mapped[str] = mapped_column(ForeignKey("sharing_shares.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
    include_outputs: Mapped[bool] = mapped_column(Boolean)
    image: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[str] = mapped_column(String(64), default="")
    kernel: Mapped[str] = mapped_column(String(255), default="")
    nbytes: Mapped[int] = mapped_column(Integer)


class EventRow(Base):
    __tablename__ = "sharing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(16), index=True)
    share_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class Version:
    number: int
    created: datetime
    note: str
    include_outputs: bool
    image: str
    size: str
    kernel: str
    nbytes: int


@dataclass(frozen=True)
class Share:
    id: str
    author: str
    domain: str
    name: str
    created: datetime
    updated: datetime
    latest_version: int
    views: int
    revoked: datetime | None


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime
    actor: str
    action: str
    share_id: str | None
    version: int | None
    detail: str


class Store:
    """All reads and writes of the sharing tables."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- shares and versions ------------------------------------------------------------

    def create_share(self, share: Share, version: Version) -> None:
        with self.session() as s:
            s.add(ShareRow(**_fields(share)))
            s.flush()  # the share row first: the version's foreign key needs it
            s.add(VersionRow(share_id=share.id, **_fields(version)))

    def add_version(self, share_id: str, version: Version) -> None:
        """Publish ``version``; the unique (share, number) refuses a concurrent duplicate."""
        with self.session() as s:
            s.add(VersionRow(share_id=share_id, **_fields(version)))
            s.execute(update(ShareRow).where(ShareRow.id == share_id)
                      .values(latest_version=version.number, updated=version.created))

    def share(self, share_id: str) -> Share | None:
        with self.session() as s:
            row = s.get(ShareRow, share_id)
            return _share(row) if row else None

    def versions(self, share_id: str) -> list[Version]:
        with self.session() as s:
            rows = s.scalars(select(VersionRow).where(VersionRow.share_id == share_id)
                             .order_by(VersionRow.number.desc()))
            return [_version(r) for r in rows]

    def version(self, share_id: str, number: int) -> Version | None:
        with self.session() as s:
            row = s.scalar(select(VersionRow).where(VersionRow.share_id == share_id,
                                                    VersionRow.number == number))
            return _version(row) if row else None

    def revoke(self, share_id: str) -> None:
        with self.session() as s:
            s.execute(update(ShareRow).where(ShareRow.id == share_id, ShareRow.revoked.is_(None))
                      .values(revoked=utcnow()))

    def count_active(self, author: str) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(ShareRow)
                                .where(ShareRow.author == author, ShareRow.revoked.is_(None)))
                       or 0)

    def count_views(self, share_id: str) -> None:
        with self.session() as s:
            s.execute(update(ShareRow).where(ShareRow.id == share_id)
                      .values(views=ShareRow.views + 1))

    def shared_by(self, author: str) -> list[Share]:
        """Everything ``author`` shared, revoked ones included (the sidebar marks them)."""
        with self.session() as s:
            rows = s.scalars(select(ShareRow).where(ShareRow.author == author)
                             .order_by(ShareRow.updated.desc()))
            return [_share(r) for r in rows]

    def shared_with(self, domains: Iterable[str], exclude_author: str, query: str = "",
                    limit: int = 200) -> list[Share]:
        """Live shares in ``domains`` by others, optionally matching title or author."""
        domains = list(domains)
        if not domains:
            return []
        stmt = select(ShareRow).where(ShareRow.domain.in_(domains), ShareRow.revoked.is_(None),
                                      ShareRow.author != exclude_author)
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            stmt = stmt.where(or_(func.lower(ShareRow.name).like(pattern, escape="\\"),
                                  func.lower(ShareRow.author).like(pattern, escape="\\")))
        with self.session() as s:
            rows = s.scalars(stmt.order_by(ShareRow.updated.desc()).limit(limit))
            return [_share(r) for r in rows]

    def recently_opened(self, user: str, limit: int = 20) -> list[tuple[Share, datetime]]:
        """Shares ``user`` opened, newest first, with when they last did."""
        last = func.max(EventRow.time).label("last")
        with self.session() as s:
            rows = s.execute(
                select(ShareRow, last).join(EventRow, EventRow.share_id == ShareRow.id)
                .where(EventRow.actor == user, EventRow.action == "open")
                .group_by(ShareRow.id).order_by(last.desc()).limit(limit)).all()
            return [(_share(row), aware(when)) for row, when in rows]

    # --- audit trail -----------------------------------------------------------------------

    def record(self, actor: str, action: str, share_id: str | None = None,
               version: int | None = None, detail: str = "") -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        with self.session() as s:
            s.add(EventRow(time=utcnow(), actor=actor, action=action, share_id=share_id,
                           version=version, detail=detail[:1000]))

    def events(self, *, share_id: str | None = None, actor: str | None = None,
               action: str | None = None, before: int | None = None,
               limit: int = 100) -> list[Event]:
        """The audit trail, newest first; ``before`` (an event id) pages backwards."""
        stmt = select(EventRow)
        for column, value in ((EventRow.share_id, share_id), (EventRow.actor, actor),
                              (EventRow.action, action)):
            if value:
                stmt = stmt.where(column == value)
        if before is not None:
            stmt = stmt.where(EventRow.id < before)
        with self.session() as s:
            rows = s.scalars(stmt.order_by(EventRow.id.desc()).limit(limit))
            return [Event(r.id, aware(r.time), r.actor, r.action, r.share_id, r.version,
                          r.detail) for r in rows]


def _fields(obj: Share | Version) -> dict[str, Any]:
    return dict(obj.__dict__)


def _share(row: ShareRow) -> Share:
    return Share(row.id, row.author, row.domain, row.name, aware(row.created),
                 aware(row.updated), row.latest_version, row.views,
                 aware(row.revoked) if row.revoked else None)


def _version(row: VersionRow) -> Version:
    return Version(row.number, aware(row.created), row.note, row.include_outputs, row.image,
                   row.size, row.kernel, row.nbytes)
