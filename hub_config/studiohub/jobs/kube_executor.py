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
- the command runs the image environment's python in the container
  (``/opt/studiohub/envs/<image>/bin/python``; a notebook's papermill the hub
  environment's, ``/opt/studiohub/hub/bin/python``), with that environment's ``bin``
  first on ``PATH``;
- a notebook, script or Git job runs in its code snapshot, made by the first attempt's
  init container on the checkpoint claim and mounted read-only at ``/srv/studiohub/code``
  (:mod:`.kube_snapshot`; the order the service wrote at submit is
  ``<job_dir>/snapshot.json``).

``poll`` reads the attempt's pods by the Job's label: a pod's index (its
``batch.kubernetes.io/job-completion-index`` annotation) is the replica's rank, a
terminated container gives its exit code, ``OOMKilled`` from the container's terminated
reason. It also copies each pod's log into ``<job_dir>/logs/attempt-N/<replica>.log``
(the file the service's API serves) and notes ``STUDIOHUB_RESUMED_FROM`` lines.
``start`` creates the Service, the attempt's NetworkPolicy, then the Job; ``stop``
deletes the Job (``propagationPolicy: Foreground``: its pods go first), the Service and
the NetworkPolicy; ``running`` lists the Jobs labelled ``app.kubernetes.io/managed-by=studiohub``
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
from . import kube, kube_snapshot
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
#: The job's folder in the user's home (outputs, tensorboard), as on every executor.
JOBS_DIR = "studiohub-jobs"


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
    working_dir: str = kube.HOME_MOUNT


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


def in_snapshot(path: str, code_dir: str) -> str:
    """A path in the job's ``code/`` on this host as the pod sees it (the snapshot mount)."""
    if code_dir and (path == code_dir or path.startswith(code_dir.rstrip("/") + "/")):
        return kube_snapshot.CODE_MOUNT + path[len(code_dir.rstrip("/")):]
    return path


def pod_command(command: Sequence[str], home: str, image_id: str,
                code_dir: str = "") -> list[str]:
    """The image environment's python stays; any other python path (the hub's, which
    runs papermill) becomes the image's hub environment's; ``code/`` paths go to the
    snapshot mount (with ``code_dir``), home paths to the home claim's."""
    argv = [in_pod(in_snapshot(a, code_dir), home) for a in command]
    own = f"{kube.image_bin(image_id)}/"
    if argv and argv[0].startswith("/") and not argv[0].startswith(own) and \
            posixpath.basename(argv[0]).startswith("python"):
        argv[0] = kube.POD_HUB_PYTHON
    return argv


def pod_plan(plan: AttemptPlan, kind: str, container_image: str,
             snapshot: bool = False) -> PodPlan:
    """Translate the service's plan (see the module's docstring); ``snapshot``: the job
    runs in its code snapshot."""
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
                   command=pod_command(plan.command, home, plan.image,
                                       plan.workdir if snapshot else ""),
                   common_env={"PATH": f"{kube.image_bin(plan.image)}:{kube.POD_PATH}",
                               **{k: v for k, v in plan.env.items()
                                  if k not in generated_keys}},
                   job_dir=f"{safe_slug(plan.user, 63)}/{plan.job_id}",
                   working_dir=kube_snapshot.CODE_MOUNT if snapshot else kube.HOME_MOUNT)


def _is_framework_key(key: str) -> bool:
    """A variable the local plan generated for 127.0.0.1 (regenerated for the pods)."""
    return key in ("TF_CONFIG", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK",
                   "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK") or key.startswith("DMLC_")


class KubeExecutor:
    """Attempts as Indexed Jobs in one namespace (the release's)."""

    def __init__(self, batch: Any, core: Any, namespace: str,
                 catalog: Callable[[], Catalog], *, networking: Any,
                 home_claim: Callable[[str], str] = lambda user: f"claim-{safe_slug(user)}",
                 checkpoint_claim: str = "studiohub-jobs", uid: int = 1000,
                 gid: int = 100, stop_wait: float = STOP_WAIT) -> None:
        self.batch, self.core, self.networking = batch, core, networking
        self.namespace = namespace
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
                   networking=client.NetworkingV1Api(api), **kwargs)

    # --- the objects --------------------------------------------------------------------

    def objects(self, plan: AttemptPlan) -> tuple[dict[str, Any], dict[str, Any],
                                                  dict[str, Any]]:
        """(Service, NetworkPolicy, Job) of the attempt: the pure builders of
        :mod:`studiohub.jobs.kube` and :mod:`studiohub.jobs.kube_snapshot` only."""
        catalog = self.catalog()
        image = catalog.images.get(plan.image)
        size = catalog.sizes.get(plan.size)
        if image is None or size is None:
            raise ValueError(f"image {plan.image!r} or size {plan.size!r} is no longer in "
                             "the catalog")
        order = kube_snapshot.read_order(plan.job_dir) if plan.job_dir else None
        pod = pod_plan(plan, framework_kind(image.framework),
                       plan.container_image or image.container_image, order is not None)
        init, mounts = self._snapshot_parts(plan, pod, order, size)
        job = kube.make_job(pod.name, labels=pod.labels, image=pod.image, size=size,
                            per_index_env=pod.per_index_env, command=pod.command,
                            common_env=pod.common_env,
                            home_claim=self.home_claim(plan.user),  # the hub user's name
                            checkpoint_claim=self.checkpoint_claim, job_dir=pod.job_dir,
                            timeout=plan.timeout, uid=self.uid, gid=self.gid,
                            working_dir=pod.working_dir, init_containers=init,
                            extra_mounts=mounts)
        return (kube.make_service(pod.name, pod.labels),
                kube.make_network_policy(pod.name, pod.labels), job)

    def _snapshot_parts(self, plan: AttemptPlan, pod: PodPlan,
                        order: kube_snapshot.SnapshotOrder | None, size: Any
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The init container that makes the snapshot and the replica's read-only mount
        of it; none for a job without a snapshot order (a module or a command)."""
        if order is None:
            return [], []
        subpath = kube_snapshot.snapshot_subpath(safe_slug(plan.user, 63), plan.job_id)
        folders = [f"{JOBS_DIR}/{plan.job_id}/{sub}" for sub in ("outputs", "tensorboard")]
        init = kube_snapshot.make_snapshot_container(
            pod.image, order, subpath=subpath, home_folders=folders,
            resources=kube.make_resources(size), security=kube.CONTAINER_SECURITY,
            home_mount=kube.HOME_MOUNT)
        return [init], [{"name": "checkpoints", "mountPath": kube_snapshot.CODE_MOUNT,
                         "subPath": f"{subpath}/code", "readOnly": True}]

    # --- Executor -----------------------------------------------------------------------

    async def start(self, plan: AttemptPlan) -> None:
        """Create the Service, the NetworkPolicy (before any pod: replicas reach each
        other from their first packet), then the Job; all or none."""
        service, policy, job = self.objects(plan)
        name = service["metadata"]["name"]
        await self._create(self.core.create_namespaced_service, service)
        try:
            await self._create(self.networking.create_namespaced_network_policy, policy)
            await self._create(self.batch.create_namespaced_job, job)
        except Exception:
            await self._delete(self.networking.delete_namespaced_network_policy, name)
            await self._delete(self.core.delete_namespaced_service, name)
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
        snapshot = _terminated(pod, kube_snapshot.INIT_CONTAINER, "init_container_statuses")
        if snapshot is not None and snapshot.exit_code:
            # Exit 2: the user's code (a missing file, a refused clone) — not retried.
            lines = (snapshot.message or "").strip().splitlines()
            why = lines[-1].removeprefix("snapshot: ") if lines else \
                f"exit code {snapshot.exit_code}"
            return ReplicaState(replica, False, 2, reason=f"the code snapshot failed: {why}")
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
        """Delete the Job (pods first), the Service and the NetworkPolicy; wait until no
        pod is left."""
        name = kube.job_object_name(plan.job_id, plan.attempt)
        await self._delete(self.batch.delete_namespaced_job, name,
                           propagation_policy="Foreground")
        await self._delete(self.core.delete_namespaced_service, name)
        await self._delete(self.networking.delete_namespaced_network_policy, name)
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

    async def discard(self, job: Any, account: Any, outputs: bool) -> None:
        """The service's ``discard`` hook: a clean-up Job removes a deleted job's snapshot
        (and with ``outputs`` its checkpoints and home folder); created, not awaited."""
        catalog = self.catalog()
        image = catalog.images.get(job.image) or next(iter(catalog.images.values()), None)
        if image is None:
            raise ValueError("the catalog has no image to run the clean-up with")
        body = kube_snapshot.make_cleanup_job(
            job.id, user_slug=safe_slug(job.user, 63), image=image.container_image,
            home_claim=self.home_claim(job.user), checkpoint_claim=self.checkpoint_claim,
            outputs=outputs, home_mount=kube.HOME_MOUNT, uid=self.uid, gid=self.gid)
        try:
            await self._create(self.batch.create_namespaced_job, body)
        except Exception as e:
            status = getattr(e, "status", None)
            if not status:
                raise
            raise OSError(f"Kubernetes refused the clean-up Job ({status} "
                          f"{getattr(e, 'reason', '')})") from None

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


def _terminated(pod: Any, container: str = "replica",
                statuses: str = "container_statuses") -> Any:
    for status in (getattr(pod.status, statuses, None) or []):
        if status.name == container and status.state and status.state.terminated:
            return status.state.terminated
    return None
