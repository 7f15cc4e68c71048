"""A training job's replicas and the environment each one's framework expects.

Pure functions of plain values: the local executor and the Kubernetes executor both call
them, with their own addresses (``127.0.0.1:<port>`` inside the job's network namespace
locally; ``<job>-<index>.<service>:<port>`` on Kubernetes). Users never type these
variables; they are generated from ``workers`` and ``parameter_servers``:

- TensorFlow: ``TF_CONFIG`` (``cluster`` + this ``task``). No parameter servers:
  ``MultiWorkerMirroredStrategy``, every replica a ``worker`` (worker 0 acts as chief).
  With parameter servers: ``ParameterServerStrategy``, one ``chief`` (the coordinator
  that runs the user's training loop), the workers and the ``ps`` tasks.
- PyTorch: torchrun's contract, ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``,
  ``RANK``, ``LOCAL_RANK`` (one process per replica; replica 0 hosts the store).
- MXNet: kvstore ``dist_sync`` through ps-lite, ``DMLC_ROLE`` = scheduler / server /
  worker, ``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``,
  ``DMLC_NUM_WORKER``; the scheduler is one more replica, and a job with several workers
  has at least one server.
- Anything else: ``STUDIOHUB_REPLICA_*`` only (one process, or the user's own protocol).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .. import contract

TENSORFLOW, PYTORCH, MXNET, PLAIN = "tensorflow", "pytorch", "mxnet", "plain"


@dataclass(frozen=True)
class Replica:
    """One process of a job: its role, its index within the role and among all replicas."""

    role: str  # worker, chief, ps, scheduler, server
    index: int  # within its role
    rank: int  # among all replicas of the job: its position in addresses, its pod index

    @property
    def name(self) -> str:
        """``worker-0``, ``ps-1``: how logs, events and reasons name this replica."""
        return f"{self.role}-{self.index}"


def framework_kind(framework: str) -> str:
    """The catalog's ``framework`` (``TensorFlow``, ``PyTorch``, ``MXNet``…) as a kind."""
    name = framework.strip().lower()
    return name if name in (TENSORFLOW, PYTORCH, MXNET) else PLAIN


def make_replicas(kind: str, workers: int, parameter_servers: int = 0) -> list[Replica]:
    """Every replica of a job, in rank order (the order of ``addresses`` below)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if parameter_servers < 0:
        raise ValueError("parameter_servers must be 0 or more")
    roles: list[tuple[str, int]]
    if kind == TENSORFLOW and parameter_servers:
        roles = [("chief", 1), ("worker", workers), ("ps", parameter_servers)]
    elif kind == MXNET and (workers > 1 or parameter_servers):
        roles = [("scheduler", 1), ("server", max(1, parameter_servers)), ("worker", workers)]
    elif parameter_servers:
        raise ValueError(f"parameter_servers are for TensorFlow and MXNet jobs, not {kind}")
    else:
        roles = [("worker", workers)]
    replicas: list[Replica] = []
    for role, count in roles:
        replicas += [Replica(role, i, len(replicas) + i) for i in range(count)]
    return replicas


def tf_config(replicas: Sequence[Replica], addresses: Sequence[str], me: Replica) -> str:
    """``TF_CONFIG`` for ``me``: every task's ``host:port`` by role, and this task."""
    cluster: dict[str, list[str]] = {}
    for replica in replicas:
        cluster.setdefault(replica.role, []).append(addresses[replica.rank])
    return json.dumps({"cluster": cluster, "task": {"type": me.role, "index": me.index}},
                      sort_keys=True)


def framework_env(kind: str, replicas: Sequence[Replica], addresses: Sequence[str],
                  me: Replica) -> dict[str, str]:
    """What ``me``'s framework reads to find the others (``addresses[rank]`` = host:port)."""
    if len(addresses) != len(replicas):
        raise ValueError("one address per replica")
    if kind == TENSORFLOW and len(replicas) > 1:
        return {"TF_CONFIG": tf_config(replicas, addresses, me)}
    if kind == PYTORCH:
        host, port = addresses[0].rsplit(":", 1)
        return {"MASTER_ADDR": host, "MASTER_PORT": port, "WORLD_SIZE": str(len(replicas)),
                "RANK": str(me.rank), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "GROUP_RANK": str(me.rank)}
    if kind == MXNET and len(replicas) > 1:
        host, port = addresses[0].rsplit(":", 1)
        return {"DMLC_ROLE": me.role, "DMLC_PS_ROOT_URI": host, "DMLC_PS_ROOT_PORT": port,
                "DMLC_NUM_SERVER": str(sum(r.role == "server" for r in replicas)),
                "DMLC_NUM_WORKER": str(sum(r.role == "worker" for r in replicas))}
    return {}


def make_replica_env(kind: str, replicas: Sequence[Replica], addresses: Sequence[str],
                     me: Replica, *, job_id: str, attempt: int, checkpoint_dir: str,
                     output_dir: str, tensorboard_dir: str) -> dict[str, str]:
    """The whole generated environment of one replica: the framework's and StudioHub's."""
    return {
        **framework_env(kind, replicas, addresses, me),
        **contract.make_job_env(job_id=job_id, attempt=attempt, replica=me.name,
                                replica_rank=me.rank, replicas=len(replicas),
                                checkpoint_dir=checkpoint_dir, output_dir=output_dir,
                                tensorboard_dir=tensorboard_dir),
    }
