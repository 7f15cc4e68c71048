"""The jobs service's client of the hub's job placement API (the hub owns placements).

The hub decides where every replica runs, with the same capacity check, GPU allocator and
refusal wording as servers and kernels (:mod:`studiohub.placement`); this module only
asks it, with the service's own token (scope ``custom:studiohub:jobs-placement``):

    POST   /hub/api/studiohub/users/NAME/jobs/ID/placement  {image, size, replicas, check?}
    DELETE /hub/api/studiohub/users/NAME/jobs/ID/placement

A refusal comes back as :class:`PlacementRefused` with the hub's status and message as
they are (400: the catalog refuses it for the user's domains or it can never fit here;
409: no room now); a hub that cannot be reached is :class:`HubUnreachable`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class PlacementRefused(Exception):
    """The hub will not place the job: its status (400, 404, 409) and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class HubUnreachable(Exception):
    """The hub did not answer (down, restarting, or failing)."""


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where one replica runs: its GPUs, the cgroup.procs files it joins, its limits env."""

    gpus: tuple[str, ...] = ()
    procs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


class Placing(Protocol):
    async def check(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> None:
        """Whether the hub would place it now (raises :class:`PlacementRefused`)."""

    async def place(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> dict[str, ReplicaPlacement]:
        """Place every replica (all or none)."""

    async def release(self, user: str, job_id: str) -> None:
        """Release every replica's placement (nothing placed: nothing to do)."""


def parse_placements(data: Any) -> dict[str, ReplicaPlacement]:
    """The hub's 201 answer ``{replicas: {name: {gpus, procs, env}}}``."""
    replicas = data.get("replicas") if isinstance(data, dict) else None
    if not isinstance(replicas, dict):
        raise HubUnreachable("the hub's placement answer has no replicas")
    return {name: ReplicaPlacement(tuple(r.get("gpus") or ()), tuple(r.get("procs") or ()),
                                   {str(k): str(v) for k, v in (r.get("env") or {}).items()})
            for name, r in replicas.items()}


class HubPlacing:
    """:class:`Placing` through the hub's REST API (``JUPYTERHUB_API_URL``)."""

    def __init__(self, api_url: str, token: str, timeout: float = 60.0) -> None:
        self.api_url, self.token, self.timeout = api_url.rstrip("/"), token, timeout

    def _url(self, user: str, job_id: str) -> str:
        return (f"{self.api_url}/studiohub/users/{quote(user, safe='')}/jobs/"
                f"{quote(job_id, safe='')}/placement")

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        request = HTTPRequest(url, method=method, request_timeout=self.timeout,
                              headers={"Authorization": f"token {self.token}",
                                       "Content-Type": "application/json"},
                              body=None if body is None else json.dumps(body))
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if e.code >= 500 or e.code == 599 or e.response is None:
                raise HubUnreachable(f"the hub answered {e.code}") from None
            try:
                message = json.loads(e.response.body or b"{}").get("message") or str(e)
            except ValueError:
                message = str(e)
            raise PlacementRefused(e.code, message) from None
        except OSError as e:
            raise HubUnreachable(str(e)) from None
        return json.loads(response.body) if response.body else None

    async def check(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> None:
        await self._call("POST", self._url(user, job_id), {
            "image": image, "size": size, "replicas": list(replicas), "check": True})

    async def place(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> dict[str, ReplicaPlacement]:
        return parse_placements(await self._call("POST", self._url(user, job_id), {
            "image": image, "size": size, "replicas": list(replicas)}))

    async def release(self, user: str, job_id: str) -> None:
        try:
            await self._call("DELETE", self._url(user, job_id))
        except PlacementRefused as e:
            if e.status != 404:  # nothing placed: nothing to release
                raise
