"""The spawn form of the local spawner: pure data from the catalog, rendered by Jinja.

:func:`make_options_form` decides what the form offers (the user's domains' images and
sizes, what is disabled and why); ``templates/spawn.html`` only lays it out, with
Jinja's autoescape on, so a label or description from an operator's catalog is text,
never markup.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jinja2

from .. import cgroups
from ..catalog import Catalog, ChoiceError, Image, Size


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("studiohub.spawners", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def form_to_options(formdata: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields (lists of strings) to user_options; ``_xsrf`` is the hub's, not ours."""
    return {k: v[0] if isinstance(v, (list, tuple)) and v else v
            for k, v in formdata.items() if k != "_xsrf"}


def make_options_form(catalog: Catalog, groups: Sequence[str], selected: Mapping[str, Any],
                      caps: cgroups.Capabilities, gpu_count: int,
                      built: Callable[[str], bool] = lambda image_id: True,
                      too_big: Callable[[Size], str | None] = lambda size: None) -> str:
    """The spawn form for a user in ``groups``: their images and sizes, with notices.

    A size that cannot run the selected image, or needs more GPUs than the host has, is
    disabled; a little script re-checks when the image changes. An image whose
    environment is not ``built`` here is disabled with the command that builds it, and a
    size this machine cannot hold (``too_big`` says why) is disabled with the reason. The
    server checks again. Sizes are listed smallest first; the preselected pair is what
    the REST API would pick.
    """
    return _environment().get_template("spawn.html").render(
        **make_form_rows(catalog, groups, selected, caps, gpu_count, built, too_big))


def make_form_rows(catalog: Catalog, groups: Sequence[str], selected: Mapping[str, Any],
                   caps: cgroups.Capabilities, gpu_count: int,
                   built: Callable[[str], bool], too_big: Callable[[Size], str | None]
                   ) -> dict[str, Any]:
    """What the form shows: ``notices``, ``images`` and ``sizes`` rows (plain data)."""
    images = catalog.allowed_images(groups)
    sizes = sorted(catalog.allowed_sizes(groups), key=lambda s: (s.gpus, s.cpus, s.memory))
    try:
        choice = catalog.choose(groups, {k: v for k, v in selected.items()
                                         if k in ("image", "size")})
    except ChoiceError:
        choice = catalog.choose(groups, {})
    why = {s.id: too_big(s) for s in sizes}
    usable = [s for s in sizes if not why[s.id]]
    # Preselect what can start: the choice, else the first built image and fitting size.
    ready = [i for i in images if built(i.id) and any(
        s.can_run(i) and _usable(s, gpu_count) for s in usable)]
    image = choice.image if choice.image in ready or not ready else ready[0]
    fitting = [s for s in usable if s.can_run(image) and _usable(s, gpu_count)]
    size = choice.size if choice.size in fitting or not fitting else fitting[0]
    return {
        "notices": _form_notices(caps, sizes, gpu_count),
        "images": [_image_row(i, usable, gpu_count, i.id == image.id, built(i.id))
                   for i in images],
        "sizes": [_size_row(s, image, gpu_count, s.id == size.id, why[s.id]) for s in sizes],
    }


def _form_notices(caps: cgroups.Capabilities, sizes: Sequence[Size], gpu_count: int) -> list[str]:
    notices = []
    if not caps.enforced:
        notices.append(f"Note: {caps.summary}.")
    if any(s.gpus > gpu_count for s in sizes):
        have = f"{gpu_count} GPU(s)" if gpu_count else "no GPU"
        notices.append(f"This host has {have}: sizes needing more are unavailable.")
    return notices


def _usable(size: Size, gpu_count: int) -> bool:
    return size.gpus <= gpu_count


def _image_row(image: Image, sizes: Sequence[Size], gpu_count: int, checked: bool,
               built: bool = True) -> dict[str, Any]:
    fits = [s.id for s in sizes if s.can_run(image) and _usable(s, gpu_count)]
    return {"id": image.id, "label": image.label, "description": image.description,
            "fits": fits, "built": built, "checked": checked and bool(fits) and built,
            "disabled": not (fits and built)}


def _size_row(size: Size, image: Image, gpu_count: int, checked: bool,
              too_big: str | None = None) -> dict[str, Any]:
    usable = size.can_run(image) and _usable(size, gpu_count) and not too_big
    note = "" if _usable(size, gpu_count) else f"needs {size.gpus} GPU"
    return {"id": size.id, "label": size.display_name, "checked": checked and usable,
            "disabled": not usable, "note": too_big or note}
