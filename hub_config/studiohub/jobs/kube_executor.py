"""The Kubernetes :class:`~studiohub.jobs.model.Executor`: one attempt = an Indexed Job + a
headless Service, made through the API with ``kubernetes_asyncio`` (as KubeSpawner does).

It carries out the service's :class:`~studiohub.jobs.model.AttemptPlan` and decides
nothing. The plan is the one the service makes for every executor (addresses on
127.0.0.1, paths in the user's home on this host, the image environment's python); this
module translates it into a pod's terms (:func:`pod_plan`) and builds every object with
the pure builders of :mod:`studiohub.jobs.kube` only:

- each replica's framework variables are regenerated for the addresses
  ``<name>-<rank>.<name>:2222`` (:func:`~studiohub.jobs.kube.replica_addresses`), by
  :func:`~studiohub.jobs.replicas.make_replica_env` as the plan's were;
- ``STUDIOHUB_CHECKPOINT_DIR`` is the shared checkpoint claim's mount (subPath
  ``<user>/<job id>``, the same for every attempt), the outputs and TensorBoard folders
  the user's home claim mounted at ``/home/jovyan``;
- the command runs the container's ``python`` instead of the host's environment.

``poll`` reads the attempt's pods by the Job's label: a pod's index (its
``batch.kubernetes.io/job-completion-index`` annotation) is the replica's rank, a
terminated container gives its exit code, ``OOMKilled`` from the container's terminated
reason. It also copies each pod's log into ``<job_dir>/logs/attempt-N/<replica>.log``
(the file the service's API serves) and notes ``STUDIOHUB_RESUMED_FROM`` lines.
``stop`` deletes the Job (``propagationPolicy: Foreground``: its pods go first) and the
Service; ``running`` lists the Jobs labelled ``app.kubernetes.io/managed-by=studiohub``
that have not finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract
from ..catalog import Catalog
from ..slugs import safe_slug
from ..units import format_memory
from . import kube
from .model import AttemptPlan, ReplicaState
from .replicas import Replica, framework_kind, make_replica_env

log = logging.getLogger("studiohub.jobs.kube")

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MANAGED = "app.kubernetes.io/managed-by=studiohub"
#: Most bytes of a pod's log copied (the API's limitBytes: the first ones; the runtime keeps
#: the rest in the pod's log until the pod is deleted).
MAX_LOG_BYTES = 8 * 1024 * 1024
STOP_WAIT = 120.0


@dataclass(frozen=True)
class PodPlan:
    """An attempt in a pod's terms: what :func:`studiohub.jobs.kube.make_job` takes."""

    name: str
    labels: dict[str, str]
    image: str
    per_index_env: list[dict[str, str]]
    command: list[str]
    common_env: dict[str, str]
    job_dir: str  # the checkpoint claim's subPath


def replicas_of(plan: AttemptPlan) -> list[Replica]:
    """The plan's replicas as :class:`Replica` (``worker-1``, rank 2 → worker, 1, 2)."""
    out = []
    for r in sorted(plan.replicas, key=lambda r: r.rank):
        role, _, index = r.name.rpartition("-")
        out.append(Replica(role, int(index), r.rank))
    return out


def home_of(plan: AttemptPlan) -> str:
    """The user's home on the service's host: the plan's workdir is
    ``<home>/studiohub-jobs/<id>/code``."""
    return posixpath.dirname(posixpath.dirname(posixpath.dirname(plan.workdir)))


def in_pod(path: str, home: str) -> str:
    """A path in the user's home on this host as the pod sees it (the home claim's mount)."""
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return kube.HOME_MOUNT + path[len(home.rstrip("/")):]
    return path


def pod_command(command: Sequence[str], home: str) -> list[str]:
    """The container's ``python`` for the host environment's; home paths moved."""
    argv = [in_pod(a, home) for a in command]
    if argv and posixpath.basename(argv[0]).startswith("python") and "/" in argv[0]:
        argv[0] = "python"
    return argv


def pod_plan(plan: AttemptPlan, kind: str, container_image: str) -> PodPlan:
    """Translate the service's plan (see the module's docstring)."""
    name = kube.job_object_name(plan.job_id, plan.attempt)
    replicas = replicas_of(plan)
    addresses = kube.replica_addresses(name, replicas)
    home = home_of(plan)
    dirs = {r.name: r.env for r in plan.replicas}
    generated_keys: set[str] = set()
    per_index = []
    for replica in replicas:
        planned = dirs[replica.name]
        env = make_replica_env(
            kind, replicas, addresses, replica, job_id=plan.job_id, attempt=plan.attempt,
            checkpoint_dir=kube.CHECKPOINTS_MOUNT,
            output_dir=in_pod(planned.get(contract.OUTPUT_DIR, ""), home),
            tensorboard_dir=in_pod(planned.get(contract.TENSORBOARD_DIR, ""), home))
        generated_keys |= set(env)
        # The placement's own variables (thread limits…), not the host's GPU numbers:
        # on Kubernetes the device plugin sets CUDA_VISIBLE_DEVICES.
        extra = {k: v for k, v in planned.items() if k not in env and
                 k != "CUDA_VISIBLE_DEVICES" and not _is_framework_key(k)}
        per_index.append({**extra, **env})
    return PodPlan(name=name, labels=kube.make_labels(plan.job_id, plan.user, plan.attempt),
                   image=container_image, per_index_env=per_index,
                   command=pod_command(plan.command, home),
                   common_env={k: v for k, v in plan.env.items() if k not in generated_keys},
                   job_dir=f"{safe_slug(plan.user, 63)}/{plan.job_id}")


def _is_framework_key(key: str) -> bool:
    """A variable the local plan generated for 127.0.0.1 (regenerated for the pods)."""
    return key in ("TF_CONFIG", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK",
                   "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK") or key.startswith("DMLC_")


class KubeExecutor:
    """Attempts as Indexed Jobs in one namespace (the release's)."""

    def __init__(self, batch: Any, core: Any, namespace: str,
                 catalog: Callable[[], Catalog], *,
                 home_claim: Callable[[str], str] = lambda user: f"claim-{safe_slug(user)}",
                 checkpoint_claim: str = "studiohub-jobs", uid: int = 1000,
                 gid: int = 100, stop_wait: float = STOP_WAIT) -> None:
        self.batch, self.core, self.namespace = batch, core, namespace
        self.catalog, self.home_claim, self.checkpoint_claim = catalog, home_claim, \
            checkpoint_claim
        self.uid, self.gid, self.stop_wait = uid, gid, stop_wait
        self._resumed: dict[tuple[str, int], list[tuple[str, str]]] = {}

    @classmethod
    async def in_cluster(cls, catalog: Callable[[], Catalog], **kwargs: Any) -> KubeExecutor:
        """With the pod's service account (the chart's Role), in its own namespace."""
        from kubernetes_asyncio import client, config

        config.load_incluster_config()
        api = client.ApiClient()
        namespace = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace"
                         ).read_text().strip()
        return cls(client.BatchV1Api(api), client.CoreV1Api(api), namespace, catalog,
                   **kwargs)

    # --- the objects --------------------------------------------------------------------

    def objects(self, plan: AttemptPlan) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Service, Job) of the attempt: :mod:`studiohub.jobs.kube`'s builders only."""
        catalog = self.catalog()
        image = catalog.images.get(plan.image)
        size = catalog.sizes.get(plan.size)
        if image is None or size is None:
            raise ValueError(f"image {plan.image!r} or size {plan.size!r} is no longer in "
                             "the catalog")
        pod = pod_plan(plan, framework_kind(image.framework),
                       plan.container_image or image.container_image)
        job = kube.make_job(pod.name, labels=pod.labels, image=pod.image, size=size,
                            per_index_env=pod.per_index_env, command=pod.command,
                            common_env=pod.common_env,
                            home_claim=self.home_claim(plan.user),  # the hub user's name
                            checkpoint_claim=self.checkpoint_claim, job_dir=pod.job_dir,
                            timeout=plan.timeout, uid=self.uid, gid=self.gid)
        return kube.make_service(pod.name, pod.labels), job

    # --- Executor -----------------------------------------------------------------------

    async def start(self, plan: AttemptPlan) -> None:
        """Create the Service, then the Job; all or none (a failed Job removes both)."""
        service, job = self.objects(plan)
        await self._create(self.core.create_namespaced_service, service)
        try:
            await self._create(self.batch.create_namespaced_job, job)
        except Exception:
            await self._delete(self.core.delete_namespaced_service,
                               service["metadata"]["name"])
            raise

    async def poll(self, plan: AttemptPlan) -> Sequence[ReplicaState]:
        name = kube.job_object_name(plan.job_id, plan.attempt)
        pods = await self._pods(name)
        by_index: dict[int, Any] = {}
        for pod in pods:  # a replaced pod: the newest of its index counts
            index = _index(pod)
            if index is None:
                continue
            if index not in by_index or _created(pod) >= _created(by_index[index]):
                by_index[index] = pod
        job_failed = await self._job_failed(name) if len(by_index) < len(plan.replicas) \
            else False
        states = []
        for replica in sorted(plan.replicas, key=lambda r: r.rank):
            pod = by_index.get(replica.rank)
            if pod is None:  # not made yet (running: pending), or gone with the Job
                states.append(ReplicaState(replica.name, not job_failed,
                                           -9 if job_failed else None,
                                           reason=f"{replica.name} was deleted"
                                           if job_failed else ""))
                continue
            states.append(self._state(plan, replica.name, pod))
        await self._copy_logs(plan, by_index)
        return states

    def _state(self, plan: AttemptPlan, replica: str, pod: Any) -> ReplicaState:
        terminated = _terminated(pod)
        if terminated is None:
            if getattr(pod.status, "phase", "") == "Failed":  # evicted, never ran
                reason = getattr(pod.status, "reason", "") or "failed"
                return ReplicaState(replica, False, -9, reason=f"{replica}: pod {reason}")
            return ReplicaState(replica, True)
        code = int(terminated.exit_code)
        if terminated.reason == "OOMKilled":
            size = self.catalog().sizes.get(plan.size)
            memory = format_memory(size.memory) if size else plan.size
            return ReplicaState(replica, False, code, oom_killed=True,
                                reason=f"OOMKilled: {replica} used more than {memory}")
        return ReplicaState(replica, False, code)

    async def stop(self, plan: AttemptPlan) -> None:
        """Delete the Job (pods first) and the Service; wait until no pod is left."""
        name = kube.job_object_name(plan.job_id, plan.attempt)
        await self._delete(self.batch.delete_namespaced_job, name,
                           propagation_policy="Foreground")
        await self._delete(self.core.delete_namespaced_service, name)
        deadline = asyncio.get_running_loop().time() + self.stop_wait
        while await self._pods(name):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("Pods of %s still exist %.0f s after its deletion", name,
                            self.stop_wait)
                return
            await asyncio.sleep(1.0)

    async def running(self) -> Sequence[tuple[str, int]]:
        jobs = await self.batch.list_namespaced_job(self.namespace, label_selector=MANAGED)
        found = []
        for job in jobs.items or []:
            labels = job.metadata.labels or {}
            conditions = (job.status.conditions if job.status else None) or []
            finished = any(c.type in ("Complete", "Failed") and c.status == "True"
                           for c in conditions)
            if finished or getattr(job.metadata, "deletion_timestamp", None):
                continue
            attempt = labels.get("studiohub.io/attempt", "")
            if labels.get("studiohub.io/job") and attempt.isdigit():
                found.append((labels["studiohub.io/job"], int(attempt)))
        return sorted(found)

    def resumed(self, plan: AttemptPlan) -> list[tuple[str, str]]:
        """(replica, ``<path> step <n>``) of each ``STUDIOHUB_RESUMED_FROM`` line seen."""
        return list(self._resumed.get((plan.job_id, plan.attempt), []))

    # --- the API ------------------------------------------------------------------------

    async def _create(self, call: Any, body: dict[str, Any]) -> None:
        try:
            await call(self.namespace, body)
        except Exception as e:
            if getattr(e, "status", None) == 409:  # made by an earlier try: keep it
                return
            raise

    async def _delete(self, call: Any, name: str, **kwargs: Any) -> None:
        try:
            await call(name, self.namespace, **kwargs)
        except Exception as e:
            if getattr(e, "status", None) != 404:
                raise

    async def _pods(self, name: str) -> list[Any]:
        pods = await self.core.list_namespaced_pod(self.namespace,
                                                   label_selector=f"{JOB_NAME_LABEL}={name}")
        return list(pods.items or [])

    async def _job_failed(self, name: str) -> bool:
        """Whether the Job is gone or failed (its missing pods will not come)."""
        try:
            job = await self.batch.read_namespaced_job(name, self.namespace)
        except Exception as e:
            if getattr(e, "status", None) == 404:
                return True
            raise
        conditions = (job.status.conditions if job.status else None) or []
        return any(c.type == "Failed" and c.status == "True" for c in conditions)

    async def _copy_logs(self, plan: AttemptPlan, pods: Mapping[int, Any]) -> None:
        """Each pod's log (up to its first :data:`MAX_LOG_BYTES`) into the file the API serves."""
        names = {r.rank: r.name for r in plan.replicas}
        folder = Path(plan.job_dir) / "logs" / f"attempt-{plan.attempt}"
        resumed: list[tuple[str, str]] = []
        for index, pod in sorted(pods.items()):
            if getattr(pod.status, "phase", "") == "Pending":
                continue
            try:
                text = await self.core.read_namespaced_pod_log(
                    pod.metadata.name, self.namespace, container="replica",
                    limit_bytes=MAX_LOG_BYTES)
            except Exception as e:
                log.debug("No log of %s yet: %s", pod.metadata.name, e)
                continue
            data = text.encode() if isinstance(text, str) else bytes(text)
            _write_if_grown(folder, f"{names[index]}.log", data)
            prefix = contract.RESUMED_FROM + " "
            resumed += [(names[index], line[len(prefix):].strip())
                        for line in data.decode(errors="replace").splitlines()
                        if line.startswith(prefix)][:100]
        self._resumed[(plan.job_id, plan.attempt)] = resumed


def _write_if_grown(folder: Path, name: str, data: bytes) -> None:
    """Replace the copy when the pod's log grew (atomically: a follower reads a whole
    file, and its offset stays valid since the log only grows)."""
    path = folder / name
    try:
        if path.stat().st_size >= len(data):
            return
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _index(pod: Any) -> int | None:
    value = (pod.metadata.annotations or {}).get(INDEX_ANNOTATION, "")
    return int(value) if str(value).isdigit() else None


def _created(pod: Any) -> Any:
    return pod.metadata.creation_timestamp or ""


def _terminated(pod: Any) -> Any:
    for status in (getattr(pod.status, "container_statuses", None) or []):
        if status.name == "replica" and status.state and status.state.terminated:
            return status.state.terminated
    return None
