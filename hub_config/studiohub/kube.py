"""StudioHub on Kubernetes: what the Helm chart's ``hub.extraConfig`` runs.

:func:`configure` makes the catalog's domains JupyterHub groups, spawns with
:class:`studiohub.spawners.kube.StudioKubeSpawner` (profiles made per user from the
catalog), runs the sharing service beside the hub and, when the chart enables it, the
training jobs service with the Kubernetes executor, and gives the hub StudioHub's pages
(``configurer.update_pages``). Everything here only *sets* traits on a traitlets
``Config`` (tested on a bare one, without a cluster).
``StudioKubeSpawner`` and its builders are re-exported here for the chart's older
values and for tests.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from traitlets.config import Config

from . import contract
from .catalog_choice import cached_catalog
from .spawners.kube import (
    CATALOG_ENV,
    CATALOG_PATH,
    GPU_RESOURCE,
    LIMITS,
    LIMITS_SUMMARY,
    StudioKubeSpawner,
    _profile_list,
    default_catalog_path,
    make_image_override,
    make_profile,
    make_profile_list,
    make_size_override,
    options_to_choice,
    tolerations_list,
)

__all__ = ["CATALOG_ENV", "CATALOG_PATH", "GPU_RESOURCE", "JOBS_ENV", "JOBS_PORT", "LIMITS",
           "LIMITS_SUMMARY", "SHARING_DIR", "SHARING_ENV", "SHARING_PORT",
           "StudioKubeSpawner", "configure", "default_catalog_path", "jobs_enabled",
           "make_image_override", "make_profile", "make_profile_list", "make_size_override",
           "options_to_choice", "proxy_address", "sharing_enabled", "tolerations_list",
           "update_home", "update_jobs_on_kube", "update_kube_spawner",
           "update_sharing_on_kube"]

#: The sharing service's data: a directory it creates (mode 0700) on the chart's
#: ``studiohub-sharing`` volume, which is mounted at /srv/studiohub.
SHARING_DIR = "/srv/studiohub/sharing"
SHARING_PORT = 8082
#: ``true``/``false``: whether :func:`configure` runs the sharing service.
SHARING_ENV = contract.SHARING_ENV
#: The jobs service's store (``jobs.sqlite``) and logs (``jobs/<id>/``): the same volume.
JOBS_STATE_DIR = "/srv/studiohub"
JOBS_PORT = 8083
#: ``true``/``false``: whether :func:`configure` runs the jobs service (default off).
JOBS_ENV = contract.JOBS_ENV
#: The shared checkpoint claim's name (the chart's ``studiohub.jobs.checkpoints.claimName``).
JOBS_CHECKPOINT_CLAIM_ENV = contract.JOBS_CHECKPOINT_CLAIM_ENV


# --- configuration ---------------------------------------------------------------------


def update_kube_spawner(c: Config, catalog_path: str | None = None) -> None:
    """Spawn with :class:`StudioKubeSpawner`, its profiles from the catalog."""
    c.JupyterHub.spawner_class = "studiohub.spawners.kube.StudioKubeSpawner"
    if catalog_path is not None:
        c.StudioKubeSpawner.catalog_path = catalog_path
    # The chart's singleuser.profileList would replace the catalog's profiles.
    c.StudioKubeSpawner.profile_list = _profile_list
    c.KubeSpawner.default_url = "/lab"


def update_home(c: Config, capacity: str = "10Gi", storage_class: str | None = None,
                mount: str = "/home/jovyan") -> None:
    """Each user's home on a PersistentVolumeClaim of their own, ``claim-<user>``.

    The official chart does the same from ``singleuser.storage`` (type ``dynamic``);
    this is for KubeSpawner set up without it, and for tests.
    """
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.pvc_name_template = "claim-{user_server}"
    c.KubeSpawner.storage_capacity = capacity
    c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
    if storage_class:
        c.KubeSpawner.storage_class = storage_class
    c.KubeSpawner.volumes = [{"name": "home",
                              "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": mount}]


def proxy_address(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Where the hub pod reaches the proxy's plain-HTTP port (users' servers are behind it).

    ``proxy-public:80`` reaches configurable-http-proxy directly, unless the official
    chart's automatic HTTPS is on: then ``proxy-public`` is Traefik, whose port 80 only
    redirects to HTTPS, and the chart adds the ``proxy-http`` Service (port 8000) in
    front of the proxy, which Kubernetes announces as ``PROXY_HTTP_SERVICE_*``.
    """
    environ = os.environ if environ is None else environ
    if environ.get("PROXY_HTTP_SERVICE_HOST"):
        return "proxy-http", int(environ.get("PROXY_HTTP_SERVICE_PORT") or 8000)
    return "proxy-public", 80


def update_sharing_on_kube(c: Config, *, base_url: str = "/", admin_users: Iterable[str] = (),
                   pod_ip: str | None = None, hub_host: str = "hub",
                   catalog_path: str | None = None,
                   proxy: tuple[str, int] | None = None) -> None:
    """The notebook-sharing service, managed by the hub inside the hub pod.

    It keeps its data on the ``studiohub-sharing`` volume (mounted at
    ``/srv/studiohub``) in :data:`SHARING_DIR`, listens on the hub pod's own address
    (the proxy routes ``/services/sharing/`` there), reads the same catalog as the
    spawner (``catalog_path``; its domains decide who may open a share), reaches
    users' servers through the proxy (:func:`proxy_address`), and users' servers
    reach it at ``http://<hub_host>:8082`` (the hub Service's extra port, opened by
    the chart's network policy values).
    """
    from . import configurer
    from .sharing import config as sharing

    block: dict[str, Any] = {"port": SHARING_PORT, "data_dir": SHARING_DIR}
    if os.environ.get(contract.SHARING_DB_URL_ENV):
        block["db_url"] = os.environ[contract.SHARING_DB_URL_ENV]
    proxy_host, proxy_port = proxy or proxy_address()
    settings = {"ip": proxy_host, "port": proxy_port, "base_url": base_url,
                "state_dir": os.path.dirname(SHARING_DIR), "catalog_path": catalog_path or None,
                "auth": {"admin_users": sorted(admin_users)}, "sharing": block}
    configurer.update_sharing(c, settings)
    ip = pod_ip or os.environ.get(contract.POD_IP_ENV) or socket.gethostbyname(
        socket.gethostname())
    services = [dict(s) for s in c.JupyterHub.services]
    for service in services:
        if service["name"] == sharing.SERVICE:
            service["url"] = f"http://{ip}:{SHARING_PORT}"
    c.JupyterHub.services = services
    prefix = ("/" + base_url.strip("/")).rstrip("/")
    url = f"http://{hub_host}:{SHARING_PORT}{prefix}/services/{sharing.SERVICE}/"
    # The chart sets KubeSpawner.environment (singleuser.extraEnv), which would hide
    # Spawner.environment: set it on both.
    for section in (c.Spawner, c.KubeSpawner):
        section.environment = {**section.get("environment", {}), sharing.URL_ENV: url}


def update_jobs_on_kube(c: Config, *, base_url: str = "/", pod_ip: str | None = None,
                        hub_host: str = "hub", catalog_path: str | None = None,
                        checkpoint_claim: str | None = None,
                        home_claim_template: str | None = None) -> None:
    """The training jobs service, managed by the hub inside the hub pod, on Kubernetes.

    Registered as :func:`studiohub.jobs.config.update_jobs` does locally (the service,
    users' access, their servers' ``STUDIOHUB_JOBS_URL``), then set for the cluster: it
    runs attempts as Indexed Jobs (``--executor=kubernetes``: the Kubernetes executor
    with the hub's service account in the release's namespace, the chart's checkpoint
    claim, users' home claims named as KubeSpawner names them) and the kube-scheduler
    places them, so the service gets no role: it never calls the hub's placement API.
    It keeps its store and logs in :data:`JOBS_STATE_DIR` (the studiohub volume), listens
    on the hub pod's address (the proxy routes ``/services/jobs/`` there) and users'
    servers reach it at ``http://<hub_host>:8083`` (the hub Service's extra port).
    """
    from .jobs import config as jobs_config

    template = home_claim_template or c.KubeSpawner.get("pvc_name_template") \
        or "claim-{username}"
    claim = checkpoint_claim or os.environ.get(JOBS_CHECKPOINT_CLAIM_ENV) or "studiohub-jobs"
    block: dict[str, Any] = {"port": JOBS_PORT,
                             "db_url": os.environ.get(contract.JOBS_DB_URL_ENV) or None}
    settings = {"port": 80, "base_url": base_url, "state_dir": JOBS_STATE_DIR,
                "catalog_path": catalog_path or None, "jobs": block}
    jobs_config.update_jobs(c, settings)
    c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles
                               if r["name"] != jobs_config.ROLE]
    ip = pod_ip or os.environ.get(contract.POD_IP_ENV) or socket.gethostbyname(
        socket.gethostname())
    services = [dict(s) for s in c.JupyterHub.services]
    for service in services:
        if service["name"] == jobs_config.SERVICE:
            service["url"] = f"http://{ip}:{JOBS_PORT}"
            service["command"] = [*service["command"], "--executor=kubernetes",
                                  f"--checkpoint-claim={claim}",
                                  f"--home-claim-template={template}"]
            # No image environments in the hub pod: the pods run the images' own python.
            service["environment"] = {k: v for k, v in service.get("environment", {}).items()
                                      if k != contract.PREFIX}
    c.JupyterHub.services = services
    prefix = ("/" + base_url.strip("/")).rstrip("/")
    url = f"http://{hub_host}:{JOBS_PORT}{prefix}/services/{jobs_config.SERVICE}/"
    for section in (c.Spawner, c.KubeSpawner):
        section.environment = {**section.get("environment", {}), contract.JOBS_URL: url}


def jobs_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``$STUDIOHUB_JOBS`` (``true``/``false``; the chart sets it from
    ``studiohub.jobs.enabled``); unset means off."""
    environ = os.environ if environ is None else environ
    value = environ.get(JOBS_ENV, "false").strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{JOBS_ENV}={environ[JOBS_ENV]!r}: use true or false")
    return value == "true"


def sharing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``$STUDIOHUB_SHARING`` (``true``/``false``; the chart sets it from
    ``studiohub.sharing.enabled``); unset means on."""
    environ = os.environ if environ is None else environ
    value = environ.get(SHARING_ENV, "true").strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{SHARING_ENV}={environ[SHARING_ENV]!r}: use true or false")
    return value == "true"


def configure(c: Config, catalog_path: str | None = None, *,
              sharing: bool | None = None, jobs: bool | None = None) -> None:
    """Everything StudioHub adds to the official chart's hub: ``hub.extraConfig`` calls it.

    The catalog's domains become JupyterHub groups, spawns go through
    :class:`StudioKubeSpawner`, and the sharing service runs beside the hub unless
    ``sharing`` is false (default: :func:`sharing_enabled`), and the training jobs
    service when ``jobs`` is true (default: :func:`jobs_enabled`, off unless the chart
    says so).
    """
    from .configurer import update_groups, update_pages

    path = catalog_path if catalog_path is not None else default_catalog_path()
    update_kube_spawner(c, path)
    update_groups(c, cached_catalog(path))
    if sharing is None:
        sharing = sharing_enabled()
    if sharing:
        update_sharing_on_kube(c, base_url=c.JupyterHub.get("base_url", "/") or "/",
                       admin_users=c.Authenticator.get("admin_users", ()),
                       catalog_path=path)
    if jobs is None:
        jobs = jobs_enabled()
    if jobs:
        update_jobs_on_kube(c, base_url=c.JupyterHub.get("base_url", "/") or "/",
                            catalog_path=path)
    update_pages(c)  # after the services: the home page links to the jobs when they run
