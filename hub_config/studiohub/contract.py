"""The hub ↔ process contract: the ``STUDIOHUB_*`` variables and kernel names, defined once.

The hub writes these into the processes it starts (a user's server, a placed kernel, a
job replica), and the processes read them back: both sides go through this module, so a
variable's name and format live in one place.

- :func:`make_server_env` / :func:`read_server_env`: what a user's server runs on (image,
  size, limits, how switching works there). Written by both spawners (local processes and
  KubeSpawner pods), read by the Lab extension.
- :func:`make_kernel_env` / :func:`read_kernel_env`: what a kernel runs on (a placed
  kernel's own; every other kernel inherits its server's, see :func:`make_server_env`).
- :func:`kernel_name` / :func:`image_of_kernel`, :data:`KERNEL_ID`: the names of image
  kernels (``studiohub-<image>``) and the shape of a kernel's id.

Nothing here imports the hub, jupyter_server or the Lab: both sides can import it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Kernel specs of image environments are named ``studiohub-<image id>``.
KERNEL_PREFIX = "studiohub-"
#: A kernel's id as jupyter_server makes it (a UUID4 string).
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: How a server's image and size change: per notebook (local hub) or by restarting the
#: server on another profile (Kubernetes, one pod one size).
SWITCH_NOTEBOOK, SWITCH_SERVER = "notebook", "server"

# A server's variables.
IMAGE = "STUDIOHUB_IMAGE"
IMAGE_LABEL = "STUDIOHUB_IMAGE_LABEL"
SIZE = "STUDIOHUB_SIZE"
SIZE_LABEL = "STUDIOHUB_SIZE_LABEL"
CPU_LIMIT = "STUDIOHUB_CPU_LIMIT"
MEM_LIMIT = "STUDIOHUB_MEM_LIMIT"
GPU_LIMIT = "STUDIOHUB_GPU_LIMIT"
LIMITS = "STUDIOHUB_LIMITS"
LIMITS_SUMMARY = "STUDIOHUB_LIMITS_SUMMARY"
CGROUP = "STUDIOHUB_CGROUP"
SWITCHING = "STUDIOHUB_SWITCHING"
KERNEL_SOCKETS = "STUDIOHUB_KERNEL_SOCKETS"
#: Where a server reaches the hub's sharing service (set by ``studiohub.sharing.config``).
SHARING_URL = "STUDIOHUB_SHARING_URL"
#: Where a server reaches the hub's training jobs service (set by ``studiohub.jobs.config``).
JOBS_URL = "STUDIOHUB_JOBS_URL"
#: Where a user server reaches the model endpoints service (``/services/models/``).
MODELS_URL = "STUDIOHUB_MODELS_URL"
#: The Lab extension's, for the user's kernels (``%tensorboard`` calls back its server).
LAB_URL = "STUDIOHUB_LAB_URL"
LAB_KERNEL_TOKEN = "STUDIOHUB_KERNEL_TOKEN"
#: Where the light TensorBoard environment is (operator override; else under the prefix).
TENSORBOARD_PYTHON = "STUDIOHUB_TENSORBOARD_PYTHON"
PREFIX = "STUDIOHUB_PREFIX"

# A placed kernel's variables.
KERNEL_IMAGE = "STUDIOHUB_KERNEL_IMAGE"
KERNEL_SIZE = "STUDIOHUB_KERNEL_SIZE"
KERNEL_SIZE_LABEL = "STUDIOHUB_KERNEL_SIZE_LABEL"
KERNEL_CPU_LIMIT = "STUDIOHUB_KERNEL_CPU_LIMIT"
KERNEL_MEM_LIMIT = "STUDIOHUB_KERNEL_MEM_LIMIT"

# The Helm chart's variables for the hub pod (read by :mod:`studiohub.kube`).
CATALOG_ENV = "STUDIOHUB_CATALOG"
SHARING_ENV = "STUDIOHUB_SHARING"
SHARING_DB_URL_ENV = "STUDIOHUB_SHARING_DB_URL"
POD_IP_ENV = "STUDIOHUB_POD_IP"
#: On Kubernetes (the chart's hub env): whether the jobs service runs, its checkpoint claim.
JOBS_ENV = "STUDIOHUB_JOBS"
JOBS_CHECKPOINT_CLAIM_ENV = "STUDIOHUB_JOBS_CHECKPOINT_CLAIM"
JOBS_DB_URL_ENV = "STUDIOHUB_JOBS_DB_URL"

#: Variables of math libraries that size their thread pools from them, not from the host.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def kernel_name(image_id: str) -> str:
    """The kernel spec name of an image's environment."""
    return f"{KERNEL_PREFIX}{image_id}"


def image_of_kernel(name: str) -> str | None:
    """The image id of a ``studiohub-<image>`` kernel name, else None."""
    return name[len(KERNEL_PREFIX):] or None if name.startswith(KERNEL_PREFIX) else None


def is_kernel_id(value: object) -> bool:
    return isinstance(value, str) and bool(KERNEL_ID.match(value))


def thread_env(cpus: float) -> dict[str, str]:
    threads = str(max(1, int(cpus)))
    return dict.fromkeys(THREAD_VARS, threads)


@dataclass(frozen=True)
class ServerEnv:
    """What a user's server runs on, as the spawner told it (None: not told)."""

    image: str | None = None
    image_label: str | None = None
    size: str | None = None
    size_label: str | None = None
    cpus: float | None = None
    memory: int | None = None
    gpus: int = 0
    limits: str = "none"  # enforced limits, comma-separated: memory,cpu,pids
    limits_summary: str = ""
    cgroup: str = ""
    switching: str = ""  # SWITCH_NOTEBOOK, SWITCH_SERVER, or "" (not a StudioHub spawner)
    kernel_sockets: str = ""


def make_server_env(*, image_id: str | None = None, image_label: str | None = None,
                    size_id: str, size_label: str, cpus: float, memory: int, gpus: int,
                    limits: str, limits_summary: str, switching: str, cgroup: str | None = None,
                    kernel_sockets: str | None = None) -> dict[str, str]:
    """A server's variables. ``image_*`` and ``cgroup``/``kernel_sockets`` are left out
    when None (KubeSpawner sets the image's variables from the image profile option).

    They include the ``STUDIOHUB_KERNEL_*`` variables of the server's own image and size
    (:func:`server_kernel_env`): kernels inherit the server's environment, so a kernel of
    a notebook that never chose a size says where it runs as a placed one does (whose
    placement overrides them).
    """
    env = {
        SIZE: size_id,
        SIZE_LABEL: size_label,
        CPU_LIMIT: f"{cpus:g}",
        MEM_LIMIT: str(memory),
        GPU_LIMIT: str(gpus),
        LIMITS: limits or "none",
        LIMITS_SUMMARY: limits_summary,
        SWITCHING: switching,
        **server_kernel_env(size_id=size_id, size_label=size_label, cpus=cpus, memory=memory),
    }
    if image_id is not None:
        env[IMAGE] = env[KERNEL_IMAGE] = image_id
    if image_label is not None:
        env[IMAGE_LABEL] = image_label
    if cgroup is not None:
        env[CGROUP] = cgroup
    if kernel_sockets:
        env[KERNEL_SOCKETS] = kernel_sockets
    return env


def make_image_env(image_id: str, image_label: str) -> dict[str, str]:
    """A server's image variables, with ``STUDIOHUB_KERNEL_IMAGE`` for its kernels."""
    return {IMAGE: image_id, IMAGE_LABEL: image_label, KERNEL_IMAGE: image_id}


def server_kernel_env(*, size_id: str, size_label: str, cpus: float, memory: int
                      ) -> dict[str, str]:
    """The ``STUDIOHUB_KERNEL_*`` size variables of a kernel on the server's own size."""
    return {KERNEL_SIZE: size_id, KERNEL_SIZE_LABEL: size_label,
            KERNEL_CPU_LIMIT: f"{cpus:g}", KERNEL_MEM_LIMIT: str(memory)}


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number and number > 0 else None


def _memory(value: str | None) -> int | None:
    if not value:
        return None
    from .units import QuantityError, parse_memory

    try:
        return parse_memory(value)
    except QuantityError:
        return None


def read_server_env(environ: Mapping[str, str] | None = None) -> ServerEnv:
    """The server's variables; unreadable values read as None, never raise."""
    env = os.environ if environ is None else environ
    try:
        gpus = int(env.get(GPU_LIMIT) or 0)
    except ValueError:
        gpus = 0
    return ServerEnv(
        image=env.get(IMAGE) or None, image_label=env.get(IMAGE_LABEL) or None,
        size=env.get(SIZE) or None, size_label=env.get(SIZE_LABEL) or None,
        cpus=_float(env.get(CPU_LIMIT)), memory=_memory(env.get(MEM_LIMIT)), gpus=gpus,
        limits=env.get(LIMITS) or "none", limits_summary=env.get(LIMITS_SUMMARY, ""),
        cgroup=env.get(CGROUP, ""), switching=env.get(SWITCHING, ""),
        kernel_sockets=env.get(KERNEL_SOCKETS, ""))


@dataclass(frozen=True)
class KernelEnv:
    """What a kernel runs on: its placement's, else its server's own image and size."""

    image: str
    size: str
    size_label: str
    cpus: float | None
    memory: int | None


def make_kernel_env(*, image_id: str, size_id: str, size_label: str, cpus: float,
                    memory: int, gpu_ids: tuple[str, ...] | list[str]) -> dict[str, str]:
    """A placed kernel's variables: its size, GPUs and thread counts."""
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids),
        KERNEL_IMAGE: image_id,
        KERNEL_SIZE: size_id,
        KERNEL_SIZE_LABEL: size_label,
        KERNEL_CPU_LIMIT: f"{cpus:g}",
        KERNEL_MEM_LIMIT: str(memory),
        **thread_env(cpus),
    }


def read_kernel_env(environ: Mapping[str, str] | None = None) -> KernelEnv | None:
    env = os.environ if environ is None else environ
    if not env.get(KERNEL_IMAGE) or not env.get(KERNEL_SIZE):
        return None
    return KernelEnv(env[KERNEL_IMAGE], env[KERNEL_SIZE],
                     env.get(KERNEL_SIZE_LABEL) or env[KERNEL_SIZE],
                     _float(env.get(KERNEL_CPU_LIMIT)), _memory(env.get(KERNEL_MEM_LIMIT)))


# A training job replica's variables (the framework's own, such as TF_CONFIG, come from
# studiohub.jobs.replicas).
JOB_ID = "STUDIOHUB_JOB_ID"
ATTEMPT = "STUDIOHUB_ATTEMPT"
REPLICA = "STUDIOHUB_REPLICA"
REPLICA_RANK = "STUDIOHUB_REPLICA_RANK"
REPLICAS = "STUDIOHUB_REPLICAS"
CHECKPOINT_DIR = "STUDIOHUB_CHECKPOINT_DIR"
OUTPUT_DIR = "STUDIOHUB_OUTPUT_DIR"
TENSORBOARD_DIR = "STUDIOHUB_TENSORBOARD_DIR"
#: The line a replica prints when it resumed from a checkpoint (``studiohub.checkpoints``);
#: the executor's log reader turns ``<this> <path> step <n>`` into a job event.
RESUMED_FROM = "STUDIOHUB_RESUMED_FROM"
#: A user's API token for the SDK and ``studiohub jobs`` outside a server (inside one,
#: JupyterHub's own ``JUPYTERHUB_API_TOKEN``).
API_TOKEN = "STUDIOHUB_TOKEN"


def make_job_env(*, job_id: str, attempt: int, replica: str, replica_rank: int,
                 replicas: int, checkpoint_dir: str, output_dir: str,
                 tensorboard_dir: str) -> dict[str, str]:
    """A job replica's variables: which job, attempt and replica, and where it writes.

    ``checkpoint_dir`` is the same directory across every attempt of the job: a retried
    attempt resumes from what an earlier one saved there.
    """
    return {JOB_ID: job_id, ATTEMPT: str(attempt), REPLICA: replica,
            REPLICA_RANK: str(replica_rank), REPLICAS: str(replicas),
            CHECKPOINT_DIR: checkpoint_dir, OUTPUT_DIR: output_dir,
            TENSORBOARD_DIR: tensorboard_dir}
