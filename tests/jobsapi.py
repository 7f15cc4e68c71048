"""The jobs service's real API (``create_app`` + ``Jobs``) on a port, for the SDK and CLI tests.

The service runs in a thread with its own event loop; its executor and the hub's
placement are the in-memory fakes of tests/jobfakes.py, and HubOAuth
knows two users by token (``alice-token``, ``bob-token``) without a hub. The test drives
the service (``tick``, replicas' exits, their log lines) through :class:`JobsAPI`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuth
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from studiohub.jobs.app import create_app
from studiohub.jobs.service import Jobs
from tests.jobfakes import make_jobs

PREFIX = "/services/jobs/"
USERS = {"alice-token": "alice", "bob-token": "bob"}


class TokenUsers(HubOAuth):
    """A hub that knows alice and bob by their tokens (no hub process)."""

    async def _get_user(self, handler: Any) -> dict[str, Any] | None:
        header = handler.request.headers.get("Authorization", "")
        name = USERS.get(header.removeprefix("token ").strip())
        handler._cached_hub_user = None if name is None else \
            {"kind": "user", "name": name, "groups": [], "admin": False, "scopes": []}
        return handler._cached_hub_user


class JobsAPI:
    """The running service: ``url``, and calls into its loop from the test's thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.ready: Future[None] = Future()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.ready.result(timeout=30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.jobs, self.executor, self.placing, self.clock = make_jobs(self.tmp_path)
        auth = TokenUsers(api_token="service-token", base_url=PREFIX, hub_prefix="/hub/",
                          api_url="http://127.0.0.1:1/hub/api",
                          oauth_client_id="service-jobs", cache_max_age=0)
        sock, port = bind_unused_port()
        self.server = HTTPServer(create_app(self.jobs, auth), max_body_size=1024 * 1024)
        self.server.add_sockets([sock])
        self.url = f"http://127.0.0.1:{port}{PREFIX}"
        self.ready.set_result(None)
        self.loop.run_forever()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def tick(self) -> None:
        self.call(self.jobs.tick())

    def exit(self, job_id: str, attempt: int, code: int, replica: str = "worker-0") -> None:
        """A replica exits, and the service sees it."""
        self.executor.exit(job_id, attempt, code, replica)
        self.tick()

    def write_log(self, job_id: str, attempt: int, text: str,
                  replica: str = "worker-0") -> None:
        """What the executor does with a replica's output."""
        path = self.jobs.state_dir / "jobs" / job_id / "logs" / f"attempt-{attempt}" / \
            f"{replica}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(text)

    def job(self, job_id: str) -> Any:
        return self.jobs.store.get(job_id)

    def all_jobs(self) -> list[Any]:
        return list(self.jobs.store.jobs())

    def close(self) -> None:
        async def stop() -> None:
            self.server.stop()
            await self.jobs.stop()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def serve(tmp_path: Path) -> Iterator[JobsAPI]:
    api = JobsAPI(tmp_path)
    try:
        yield api
    finally:
        api.close()


__all__ = ["PREFIX", "USERS", "Jobs", "JobsAPI", "serve"]
