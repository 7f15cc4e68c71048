"""A training job's attempt on Kubernetes: an Indexed Job plus a headless Service.

Pure builders of plain dicts (as KubeSpawner's ``objects.py``): the Kubernetes executor
creates what they return through the API and nothing else. One attempt of a job is

- a headless ``Service`` ``<name>`` selecting the attempt's pods, so every replica has a
  stable DNS name ``<name>-<index>.<name>`` (the Job's pods get hostname
  ``<job name>-<index>`` and ``subdomain: <name>``);
- a ``NetworkPolicy`` ``<name>`` (:func:`make_network_policy`): the attempt's pods accept
  connections only from pods of the same job and attempt (the chart's policy refuses
  every other connection to any replica), so replicas reach each other and nobody else
  reaches their ports;
- a ``batch/v1`` ``Job`` with ``completionMode: Indexed``, one index per replica
  (:func:`studiohub.jobs.replicas.make_replicas` order), the size's requests = limits,
  GPUs as ``nvidia.com/gpu``, the size's node selector and tolerations, the user's home
  claim and the shared checkpoint claim mounted, ``activeDeadlineSeconds`` for the
  timeout, ``backoffLimit: 0`` with a ``podFailurePolicy`` that fails the attempt at
  once on a user-code exit code and ignores disruptions (the service, not the Job
  controller, starts the next attempt, recreating the whole group as torchrun elastic
  and JobSet do); for a notebook, script or Git job, the init container that makes the
  code snapshot and the snapshot's read-only mount (:mod:`.kube_snapshot`).

Each replica's framework variables differ by index; the Job has one pod template, so
its command picks them by ``$JOB_COMPLETION_INDEX`` (set by Kubernetes for Indexed Jobs)
in a ``/bin/sh`` ``case`` before it ``exec``s the user's command.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from ..catalog import Size
from ..slugs import safe_slug
from .replicas import Replica

GPU_RESOURCE = "nvidia.com/gpu"
#: The port every replica listens on (each is its own pod).
REPLICA_PORT = 2222
#: Exit codes of the user's code that mean "do not retry": a bug fails fast.
USER_ERROR_EXIT_CODES = (1, 2)
#: Where the shared checkpoint claim is mounted in every replica.
CHECKPOINTS_MOUNT = "/srv/studiohub/jobs"
HOME_MOUNT = "/home/jovyan"
#: Where the StudioHub images keep their environments (images/singleuser/Dockerfile):
#: each image's own under ``envs/<image>``, the hub environment (papermill, the SDK) under
#: ``hub``, first on the images' ``PATH``.
IMAGE_PREFIX = "/opt/studiohub"
POD_HUB_PYTHON = f"{IMAGE_PREFIX}/hub/bin/python"
#: ``PATH`` after an image environment's ``bin``, as in the images.
POD_PATH = f"{IMAGE_PREFIX}/hub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_bin(image_id: str) -> str:
    """The ``bin`` of an image's environment inside its container."""
    return f"{IMAGE_PREFIX}/envs/{image_id}/bin"


#: What a replica's containers may not do (they run as the pod's non-root user).
CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False,
                                      "capabilities": {"drop": ["ALL"]}}
#: Labels that tell one job's attempt from every other (:func:`make_labels`).
ATTEMPT_LABELS = ("studiohub.io/job", "studiohub.io/attempt")


def job_object_name(job_id: str, attempt: int) -> str:
    """``job-<id>-a<attempt>``: a DNS label (≤ 63 characters with the pod index)."""
    return safe_slug(f"job-{job_id}-a{attempt}", 52)


def replica_addresses(name: str, replicas: Sequence[Replica],
                      port: int = REPLICA_PORT) -> list[str]:
    """``<name>-<index>.<name>:<port>``, one per replica, in rank order."""
    return [f"{name}-{r.rank}.{name}:{port}" for r in replicas]


def make_labels(job_id: str, user: str, attempt: int) -> dict[str, str]:
    return {"app.kubernetes.io/name": "studiohub-job",
            "app.kubernetes.io/managed-by": "studiohub",
            "studiohub.io/job": safe_slug(job_id, 63),
            "studiohub.io/user": safe_slug(user, 63),
            "studiohub.io/attempt": str(attempt)}


def make_service(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The headless Service that gives each replica its DNS name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": {"batch.kubernetes.io/job-name": name},
                 "ports": [{"name": "replica", "port": REPLICA_PORT,
                            "targetPort": REPLICA_PORT}]},
    }


def make_network_policy(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """Ingress to the attempt's pods from the attempt's pods only (any port): the label
    selector is the job's and the attempt's labels (``studiohub.io/job``,
    ``studiohub.io/attempt``). Egress is not restricted (replicas read data)."""
    selector = {"matchLabels": {k: labels[k] for k in ATTEMPT_LABELS}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": selector}]}]},
    }


def make_entry_command(per_index_env: Sequence[Mapping[str, str]],
                       command: Sequence[str]) -> list[str]:
    """``/bin/sh -c``: export index N's variables, then exec the user's command."""
    cases = []
    for index, env in enumerate(per_index_env):
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in sorted(env.items()))
        cases.append(f"{index}) {exports};;")
    script = ('case "$JOB_COMPLETION_INDEX" in ' + " ".join(cases) +
              ' *) echo "unknown replica index $JOB_COMPLETION_INDEX" >&2; exit 3;; esac; '
              'exec "$@"')
    return ["/bin/sh", "-c", script, "studiohub-replica", *command]


def make_resources(size: Size) -> dict[str, Any]:
    """Requests = limits (Guaranteed QoS): the same promise as a local cgroup."""
    limits: dict[str, Any] = {"cpu": f"{size.cpus:g}", "memory": str(size.memory)}
    if size.gpus:
        limits[GPU_RESOURCE] = str(size.gpus)
    return {"requests": dict(limits), "limits": limits}


def make_job(name: str, *, labels: Mapping[str, str], image: str, size: Size,
             per_index_env: Sequence[Mapping[str, str]], command: Sequence[str],
             common_env: Mapping[str, str], home_claim: str, checkpoint_claim: str,
             job_dir: str, timeout: int | None = None, uid: int = 1000,
             gid: int = 100, working_dir: str = HOME_MOUNT,
             init_containers: Sequence[Mapping[str, Any]] = (),
             extra_mounts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The Indexed Job of one attempt: one pod per replica, all or nothing (with the
    snapshot's init container and mount when given: :mod:`.kube_snapshot`)."""
    replicas = len(per_index_env)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "subdomain": name,
        "securityContext": {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid,
                            "runAsNonRoot": True},
        "containers": [{
            "name": "replica",
            "image": image,
            "command": make_entry_command(per_index_env, command),
            "workingDir": working_dir,
            "env": [{"name": k, "value": v} for k, v in sorted(common_env.items())],
            "ports": [{"name": "replica", "containerPort": REPLICA_PORT}],
            "resources": make_resources(size),
            "securityContext": dict(CONTAINER_SECURITY),
            "volumeMounts": [
                {"name": "home", "mountPath": HOME_MOUNT},
                {"name": "checkpoints", "mountPath": CHECKPOINTS_MOUNT, "subPath": job_dir},
                *(dict(m) for m in extra_mounts),
            ],
        }],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": home_claim}},
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint_claim}},
        ],
    }
    if init_containers:
        pod_spec["initContainers"] = [dict(c) for c in init_containers]
    if size.node_selector:
        pod_spec["nodeSelector"] = dict(size.node_selector)
    if size.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in size.tolerations]
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": replicas,
        "parallelism": replicas,
        "backoffLimit": 0,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore",
             "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "replica",
                                                  "operator": "In",
                                                  "values": list(USER_ERROR_EXIT_CODES)}},
        ]},
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if timeout:
        spec["activeDeadlineSeconds"] = int(timeout)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": dict(labels)}, "spec": spec}
