"""StudioKubeSpawner: KubeSpawner profiles made from the catalog, per user.

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
naming the allowed values, from the spawn form or the REST API alike. A pod's
``STUDIOHUB_*`` variables are the contract's (:mod:`studiohub.contract`).

Nothing here imports the local spawner, psutil or cgroups.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Unicode, default

from .. import contract
from ..catalog import Catalog, Choice, ChoiceError, Image, Size, quote_value
from ..catalog_choice import CatalogChoice
from ..units import format_memory

GPU_RESOURCE = "nvidia.com/gpu"
#: Where the chart mounts the operator's catalog (the ``studiohub-catalog`` ConfigMap).
CATALOG_PATH = "/usr/local/etc/studiohub/catalog.yaml"
CATALOG_ENV = contract.CATALOG_ENV
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
        # One pod, one size: the Lab says how to change them instead of switching.
        "environment": contract.make_server_env(
            size_id=size.id, size_label=size.display_name, cpus=size.cpus,
            memory=size.memory, gpus=size.gpus, limits=LIMITS, limits_summary=LIMITS_SUMMARY,
            switching=contract.SWITCH_SERVER),
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
        "environment": contract.make_image_env(image.id, image.label),
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
            raise ChoiceError(f"profile {quote_value(profile)} and size "
                              f"{quote_value(options['size'])} disagree: "
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


class StudioKubeSpawner(CatalogChoice, KubeSpawner):
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

    def validate_options(self, catalog: Catalog, options: Mapping[str, Any]) -> Choice:
        """KubeSpawner's ``profile`` is the size (see :func:`options_to_choice`)."""
        return options_to_choice(catalog, self.groups, options)

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


