"""The models service's tables (SQLAlchemy 2): endpoints (one JSON document each) and
endpoint tokens (their SHA-256 only, and the owner's note of what uses each).

An endpoint is small and always read and written whole by :mod:`.service` (its versions,
their replicas' incarnations, the traffic split), so it is kept as one document rather
than spread over tables; the store decides nothing. SQLite in
``<state>/models.sqlite`` (0600) by default, ``postgresql://...`` in production. A
column added since a database was made is added at start (:func:`_add_columns`): the
only schema change so far, too small for a migration tool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, inspect, select, text
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..db import aware, make_engine, utcnow
from .model import TOKEN_NOTE_MAX


class Base(DeclarativeBase):
    pass


class EndpointRow(Base):
    __tablename__ = "models_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    doc: Mapped[str] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TokenRow(Base):
    __tablename__ = "models_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(String(TOKEN_NOTE_MAX), default="", server_default="")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    endpoint: str
    created: datetime
    note: str = ""


def digest(token: str) -> str:
    """What is stored of an endpoint token (the token itself is shown once)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        _add_columns(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session() as session, session.begin():
            yield session

    def endpoints(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [json.loads(row.doc) for row in s.scalars(select(EndpointRow))]

    def save(self, endpoint: dict[str, Any]) -> None:
        with self.session() as s:
            row = s.get(EndpointRow, endpoint["name"])
            doc = json.dumps(endpoint, sort_keys=True)
            if row is None:
                s.add(EndpointRow(name=endpoint["name"], user=endpoint["user"], doc=doc))
            else:
                row.doc, row.updated = doc, utcnow()

    def remove(self, name: str) -> None:
        with self.session() as s:
            s.execute(sql_delete(TokenRow).where(TokenRow.endpoint == name))
            s.execute(sql_delete(EndpointRow).where(EndpointRow.name == name))

    def add_token(self, token_id: str, endpoint: str, token: str, note: str = ""
                  ) -> TokenInfo:
        with self.session() as s:
            row = TokenRow(id=token_id, endpoint=endpoint, digest=digest(token),
                           created=utcnow(), note=note)
            s.add(row)
        return TokenInfo(token_id, endpoint, row.created, note)

    def tokens(self, endpoint: str | None = None) -> list[TokenInfo]:
        query = select(TokenRow).order_by(TokenRow.created)
        if endpoint is not None:
            query = query.where(TokenRow.endpoint == endpoint)
        with self.session() as s:
            return [TokenInfo(r.id, r.endpoint, aware(r.created), r.note or "")
                    for r in s.scalars(query)]

    def token_digests(self) -> dict[str, str]:
        """digest → endpoint, for the front door's check (no database call a request)."""
        with self.session() as s:
            return {r.digest: r.endpoint for r in s.scalars(select(TokenRow))}

    def revoke(self, endpoint: str, token_id: str) -> bool:
        with self.session() as s:
            gone = s.execute(sql_delete(TokenRow).where(
                TokenRow.endpoint == endpoint, TokenRow.id == token_id))
            return bool(gone.rowcount)  # type: ignore[attr-defined]


def _add_columns(engine: Any) -> None:
    """``models_tokens.note`` in a database made before it (SQLite and PostgreSQL both
    take ``ADD COLUMN`` with a default)."""
    columns = {c["name"] for c in inspect(engine).get_columns(TokenRow.__tablename__)}
    if "note" not in columns:
        with engine.begin() as connection:
            connection.execute(text(f"ALTER TABLE {TokenRow.__tablename__} ADD COLUMN "
                                    f"note VARCHAR({TOKEN_NOTE_MAX}) NOT NULL DEFAULT ''"))
