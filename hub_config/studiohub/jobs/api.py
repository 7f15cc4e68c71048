"""The REST API of the jobs service under ``<prefix>api/`` (docs/training.md).

| method and path                                   | what                                   |
| ------------------------------------------------- | -------------------------------------- |
| ``POST api/jobs`` (``?check=true``: dry run)        | submit a spec: 201 job, or 200 ok      |
| ``GET api/jobs`` (admins: ``?user=``)               | the caller's jobs, newest first        |
| ``GET api/jobs/ID``                                 | one job (another user's: 404)          |
| ``GET api/jobs/ID/logs?replica=&attempt=&offset=&follow=`` | a replica's output, text/plain |
| ``GET api/jobs/ID/events``                          | queued, placed, started, exited, …     |
| ``GET api/jobs/ID/metrics``                         | scalars of the job's TensorBoard files |
| ``POST api/jobs/ID/cancel`` / ``POST api/jobs/ID/rerun`` | cancel (200) / same spec again (201) |
| ``DELETE api/jobs/ID`` (``?outputs=true``: its home folder too) | forget a finished job (204) |

Handlers parse and answer; :mod:`.service` decides. Authentication, the streamed and
bounded body, the JSON parse (``RecursionError`` a 400) and the ``{status, message}``
errors are the sharing service's (:mod:`studiohub.sharing.base`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from typing import Any

from tornado import web

from ..sharing.base import APIHandler, authenticated, parse_json
from . import logfiles, metrics
from .logwatch import LogWatch
from .model import Status
from .service import Jobs, JobsError, Viewer, job_dirs

#: Largest spec body (a spec is a few hundred bytes; parameters and env a few KiB).
MAX_SPEC_BYTES = 64 * 1024
#: Largest piece of a log one answer carries without ``follow``.
MAX_LOG_CHUNK = 8 * 1024 * 1024
#: Longest wait of a follower between two looks at the job's status (new log bytes wake
#: it at once: :mod:`.logwatch`).
FOLLOW_INTERVAL = 0.2
#: Most logs one user follows at a time (each follow holds an inotify instance of the
#: service's, and root's instances are few and host-wide: :mod:`.logwatch`).
MAX_FOLLOWS_PER_USER = 8
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")
_REPLICA = re.compile(r"^[a-z]{1,16}-\d{1,3}$")
log = logging.getLogger("studiohub.jobs")


def iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def job_model(jobs: Jobs, job: Any) -> dict[str, Any]:
    """A job as the API answers it (dirs relative to the user's home)."""
    return {"id": job.id, "name": job.name, "user": job.user, "status": job.status,
            "reason": job.reason, "spec": dict(job.spec), "attempt": job.attempt,
            "max_retries": job.max_retries, "created": iso(job.created),
            "started": iso(job.started), "finished": iso(job.finished),
            "queue_reason": job.queue_reason, "domain": job.domain, "image": job.image,
            "size": job.size, "replicas": jobs.replicas(job), "dirs": job_dirs(job.id)}


class JobsBase(APIHandler):
    """The jobs service's handlers: a viewer from the hub's identity, JobsError as 4xx."""

    service_name = "jobs"

    @property
    def jobs(self) -> Jobs:
        jobs: Jobs = self.settings["jobs"]
        return jobs

    @property
    def viewer(self) -> Any:
        user = self.current_user
        if user is None or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "only JupyterHub users can run training jobs")
        return Viewer(user["name"], tuple(user.get("groups") or ()), bool(user.get("admin")))

    def check_xsrf_cookie(self) -> None:
        if self.request.headers.get("Authorization"):
            return  # token-authenticated clients (the SDK, the CLI, the Lab's server)
        super().check_xsrf_cookie()

    def answer(self, call: Any) -> Any:
        try:
            return call()
        except JobsError as e:
            raise web.HTTPError(e.status, e.message) from None

    async def answer_async(self, call: Any) -> Any:
        try:
            return await call
        except JobsError as e:
            raise web.HTTPError(e.status, e.message) from None

    def job(self, job_id: str) -> Any:
        return self.answer(lambda: self.jobs.get(self.viewer, job_id))

    def flag(self, name: str) -> bool:
        """``?name=``: true, yes, 1 or false, no, 0 (absent: false). Anything else is a
        400: a mistyped ``check=ture`` must not submit the job it meant to try."""
        raw = self.get_argument(name, "false").lower()
        if raw not in TRUE + FALSE:
            raise web.HTTPError(400, f"{name} {raw[:20]!r}: true or false")
        return raw in TRUE


class JobsHandler(JobsBase):
    max_body_bytes = MAX_SPEC_BYTES

    @authenticated
    def get(self) -> None:
        user = self.get_argument("user", None)
        found = self.answer(lambda: self.jobs.jobs_of(self.viewer, user))
        self.write_json({"jobs": [job_model(self.jobs, j) for j in found]})

    @authenticated
    async def post(self) -> None:
        if not self._body.strip():
            raise web.HTTPError(400, "request body is empty: send the job's spec as a JSON "
                                     "object")
        data = parse_json(bytes(self._body))
        check = self.flag("check")
        job = await self.answer_async(self.jobs.submit(self.viewer, data, check=check))
        if check:
            await self._check_code(data)
            self.write_json({"ok": True})
            return
        self.write_json(job_model(self.jobs, job), 201)

    async def _check_code(self, data: Any) -> None:
        """The dry run's probe of the code a submit would snapshot (where the service
        has one: the local executor's), so a missing script is a 400 before the submit."""
        check_code = self.settings.get("check_code")
        if check_code is None:
            return
        try:
            await check_code(data, self.jobs.accounts(self.viewer.name))
        except (ValueError, OSError) as e:
            raise web.HTTPError(400, f"could not snapshot the code: {e}") from None


class JobHandler(JobsBase):
    @authenticated
    def get(self, job_id: str) -> None:
        self.write_json(job_model(self.jobs, self.job(job_id)))

    @authenticated
    async def delete(self, job_id: str) -> None:
        """Forget a finished job (204); ``?outputs=true``: its home folder too."""
        outputs = self.flag("outputs")
        await self.answer_async(self.jobs.delete(self.viewer, job_id, outputs=outputs))
        self.set_status(204)
        self.finish()


class EventsHandler(JobsBase):
    @authenticated
    def get(self, job_id: str) -> None:
        job = self.job(job_id)
        self.write_json({"events": [{"time": iso(e.time), "kind": e.kind, "message": e.message}
                                    for e in self.jobs.store.events(job.id)]})


class MetricsHandler(JobsBase):
    @authenticated
    async def get(self, job_id: str) -> None:
        job = self.job(job_id)
        account = self.jobs.accounts(job.user)
        tags = await asyncio.to_thread(metrics.read_job_scalars, account.home, job.id,
                                       account.unix_user)
        self.write_json({"tags": tags})


class CancelHandler(JobsBase):
    @authenticated
    async def post(self, job_id: str) -> None:
        job = await self.answer_async(self.jobs.cancel(self.viewer, job_id))
        self.write_json(job_model(self.jobs, job))


class RerunHandler(JobsBase):
    @authenticated
    async def post(self, job_id: str) -> None:
        job = await self.answer_async(self.jobs.rerun(self.viewer, job_id))
        self.write_json(job_model(self.jobs, job), 201)


class LogsHandler(JobsBase):
    """A replica's output from ``offset``; with ``follow``, streamed until the job ends."""

    @authenticated
    async def get(self, job_id: str) -> None:
        job = self.job(job_id)
        given = self.get_argument("replica", None)  # NUL and other controls stripped
        replica = self._first_replica(job) if given is None else given
        if not _REPLICA.match(replica):
            raise web.HTTPError(400, f"replica {replica[:40]!r}: a name like worker-0")
        attempt = self._int("attempt", job.attempt or 1, 1, 1000)
        offset = self._int("offset", 0, 0, 1 << 50)
        follow = self.flag("follow")
        path = self.jobs.log_path(job, attempt, replica)
        if not follow:
            await self._stream(job, path, offset, follow=False)
            return
        with self._follow_slot(self.viewer.name):
            await self._stream(job, path, offset, follow=True)

    @contextlib.contextmanager
    def _follow_slot(self, user: str) -> Any:
        """One of ``user``'s :data:`MAX_FOLLOWS_PER_USER` follows, or a 429 saying why."""
        follows: collections.Counter[str] = self.settings["follows"]
        most = int(self.settings.get("max_follows_per_user", MAX_FOLLOWS_PER_USER))
        if follows[user] >= most:
            raise web.HTTPError(429, f"you already follow {most} job logs: close another "
                                     "log view (a browser tab, a terminal's `--follow`) "
                                     "and try again")
        follows[user] += 1
        try:
            yield
        finally:
            follows[user] -= 1
            if follows[user] <= 0:
                del follows[user]

    async def _stream(self, job: Any, path: Any, offset: int, follow: bool) -> None:
        """The log from ``offset``; with ``follow``, on until the job ends or the client
        goes."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        # ``offset`` counts what this endpoint sent; past a rotation that dropped output,
        # its first bytes are a marker (logfiles): from here on, logical positions.
        position, pending = logfiles.to_logical(logfiles.parts(path), offset)
        if pending:
            self.write(pending)
        with LogWatch(path) if follow else contextlib.nullcontext() as watch:
            while True:
                position, wrote = self._send(path, position)
                if wrote:
                    await self.flush()
                if watch is None:
                    break
                current = self.jobs.store.get(job.id)
                if current is None or (Status(current.status).final and not wrote):
                    break  # everything the ended job wrote was sent
                if self._client_gone():
                    return
                await watch.wait(FOLLOW_INTERVAL)  # woken by the keeper's next write
        self.finish()

    def _client_gone(self) -> bool:
        stream = getattr(self.request.connection, "stream", None)
        return stream is None or bool(stream.closed())

    def _first_replica(self, job: Any) -> str:
        replicas = self.jobs.replicas(job)
        return replicas[0]["name"] if replicas else "worker-0"

    def _int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or \
                not low <= int(raw) <= high:
            raise web.HTTPError(400, f"{name} {raw[:20]!r}: an integer from {low} to {high}")
        return int(raw)

    def _send(self, path: Any, position: int) -> tuple[int, bool]:
        """Write the output the log holds past logical ``position``; (new position,
        whether any was sent)."""
        data, position = logfiles.read(path, position, MAX_LOG_CHUNK)
        if data:
            self.write(data)
        return position, bool(data)


class RootHandler(JobsBase):
    """``/services/jobs/``: where the API is (the hub's health check asks here too)."""

    def get(self) -> None:
        self.write_json({"service": "jobs", "api": f"{self.settings['service_prefix']}api/jobs",
                         "docs": "docs/training.md"})
