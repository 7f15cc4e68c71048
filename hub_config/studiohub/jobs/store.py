"""The jobs service's own tables (SQLAlchemy 2): jobs, their attempts, their events.

SQLite in ``<state>/jobs.sqlite`` by default (the file 0600: specs hold the users'
variables), any SQLAlchemy URL in production (``postgresql://...``, psycopg 3). The
tables are created on start when missing.

Every method runs one short transaction and returns plain frozen dataclasses, so the
service never holds a session (or a connection) across an ``await``. The store decides
nothing: :mod:`.service` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..db import aware, make_engine, utcnow
from .model import Status

#: Statuses of jobs that hold (or are about to hold) a placement.
ACTIVE = (Status.STARTING.value, Status.RUNNING.value)



class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    domain: Mapped[str] = mapped_column(String(255), index=True, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    queue_reason: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[str] = mapped_column(Text)  # JSON of JobSpec.as_dict()
    image: Mapped[str] = mapped_column(String(64))
    size: Mapped[str] = mapped_column(String(64))
    replicas: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[float] = mapped_column(Float)  # the whole job's: replicas × size
    memory: Mapped[int] = mapped_column(BigInteger)  # bytes
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_by: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    seq: Mapped[int] = mapped_column(Integer, default=0, index=True)  # submit order


class AttemptRow(Base):
    __tablename__ = "jobs_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs_jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    plan: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the AttemptPlan
    replicas: Mapped[str] = mapped_column(Text, default="[]")  # JSON of the last states


class EventRow(Base):
    __tablename__ = "jobs_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs_jobs.id"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class Job:
    """A job as stored; ``spec`` is the checked spec as a dict (``JobSpec.as_dict``)."""

    id: str
    user: str
    status: str
    spec: Mapping[str, Any]
    image: str
    size: str
    replicas: int
    cpus: float
    memory: int
    gpus: int = 0
    name: str = ""
    domain: str = ""
    reason: str = ""
    queue_reason: str = ""
    attempt: int = 0
    max_retries: int = 0
    timeout: int | None = None
    cancel_by: str = ""
    created: datetime = field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    seq: int = 0

    @property
    def final(self) -> bool:
        return Status(self.status).final


@dataclass(frozen=True)
class Attempt:
    job_id: str
    number: int
    started: datetime
    ended: datetime | None
    plan: Mapping[str, Any]
    replicas: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Event:
    time: datetime
    kind: str
    message: str


_JOB_FIELDS = [f.name for f in fields(Job)]


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def _job(row: JobRow) -> Job:
    values = {name: getattr(row, name) for name in _JOB_FIELDS}
    values["spec"] = json.loads(row.spec)
    for key in ("created", "started", "finished"):
        values[key] = _aware(values[key])
    return Job(**values)


def _attempt(row: AttemptRow) -> Attempt:
    return Attempt(row.job_id, row.number, _aware(row.started) or utcnow(), _aware(row.ended),
                   json.loads(row.plan), json.loads(row.replicas))


class Store:
    """Jobs, attempts and events in one database (tables created when missing)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- jobs ---------------------------------------------------------------------------

    def add(self, job: Job) -> Job:
        """Store a new job; its ``seq`` (submit order) is given here."""
        with self.session() as s:
            last = s.scalar(select(JobRow.seq).order_by(JobRow.seq.desc()).limit(1)) or 0
            values = {name: getattr(job, name) for name in _JOB_FIELDS}
            values.update(spec=json.dumps(dict(job.spec)), seq=last + 1)
            s.add(JobRow(**values))
        return self.get(job.id) or job

    def get(self, job_id: str) -> Job | None:
        with self.session() as s:
            row = s.get(JobRow, job_id)
            return _job(row) if row else None

    def update(self, job_id: str, **values: Any) -> Job:
        """Set some fields of a job; returns it as now stored."""
        unknown = set(values) - set(_JOB_FIELDS)
        if unknown:
            raise KeyError(f"unknown job field(s): {sorted(unknown)}")
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise KeyError(job_id)
            for key, value in values.items():
                setattr(row, key, json.dumps(dict(value)) if key == "spec" else value)
            return _job(row)

    def delete(self, job_id: str) -> bool:
        """Forget a job: its events, attempts and row, in one transaction (False when
        there was none)."""
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                return False
            s.execute(sql_delete(EventRow).where(EventRow.job_id == job_id))
            s.execute(sql_delete(AttemptRow).where(AttemptRow.job_id == job_id))
            s.delete(row)
        return True

    def jobs(self, user: str | None = None, statuses: Iterable[str] | None = None,
             limit: int = 500) -> list[Job]:
        """Jobs, newest first (of ``user``, in ``statuses``, when given)."""
        query = select(JobRow).order_by(JobRow.seq.desc()).limit(limit)
        if user is not None:
            query = query.where(JobRow.user == user)
        if statuses is not None:
            query = query.where(JobRow.status.in_([str(s) for s in statuses]))
        with self.session() as s:
            return [_job(r) for r in s.scalars(query)]

    def count(self, user: str) -> int:
        """How many jobs ``user`` has in the store, whatever their status."""
        query = select(func.count()).select_from(JobRow).where(JobRow.user == user)
        with self.session() as s:
            return int(s.scalar(query) or 0)

    def queued(self) -> list[Job]:
        """Queued jobs in submit order (the scheduler's queue)."""
        query = select(JobRow).where(JobRow.status == Status.QUEUED.value) \
            .order_by(JobRow.seq)
        with self.session() as s:
            return [_job(r) for r in s.scalars(query)]

    def active(self) -> list[Job]:
        """Jobs starting or running (holding placements)."""
        query = select(JobRow).where(JobRow.status.in_(ACTIVE)).order_by(JobRow.seq)
        with self.session() as s:
            return [_job(r) for r in s.scalars(query)]

    # --- attempts -------------------------------------------------------------------------

    def add_attempt(self, job_id: str, number: int, plan: Mapping[str, Any],
                    started: datetime | None = None) -> Attempt:
        with self.session() as s:
            row = AttemptRow(job_id=job_id, number=number, started=started or utcnow(),
                             plan=json.dumps(dict(plan)), replicas="[]")
            s.add(row)
            s.flush()
            return _attempt(row)

    def attempt(self, job_id: str, number: int) -> Attempt | None:
        query = select(AttemptRow).where(AttemptRow.job_id == job_id,
                                         AttemptRow.number == number)
        with self.session() as s:
            row = s.scalars(query).first()
            return _attempt(row) if row else None

    def update_attempt(self, job_id: str, number: int, *,
                       replicas: Sequence[Mapping[str, Any]] | None = None,
                       ended: datetime | None = None) -> None:
        query = select(AttemptRow).where(AttemptRow.job_id == job_id,
                                         AttemptRow.number == number)
        with self.session() as s:
            row = s.scalars(query).first()
            if row is None:
                return
            if replicas is not None:
                row.replicas = json.dumps([dict(r) for r in replicas])
            if ended is not None:
                row.ended = ended

    # --- events -----------------------------------------------------------------------------

    def add_event(self, job_id: str, kind: str, message: str) -> None:
        with self.session() as s:
            s.add(EventRow(job_id=job_id, time=utcnow(), kind=kind, message=message))

    def events(self, job_id: str, limit: int = 1000) -> list[Event]:
        query = select(EventRow).where(EventRow.job_id == job_id) \
            .order_by(EventRow.id).limit(limit)
        with self.session() as s:
            return [Event(_aware(r.time) or utcnow(), r.kind, r.message)
                    for r in s.scalars(query)]
