"""``studiohub/api/v1/training/…``: the Lab's calls to the hub's jobs service.

Every route forwards to the service (``/services/jobs/api/jobs…``, docs/training.md)
with this server's token after the body check every handler shares; the service decides
and its ``{status, message}`` refusals reach the browser as they are. A followed log is
streamed through chunk by chunk while the job runs.

| route | forwards to |
| --- | --- |
| ``GET training/jobs`` | ``GET api/jobs`` |
| ``POST training/jobs`` (``?check=true``: dry run) | ``POST api/jobs`` |
| ``GET training/jobs/<id>`` | ``GET api/jobs/<id>`` |
| ``GET training/jobs/<id>/events`` and ``/metrics`` | the same |
| ``GET training/jobs/<id>/logs?…&download=1`` | ``GET api/jobs/<id>/logs`` (streamed) |
| ``POST training/jobs/<id>/cancel`` and ``/rerun`` | the same |
| ``DELETE training/jobs/<id>`` (``?outputs=true``) | ``DELETE api/jobs/<id>`` |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..base import LabAPIHandler, Route
from ..errors import LabError
from .client import JobsClient

#: What a spec may hold (the service checks the values; here only keys and types).
SPEC_KEYS: dict[str, type | tuple[type, ...]] = {
    "image": str, "size": str, "name": str, "notebook": str, "script": str, "module": str,
    "command": (list, str), "args": list, "parameters": dict, "git": dict, "workers": int,
    "parameter_servers": int, "max_retries": int, "timeout": (int, str), "env": dict,
}
#: The service's job ids (12 hex characters today; its route allows these).
JOB_ID = r"(?P<job_id>[0-9a-zA-Z_-]{1,64})"
#: The log arguments passed on, each with the form it must have.
LOG_ARGUMENTS: dict[str, re.Pattern[str]] = {
    "replica": re.compile(r"[a-z]{1,16}-\d{1,3}"), "attempt": re.compile(r"\d{1,4}"),
    "offset": re.compile(r"\d{1,15}"), "follow": re.compile(r"true|false"),
}
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


def routes(api: str, kw: dict[str, Any]) -> list[Route]:
    job = rf"{api}/training/jobs/{JOB_ID}"
    return [
        (rf"{api}/training/jobs", JobsHandler, kw),
        (job, JobHandler, kw),
        (rf"{job}/(?P<part>events|metrics)", JobPartHandler, kw),
        (rf"{job}/logs", LogsHandler, kw),
        (rf"{job}/(?P<action>cancel|rerun)", JobActionHandler, kw),
    ]


def flag(arguments: Mapping[str, list[bytes]], name: str) -> bool:
    """Whether ``?name=`` (its last value) is true, yes or 1; false, no or 0 (or no
    value) is False, anything else a 400: ``check=ture`` must not submit the job."""
    values = arguments.get(name) or []
    if not values:
        return False
    value = values[-1].decode("utf-8", "replace").lower()
    if value not in TRUE + FALSE:
        raise LabError(f"{name}: {value[:40]!r} is not true or false")
    return value in TRUE


def log_query(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """The log arguments the service knows, each checked for its form (400 naming it)."""
    query: dict[str, str] = {}
    for name, form in LOG_ARGUMENTS.items():
        if not arguments.get(name):
            continue
        value = arguments[name][-1].decode("utf-8", "replace").lower()
        if not form.fullmatch(value):
            raise LabError(f"{name}: {value[:40]!r} is not {describe(name)}")
        query[name] = value
    return query


def describe(name: str) -> str:
    return {"replica": "a replica name like worker-0", "follow": "true or false"}.get(
        name, "a whole number")


class TrainingHandler(LabAPIHandler):
    max_body = 64 * 1024

    @property
    def client(self) -> JobsClient:
        return JobsClient(parent=self.lab)


class JobsHandler(TrainingHandler):
    """``GET training/jobs``: my jobs; ``POST training/jobs`` a spec (``?check=true``:
    would it start now, without submitting)."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "jobs"))

    @web.authenticated
    async def post(self) -> None:
        spec = self.body(SPEC_KEYS)
        if flag(self.request.arguments, "check"):
            self.write_json(await self.client.call("POST", "jobs", spec,
                                                   query={"check": "true"}))
            return
        self.write_json(await self.client.call("POST", "jobs", spec), 201)


class JobHandler(TrainingHandler):
    """``GET training/jobs/<id>``: one job; ``DELETE`` forgets a finished one (204;
    ``?outputs=true``: its outputs and checkpoints too)."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        self.write_json(await self.client.call("GET", f"jobs/{job_id}"))

    @web.authenticated
    async def delete(self, job_id: str) -> None:
        query = {"outputs": "true"} if flag(self.request.arguments, "outputs") else None
        await self.client.call("DELETE", f"jobs/{job_id}", query=query)
        self.set_status(204)
        self.finish()


class JobPartHandler(TrainingHandler):
    """``GET training/jobs/<id>/events`` and ``…/metrics``."""

    @web.authenticated
    async def get(self, job_id: str, part: str) -> None:
        self.write_json(await self.client.call("GET", f"jobs/{job_id}/{part}"))


class JobActionHandler(TrainingHandler):
    """``POST training/jobs/<id>/cancel`` (200 the job) and ``…/rerun`` (201 a new job)."""

    @web.authenticated
    async def post(self, job_id: str, action: str) -> None:
        self.body({})
        answer = await self.client.call("POST", f"jobs/{job_id}/{action}")
        self.write_json(answer, 201 if action == "rerun" else 200)


class ClientGone(Exception):
    """The browser closed a followed log: stop asking the service for it."""


class LogsHandler(TrainingHandler):
    """``GET training/jobs/<id>/logs``: a replica's output as text, from ``offset``;
    ``follow=true`` streams it until the job ends, ``download=1`` saves it as a file."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        query = log_query(self.request.arguments)
        flag(self.request.arguments, "download")  # checked before any of the log is sent
        follow = query.get("follow") == "true"
        started = False

        def forward(data: bytes) -> None:
            nonlocal started
            if self.request.connection is None or self._finished:
                raise ClientGone()
            if not started:
                self.start_text(job_id, query)
                started = True
            self.write(data)
            self.flush().add_done_callback(lambda f: f.exception())

        try:
            await self.client.stream(f"jobs/{job_id}/logs", query, forward, follow)
        except (ClientGone, StreamClosedError):
            return
        if not started:
            self.start_text(job_id, query)
        self.finish()

    def start_text(self, job_id: str, query: Mapping[str, str]) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        if flag(self.request.arguments, "download"):
            replica = query.get("replica", "worker-0")
            attempt = query.get("attempt", "latest")
            self.set_header("Content-Disposition", f'attachment; filename="job-{job_id}-'
                            f'{replica}-attempt-{attempt}.log"')
