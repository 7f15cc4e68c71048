"""The hub's own pages as StudioHub's: templates, logo, and what the home page shows.

JupyterHub renders its login, home and spawn pages from Jinja templates. ``templates/``
here extends the stock ones block by block (``{% extends "templates/home.html" %}``),
so a JupyterHub upgrade keeps every block we did not change; ``static/`` holds the logo
JupyterHub serves at ``/hub/logo``. :func:`page_data` is a ``template_vars`` callable:
the plain data a page shows about its user (their server with its image and size, their
domains), read from the spawner's choice and the catalog. ``configurer.update_pages``
sets the traits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import MIN_PASSWORD_LENGTH
from .catalog import Catalog, ChoiceError, Image, Size
from .catalog_choice import CatalogChoice

log = logging.getLogger(__name__)

#: StudioHub's templates, searched before JupyterHub's own.
TEMPLATES = Path(__file__).with_name("templates")
#: The logo in the navigation bar and on the login page (``c.JupyterHub.logo_file``).
LOGO = Path(__file__).with_name("static") / "studiohub-logo.svg"
#: Under the login form when a first login creates the account (FirstUseAuthenticator).
FIRST_LOGIN = (f"New here? Your first login creates your account: choose a password of at "
               f"least {MIN_PASSWORD_LENGTH} characters, and only it opens the account "
               "from then on.")
#: The name the pages show beside the logo (``template_vars["studiohub_brand"]``).
BRAND = "StudioHub"
#: JupyterLab on the Training sidebar, under the hub's base URL: the Lab extension routes
#: ``?studiohub-sidebar=training`` to its Show Training Jobs command (training/plugin.ts).
JOBS_PATH = "user-redirect/lab?studiohub-sidebar=training"


@dataclass(frozen=True)
class ServerView:
    """A user's server as the home page shows it."""

    #: ``running``, ``starting``, ``stopping`` or ``stopped``.
    state: str
    #: The catalog ids of the image and size (what the REST API and the CLI take).
    image_id: str = ""
    size_id: str = ""
    #: The image's label (``PyTorch 2.13 · CPU``) and description; "" when none is known.
    image: str = ""
    image_description: str = ""
    #: The size's name and, when the name does not say them, its limits.
    size: str = ""
    size_limits: str = ""


@dataclass(frozen=True)
class DomainView:
    """One of the user's domains: its name and description."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class PageData:
    """What StudioHub's templates show about the signed-in user (``studiohub`` in them)."""

    server: ServerView | None = None
    domains: list[DomainView] = field(default_factory=list)
    #: The images and sizes their domains allow, by label.
    images: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)


def page_data(user: Any) -> PageData:
    """The ``studiohub`` template variable: called by JupyterHub with the page's user
    (None on the login page) each time a page is rendered.

    A problem here must not cost the user every hub page, so it is logged and the page
    shows what JupyterHub alone knows.
    """
    if user is None:
        return PageData()
    try:
        return make_page_data(user.spawner)
    except Exception:
        log.exception("StudioHub's page data for %s", getattr(user, "name", user))
        return PageData()


def make_page_data(spawner: Any) -> PageData:
    """:class:`PageData` of the user of ``spawner`` (their default server's spawner)."""
    if not isinstance(spawner, CatalogChoice):
        return PageData(server=ServerView(state=server_state(spawner)))
    catalog, groups = spawner.catalog, spawner.groups
    return PageData(
        server=server_view(spawner, catalog),
        domains=[DomainView(d.display_name, d.description)
                 for d in catalog.domains_for(groups)],
        images=[i.label for i in catalog.allowed_images(groups)],
        sizes=[s.display_name for s in sorted(catalog.allowed_sizes(groups),
                                              key=lambda s: (s.gpus, s.cpus, s.memory))],
    )


def server_state(spawner: Any) -> str:
    """``running``, ``starting``, ``stopping`` or ``stopped``, as JupyterHub knows it."""
    if spawner.pending == "stop":
        return "stopping"
    if spawner.pending:
        return "starting"
    return "running" if spawner.ready else "stopped"


def server_options(spawner: Any) -> dict[str, Any]:
    """The image and size of the running server, or the ones last chosen.

    ``choice`` is what this hub process validated at the start; after a hub restart
    the options JupyterHub saved for the spawner say the same.
    """
    choice = getattr(spawner, "choice", None)
    if choice is not None:
        return dict(choice.as_options())
    return dict(getattr(spawner, "user_options", None) or {})


def server_view(spawner: CatalogChoice, catalog: Catalog) -> ServerView:
    """The server's state with its image and size (a stopped server: the last ones)."""
    state = server_state(spawner)
    options = server_options(spawner)
    if state == "stopped" and not options:
        return ServerView(state=state)
    image, size = resolve(spawner, catalog, options)
    return ServerView(
        state=state,
        image_id=image.id if isinstance(image, Image) else image,
        size_id=size.id if isinstance(size, Size) else size,
        image=image.label if isinstance(image, Image) else image,
        image_description=image.description if isinstance(image, Image) else "",
        size=size.display_name if isinstance(size, Size) else size,
        size_limits=size_limits(size) if isinstance(size, Size) else "",
    )


def resolve(spawner: CatalogChoice, catalog: Catalog, options: Mapping[str, Any]
            ) -> tuple[Image | str, Size | str]:
    """The catalog's image and size for ``options``, read as the spawner reads them
    (KubeSpawner's ``profile`` is the size; the catalog's defaults fill what is
    missing); ids as given when the catalog no longer allows them (it changed since)."""
    try:
        choice = spawner.validate_options(catalog, options)
    except ChoiceError:
        image_id = str(options.get("image", ""))
        size_id = str(options.get("size", options.get("profile", "")))
        return (catalog.images.get(image_id, image_id), catalog.sizes.get(size_id, size_id))
    return choice.image, choice.size


def size_limits(size: Size) -> str:
    """``2 vCPU + 4 GiB``, or "" when the size's name already says so."""
    limits = size.limits_text
    return "" if limits.replace(" ", "") == size.display_name.replace(" ", "") else limits


def template_vars(jobs: bool, first_use: bool = False) -> dict[str, Any]:
    """``c.JupyterHub.template_vars`` entries StudioHub's templates read; ``jobs``: whether
    the training-jobs service runs, so the home page links to the user's jobs;
    ``first_use``: whether logins are FirstUseAuthenticator's, where nothing on the stock
    form says that a first login creates the account and sets its password."""
    return {"studiohub": page_data, "studiohub_brand": BRAND,
            "studiohub_jobs_path": JOBS_PATH if jobs else "",
            "studiohub_first_login": FIRST_LOGIN if first_use else ""}
