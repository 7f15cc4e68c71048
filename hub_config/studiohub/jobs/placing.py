"""The jobs service's client of the hub's job placement API (the hub owns placements).

The hub decides where every replica runs, with the same capacity check, GPU allocator and
refusal wording as servers and kernels (:mod:`studiohub.placement`); this module only
asks it, with the service's own token (scope ``custom:studiohub:jobs-placement``):

    POST   /hub/api/studiohub/users/NAME/jobs/ID/placement  {image, size, replicas, check?}
    DELETE /hub/api/studiohub/users/NAME/jobs/ID/placement

A refusal comes back as :class:`PlacementRefused` with the hub's status and message as
they are (400: the catalog refuses it for the user's domains or it can never fit here;
409: no room now); a hub that cannot be reached is :class:`HubUnreachable`.

On Kubernetes the service uses :class:`KubePlacing` instead: the kube-scheduler places
the replicas' pods (see its docstring); the hub's placement API is not called.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..catalog import Catalog


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

    def __init__(self, api_url: str, token: str, timeout: float = 60.0,
                 group: str = "jobs") -> None:
        """``group``: the hub API's collection, ``jobs`` or ``endpoints`` (the models
        service places each endpoint version's replicas through the same owner)."""
        self.api_url, self.token, self.timeout = api_url.rstrip("/"), token, timeout
        self.group = group

    def _url(self, user: str, job_id: str) -> str:
        return (f"{self.api_url}/studiohub/users/{quote(user, safe='')}/{self.group}/"
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


class KubePlacing:
    """:class:`Placing` on Kubernetes: the catalog is checked, nothing is booked here.

    On Kubernetes the cluster places pods: the kube-scheduler is the placement owner for
    job replicas exactly as it is for users' servers (KubeSpawner's pods), with the
    size's requests = limits, node selector and tolerations on every replica's pod
    (:func:`studiohub.jobs.kube.make_job`). The hub's ``studiohub.placement`` (its book,
    cgroups, GPU allocator) only knows this host and is not asked, so this is not a
    second placer: it answers "the cluster decides" for every replica, after checking
    that the job's image and size are still in the catalog (the user's domains were
    checked by the service at submit with ``Catalog.choose``; the domains' job quotas
    stay the service's, :mod:`.quotas`). A job whose pods find no room waits ``Pending``
    in the cluster, as a server's pod would.
    """

    def __init__(self, catalog: Callable[[], Catalog]) -> None:
        self.catalog = catalog

    def _known(self, image: str, size: str, replicas: Sequence[str]) -> None:
        catalog = self.catalog()
        if image not in catalog.images:
            raise PlacementRefused(400, f"image {image!r} is not in the catalog")
        if size not in catalog.sizes:
            raise PlacementRefused(400, f"size {size!r} is not in the catalog")
        if not replicas:
            raise PlacementRefused(400, "a job needs at least one replica")

    async def check(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> None:
        self._known(image, size, replicas)

    async def place(self, user: str, job_id: str, image: str, size: str,
                    replicas: Sequence[str]) -> dict[str, ReplicaPlacement]:
        self._known(image, size, replicas)
        # No GPUs, cgroups or limits variables here: the device plugin and the pod's
        # resources set them in each replica's container.
        return {name: ReplicaPlacement() for name in replicas}

    async def release(self, user: str, job_id: str) -> None:
        """Nothing was booked: deleting the attempt's Job frees its room in the cluster."""
