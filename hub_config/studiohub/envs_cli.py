"""``studiohub env build`` and ``env list`` on the terminal: one line per image.

The work is in :mod:`studiohub.envs`; this module only shows it. While an image builds,
a spinner line names its step and pip's progress in a few words; the commands' output
goes to ``logs/env-<image>.log`` and is shown only when a step fails, with what to do.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from .catalog import Catalog, CatalogError, Image, load_catalog
from .envs import (
    STEPS,
    EnvBuildError,
    ensure_image_env,
    env_status,
    kernel_name,
    kernel_spec_dir,
)
from .paths import paths

#: How much of a failed build's log is shown on the screen.
TAIL_LINES = 30


class BuildLine:
    """The spinner line of one build; on a non-terminal (CI logs), one line per step."""

    def __init__(self, console: Console, name: str, status: Status) -> None:
        self.console, self.name, self.status, self.step = console, name, status, ""

    def __call__(self, step: str, detail: str) -> None:
        text = f"[bold]{escape(self.name)}[/]: {STEPS.get(step, step)}"
        self.status.update(text + (f" · {escape(detail)}" if detail else ""))
        if step != self.step and not self.console.is_terminal:
            self.console.print(f"{self.name}: {STEPS.get(step, step)}…", markup=False)
        self.step = step


def _load_catalog(console: Console, path: str | None) -> Catalog | None:
    """The catalog, or None after printing why it cannot be used."""
    try:
        return load_catalog(path)
    except CatalogError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return None


def build_images(ids: list[str], catalog_path: str | None, force: bool) -> int:
    """Build each image in turn; 0 when all are built or up to date."""
    console = Console(highlight=False, soft_wrap=True)
    catalog = _load_catalog(console, catalog_path)
    if catalog is None:
        return 1
    unknown = [i for i in ids if i not in catalog.images]
    if unknown:
        console.print(f"[red]error:[/] unknown image(s) {escape(', '.join(unknown))}: "
                      f"the catalog has {escape(', '.join(catalog.images))}")
        return 2
    results = [_build_one(console, catalog.images[i], force) for i in ids]
    return 0 if all(results) else 1


def _build_one(console: Console, image: Image, force: bool) -> bool:
    name = escape(image.id)
    with console.status(f"[bold]{name}[/]: checking") as status:
        try:
            result = ensure_image_env(image, force=force,
                                      progress=BuildLine(console, image.id, status))
        except EnvBuildError as e:
            show_failure(e)
            return False
        except OSError as e:  # cannot even write under the prefix
            show_failure(EnvBuildError(image.id, "create", str(e), hint=(
                f"make {paths().prefix} writable: run as root for the system install "
                "or set STUDIOHUB_PREFIX")))
            return False
    if result.built:
        console.print(f"[green]✓[/] [bold]{name}[/]: built in {result.seconds:.0f} s "
                      f"({result.packages} packages, hash {result.hash[:12]}), "
                      f"kernel {kernel_name(image.id)}")
    else:
        console.print(f"[bold]{name}[/]: up to date (hash {result.hash[:12]})")
    return True


def show_failure(e: EnvBuildError) -> None:
    """The error, the end of the log, and what to do next, on stderr."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"[red]✗[/] [bold]{escape(e.name)}[/]: {escape(str(e).split(': ', 1)[1])}")
    err.print("  The previous environment, if any, is unchanged.")
    if e.log and e.log.exists():
        lines = e.log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        err.print(f"  Last lines of {e.log}:", markup=False)
        for line in lines:
            err.print(f"    {line}", markup=False)
    err.print(f"  What to do: {escape(e.hint or 'see the log')}; then run "
              f"`studiohub env build {escape(e.name)}` again.")
    if e.log:
        err.print(f"  Full log: {e.log}", markup=False)


def list_images(catalog_path: str | None) -> int:
    """A table of images: label, environment state, kernel spec."""
    console = Console(highlight=False, soft_wrap=True)
    catalog = _load_catalog(console, catalog_path)
    if catalog is None:
        return 1
    table = Table("image", "label", "environment", "kernel")
    for image in catalog.images.values():
        _, detail = env_status(image)
        spec = kernel_spec_dir(image.id) / "kernel.json"
        table.add_row(image.id, image.label, escape(detail),
                      kernel_name(image.id) if spec.exists() else "not registered")
    console.print(table)
    return 0
