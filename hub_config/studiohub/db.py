"""The database engine of StudioHub's own services (sharing, jobs): one recipe for both.

SQLite by default (a file in the state directory, readable by the service's account only),
any SQLAlchemy URL in production; a bare ``postgresql://`` means psycopg 3, the driver
StudioHub installs and the hub itself uses, whichever one SQLAlchemy would pick.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url


def utcnow() -> datetime:
    """Now, timezone-aware: every time the services store is UTC."""
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite private, with foreign keys, a busy timeout and a WAL."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    _private_sqlite(parsed.database)
    # Handlers and the service's threads share the pool; a writer waits up to 30 s.
    kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    engine = create_engine(parsed, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_sqlite(database: str | None) -> None:
    """A SQLite file (and its folder) readable by the service's account only."""
    if not database or database == ":memory:":
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Write-ahead log: a commit is one fsync of the log instead of a rollback journal's
    # several (about 30 ms each on a busy disk), still durable (synchronous=FULL), and
    # readers (previews, log followers) never wait for a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
