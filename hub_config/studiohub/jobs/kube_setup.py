"""What the jobs service uses instead of the local pieces when it runs on Kubernetes.

Selected by ``JobsApp.executor = "kubernetes"`` (``--executor=kubernetes``, which
:func:`studiohub.kube.configure` puts on the service's command line in the hub pod):

- the executor is :class:`.kube_executor.KubeExecutor` (Indexed Jobs in the release's
  namespace, with the hub pod's service account), never the local one (no keepers,
  cgroups or network namespaces on the hub pod);
- placement is :class:`.placing.KubePlacing`: the kube-scheduler places the pods, the
  hub's placement API is not called;
- a user's replicas run as the image's user in a pod whose home is the user's home
  claim (KubeSpawner's ``claim-<user>``, :func:`home_claim_name`) mounted at
  ``/home/jovyan``, with the image environment's python: :func:`kube_account`;
- the code snapshot of a notebook, script or Git job is made in the job's own pods (the
  hub pod mounts no user's home): at submit the service only writes the order
  (:func:`order_snapshot`, :mod:`.kube_snapshot`); a module or a command job runs from
  the home. A deleted job's snapshot is removed by a clean-up Job
  (:meth:`.kube_executor.KubeExecutor.discard`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from . import kube, kube_snapshot
from .placing import KubePlacing
from .service import Account, Jobs, Prepare

#: KubeSpawner's ``pvc_name_template`` for users' homes (the official chart's claims).
HOME_CLAIM_TEMPLATE = "claim-{username}"
#: The image's user (the Jupyter images' ``jovyan``) owns the home inside a pod.
POD_USER = "jovyan"


def home_claim_name(user: str, template: str = HOME_CLAIM_TEMPLATE) -> str:
    """The claim KubeSpawner made for ``user``'s home: ``template`` expanded with
    KubeSpawner's own slug of the name (its ``safe`` scheme, as for the default server)."""
    from kubespawner.slugs import safe_slug

    slug = safe_slug(user, max_length=48)  # KubeSpawner's _slug_max_length
    return template.format(username=slug, user_server=slug, servername="", unescaped_username=user)


def kube_account(user: str) -> Account:
    """A user's replicas in a pod: the image's user, the home claim's mount, and the
    image environment's python (``/opt/studiohub/envs/<image>/bin/python``)."""
    return Account(POD_USER, kube.HOME_MOUNT,
                   python_of=lambda image: f"{kube.image_bin(image)}/python")


def order_snapshot(state_dir: Path) -> Prepare:
    """The ``prepare`` hook on Kubernetes: the snapshot's order in the job's folder
    (``<state>/jobs/<id>/snapshot.json``), for the init container of its pods."""

    async def prepare(job_id: str, spec: Any, account: Account) -> None:
        order = kube_snapshot.order_for(spec)
        if order is not None:
            kube_snapshot.write_order(state_dir / "jobs" / job_id, order)

    return prepare


def make_kube_jobs(store: Any, executor: Any, catalog: Callable[[], Catalog], *,
                   state_dir: Path, poll_interval: float = 1.0,
                   max_jobs_per_user: int = 1000) -> Jobs:
    """The service on Kubernetes: the Kubernetes executor and placing, the snapshot made
    by the pods."""
    return Jobs(store, executor, KubePlacing(catalog), catalog, state_dir=state_dir,
                accounts=kube_account, prepare=order_snapshot(state_dir),
                poll_interval=poll_interval, discard=getattr(executor, "discard", None),
                max_jobs_per_user=max_jobs_per_user)
