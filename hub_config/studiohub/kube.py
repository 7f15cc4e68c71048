"""StudioHub on Kubernetes: KubeSpawner profiles made from the catalog.

The same catalog that sizes local servers becomes KubeSpawner's ``profile_list``:

- one profile per instance size the user's domains allow (slug = the size id), whose
  ``kubespawner_override`` sets CPU and memory requests = limits, ``nvidia.com/gpu``
  limits for GPU sizes, and the size's node selector and tolerations (the catalog's
  ``kubernetes:`` block of the size);
- per profile, an ``image`` option whose choices are the images the user's domains
  allow and the size can run (the choice sets the container image).

The list is built per user (``profile_list`` is a callable of the spawner), so a user
is offered only what their JupyterHub groups (domains) allow, and
:class:`StudioKubeSpawner` checks every start against the catalog with
``Catalog.choose``: an unknown or disallowed image or size is refused with HTTP 400
naming the allowed values, from the spawn form or the REST API alike.

In the Helm chart, ``hub.extraConfig`` calls :func:`configure` after the official
chart's own configuration; everything here only *sets* traits on a traitlets
``Config`` (tested on a bare one, without a cluster).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jupyterhub.spawner import SpawnException
from kubespawner import KubeSpawner
from traitlets import Unicode, default
from traitlets.config import Config

from .catalog import Catalog, Choice, ChoiceError, Image, Size
from .spawner import cached_catalog
from .units import format_memory

GPU_RESOURCE = "nvidia.com/gpu"
#: Where the chart mounts the operator's catalog (the ``studiohub-catalog`` ConfigMap).
CATALOG_PATH = "/usr/local/etc/studiohub/catalog.yaml"
CATALOG_ENV = "STUDIOHUB_CATALOG"
#: The sharing service's data: a directory it creates (mode 0700) on the chart's
#: ``studiohub-sharing`` volume, which is mounted at /srv/studiohub.
SHARING_DIR = "/srv/studiohub/sharing"
SHARING_PORT = 8082
#: ``true``/``false``: whether :func:`configure` runs the sharing service.
SHARING_ENV = "STUDIOHUB_SHARING"
#: What the kubelet enforces for every size (the Lab extension shows it).
LIMITS = "memory,cpu"
LIMITS_SUMMARY = "CPU and memory limits enforced by Kubernetes"


# --- pure builders ---------------------------------------------------------------------


def make_size_override(size: Size, base_tolerations: Sequence[Mapping[str, Any]] = ()
                       ) -> dict[str, Any]:
    """KubeSpawner settings for a size: requests = limits, GPUs, where its pods go.

    Requests equal limits (Guaranteed QoS): a server gets its whole size, the same
    promise as a local cgroup. ``base_tolerations`` (the chart's own, for user pods)
    are kept, the size's are added.
    """
    override: dict[str, Any] = {
        "cpu_guarantee": size.cpus,
        "cpu_limit": size.cpus,
        "mem_guarantee": size.memory,
        "mem_limit": size.memory,
        "environment": {
            "STUDIOHUB_SIZE": size.id,
            "STUDIOHUB_SIZE_LABEL": size.display_name,
            "STUDIOHUB_CPU_LIMIT": f"{size.cpus:g}",
            "STUDIOHUB_MEM_LIMIT": str(size.memory),
            "STUDIOHUB_GPU_LIMIT": str(size.gpus),
            "STUDIOHUB_LIMITS": LIMITS,
            "STUDIOHUB_LIMITS_SUMMARY": LIMITS_SUMMARY,
            # One pod, one size: the Lab says how to change them instead of switching.
            "STUDIOHUB_SWITCHING": "server",
        },
    }
    if size.gpus:
        override["extra_resource_limits"] = {GPU_RESOURCE: str(size.gpus)}
    if size.node_selector:
        override["node_selector"] = dict(size.node_selector)
    if size.tolerations:
        own = [dict(t) for t in size.tolerations]
        override["tolerations"] = [dict(t) for t in base_tolerations if t not in own] + own
    return override


def make_image_override(image: Image) -> dict[str, Any]:
    """KubeSpawner settings for an image: the container image built from its requirements."""
    return {
        "image": image.container_image,
        "environment": {"STUDIOHUB_IMAGE": image.id, "STUDIOHUB_IMAGE_LABEL": image.label},
    }


def make_profile(size: Size, images: Sequence[Image], *, default_image: str | None = None,
                 default: bool = False,
                 base_tolerations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One ``profile_list`` entry: a size, with the images it may run as choices."""
    parts = [f"{size.cpus:g} vCPU", f"{format_memory(size.memory)} memory"]
    if size.gpus:
        parts.append(f"{size.gpus} NVIDIA GPU" + ("s" if size.gpus > 1 else ""))
    choices = {
        image.id: {
            "display_name": image.label,
            "default": image.id == default_image,
            "kubespawner_override": make_image_override(image),
        }
        for image in images
    }
    return {
        "display_name": size.display_name,
        "slug": size.id,
        "description": ", ".join(parts),
        "default": default,
        "kubespawner_override": make_size_override(size, base_tolerations),
        "profile_options": {"image": {"display_name": "Image", "choices": choices}},
    }


def make_profile_list(catalog: Catalog, groups: Iterable[str],
                      base_tolerations: Sequence[Mapping[str, Any]] = ()
                      ) -> list[dict[str, Any]]:
    """The profiles of a user in ``groups``: only their domains' sizes and images.

    Sizes that can run none of the allowed images are left out; the default profile and
    choice are what ``Catalog.choose`` picks with no options (the REST API's default).
    """
    groups = list(groups)
    images = catalog.allowed_images(groups)
    try:
        fallback: Choice | None = catalog.choose(groups, {})
    except ChoiceError:
        fallback = None
    profiles = []
    for size in catalog.allowed_sizes(groups):
        runnable = [i for i in images if size.can_run(i)]
        if not runnable:
            continue
        default_image = runnable[0].id
        if fallback is not None and fallback.image in runnable:
            default_image = fallback.image.id
        profiles.append(make_profile(
            size, runnable, default_image=default_image, base_tolerations=base_tolerations,
            default=fallback is not None and size.id == fallback.size.id))
    return profiles


def options_to_choice(catalog: Catalog, groups: Iterable[str],
                      user_options: Mapping[str, Any]) -> Choice:
    """Validate user_options in either vocabulary; raise :class:`ChoiceError` if refused.

    StudioHub's own is ``{"image", "size"}`` (REST API, local mode); KubeSpawner's form
    sends ``{"profile": <size>, "image": <image>}``. Anything else is refused by name.
    """
    options = dict(user_options)
    if "profile" in options:
        profile = options.pop("profile")
        if "size" in options and options["size"] != profile:
            raise ChoiceError(f"profile {profile!r} and size {options['size']!r} disagree: "
                              "give only one of them")
        options["size"] = profile
    return catalog.choose(groups, {k: v for k, v in options.items() if v is not None})


def tolerations_list(value: Any) -> list[dict[str, Any]]:
    """KubeSpawner's ``tolerations`` (a list, or a dict sorted by key) as a list."""
    if isinstance(value, Mapping):
        return [dict(value[k]) for k in sorted(value)]
    return [dict(t) for t in value or []]


# --- the spawner -------------------------------------------------------------------------


def _profile_list(spawner: StudioKubeSpawner) -> list[dict[str, Any]]:
    return make_profile_list(spawner.catalog, spawner.groups,
                             tolerations_list(spawner.tolerations))


class StudioKubeSpawner(KubeSpawner):
    """KubeSpawner whose profiles are the catalog, checked per user on every start."""

    catalog_path = Unicode(
        help=f"""Operator catalog file merged into the built-in one (images, sizes, domains).

        Default: ${CATALOG_ENV}, else {CATALOG_PATH} when it exists (where the Helm chart
        mounts the ``studiohub-catalog`` ConfigMap), else the built-in catalog only.
        Reloaded when the file changes, so a ConfigMap update needs no hub restart.""",
    ).tag(config=True)

    @default("catalog_path")
    def _default_catalog_path(self) -> str:
        return default_catalog_path()

    @default("profile_list")
    def _default_profile_list(self) -> Any:
        return _profile_list

    @property
    def catalog(self) -> Catalog:
        return cached_catalog(self.catalog_path)

    @property
    def groups(self) -> list[str]:
        return [g.name for g in self.user.groups]

    def choose(self, user_options: Mapping[str, Any]) -> Choice:
        """The catalog's verdict for this user, as a SpawnException(400) when refused."""
        try:
            return options_to_choice(self.catalog, self.groups, user_options)
        except ChoiceError as e:
            raise SpawnException(str(e), reason="user_options", status_code=400) from None

    def options_from_form(self, formdata: Mapping[str, Any]) -> dict[str, str]:
        """KubeSpawner's form fields to ``{image, size}``, refused here (400) if not allowed."""
        return self.choose(self._options_from_form(formdata)).as_options()

    async def load_user_options(self) -> None:
        """Check the choice, then let KubeSpawner apply the chosen profile and image."""
        saved: dict[str, Any] = dict(getattr(self, "user_options", None) or {})
        choice = self.choose(saved)
        self.user_options = {"profile": choice.size.id, "image": choice.image.id}
        try:
            await super().load_user_options()
        finally:
            self.user_options = saved


def default_catalog_path(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(CATALOG_ENV):
        return environ[CATALOG_ENV]
    return CATALOG_PATH if os.path.exists(CATALOG_PATH) else ""


# --- configuration ---------------------------------------------------------------------


def update_kube_spawner(c: Config, catalog_path: str | None = None) -> None:
    """Spawn with :class:`StudioKubeSpawner`, its profiles from the catalog."""
    c.JupyterHub.spawner_class = "studiohub.kube.StudioKubeSpawner"
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


def update_sharing(c: Config, *, base_url: str = "/", admin_users: Iterable[str] = (),
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
    from .sharing import config as sharing

    block: dict[str, Any] = {"port": SHARING_PORT, "data_dir": SHARING_DIR}
    if os.environ.get("STUDIOHUB_SHARING_DB_URL"):
        block["db_url"] = os.environ["STUDIOHUB_SHARING_DB_URL"]
    proxy_host, proxy_port = proxy or proxy_address()
    settings = {"ip": proxy_host, "port": proxy_port, "base_url": base_url,
                "state_dir": os.path.dirname(SHARING_DIR), "catalog_path": catalog_path or None,
                "auth": {"admin_users": sorted(admin_users)}, "sharing": block}
    sharing.update_sharing(c, settings)
    ip = pod_ip or os.environ.get("STUDIOHUB_POD_IP") or socket.gethostbyname(
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


def sharing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``$STUDIOHUB_SHARING`` (``true``/``false``; the chart sets it from
    ``studiohub.sharing.enabled``); unset means on."""
    environ = os.environ if environ is None else environ
    value = environ.get(SHARING_ENV, "true").strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{SHARING_ENV}={environ[SHARING_ENV]!r}: use true or false")
    return value == "true"


def configure(c: Config, catalog_path: str | None = None, *,
              sharing: bool | None = None) -> None:
    """Everything StudioHub adds to the official chart's hub: ``hub.extraConfig`` calls it.

    The catalog's domains become JupyterHub groups, spawns go through
    :class:`StudioKubeSpawner`, and the sharing service runs beside the hub unless
    ``sharing`` is false (default: :func:`sharing_enabled`).
    """
    from .configurer import update_groups

    path = catalog_path if catalog_path is not None else default_catalog_path()
    update_kube_spawner(c, path)
    update_groups(c, cached_catalog(path))
    if sharing is None:
        sharing = sharing_enabled()
    if sharing:
        update_sharing(c, base_url=c.JupyterHub.get("base_url", "/") or "/",
                       admin_users=c.Authenticator.get("admin_users", ()),
                       catalog_path=path)
