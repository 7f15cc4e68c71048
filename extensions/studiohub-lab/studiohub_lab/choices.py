"""Which image and size each notebook's kernel runs on, and where that was placed.

A notebook's choice is ``metadata.studiohub = {"image", "size"}``. The Lab front end
records a new choice here before it restarts the kernel (the file may be unsaved);
a kernel started without one (a notebook reopened, or copied from someone else) takes
the choice saved in the notebook file. Notebooks without a choice run within the
server's own size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .info import cpu_limit, memory_limit

log = logging.getLogger(__name__)

KERNEL_PREFIX = "studiohub-"
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class KernelChoice:
    image: str
    size: str
    replaces: str = ""  # the kernel this one replaces (its size no longer counts as held)
    saved: bool = False  # read from the notebook file rather than chosen just now


class ChoiceBook:
    """Choices made in this server (by notebook path) and kernels placed (by kernel id).

    A recorded choice outranks the notebook file, whose metadata may not be saved yet.
    """

    def __init__(self) -> None:
        self.by_path: dict[str, KernelChoice] = {}
        self.placed: dict[str, dict[str, Any]] = {}  # kernel id → the hub's placement
        self.fallbacks: dict[str, dict[str, str]] = {}  # kernel id → saved choice not used, why
        self.root_dir = "."

    def record(self, path: str, choice: KernelChoice) -> None:
        self.by_path[_normal(path)] = choice

    def forget(self, session_name: str | None) -> None:
        """Drop a choice the hub refused: the notebook's next kernel goes by its file."""
        self.by_path.pop(self.relative(session_name or ""), None)

    def for_kernel(self, session_name: str | None, kernel_name: str) -> KernelChoice | None:
        """The choice of the notebook a kernel starts for (``JPY_SESSION_NAME``: the
        notebook's file path, or its path under the root).

        Only kernels of StudioHub images are placed; their image is the kernel's own.
        """
        path = self.relative(session_name or "")
        if not kernel_name.startswith(KERNEL_PREFIX) or not path:
            return None
        image = kernel_name[len(KERNEL_PREFIX):]
        chosen = self.by_path.get(_normal(path)) or saved_choice(Path(self.root_dir), path)
        if chosen is None:
            return None
        return KernelChoice(image, chosen.size, chosen.replaces, chosen.saved)


    def relative(self, path: str) -> str:
        """A file path as a path under the server's root ("" when outside it)."""
        if not path.startswith("/"):
            return _normal(path)
        root = Path(self.root_dir).expanduser().resolve()
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            return ""


def _normal(path: str) -> str:
    return path.strip("/")


def saved_choice(root: Path, path: str) -> KernelChoice | None:
    """``metadata.studiohub`` of the notebook file, if it is one and has a choice."""
    file = (root / path.strip("/")).resolve()
    try:
        if not file.is_relative_to(root.resolve()) or file.suffix != ".ipynb" or \
                file.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None
        meta = json.loads(file.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError) as e:
        log.debug("no saved choice in %s: %s", path, e)
        return None
    chosen = meta.get("studiohub") if isinstance(meta, dict) else None
    if isinstance(chosen, dict) and isinstance(chosen.get("size"), str):
        return KernelChoice(str(chosen.get("image") or ""), chosen["size"], saved=True)
    return None


BOOK = ChoiceBook()
"""The server's one book: the provisioner (made by jupyter_client) and handlers share it."""


def check_choice(options: dict[str, Any], image: Any, size: Any) -> dict[str, Any]:
    """The hub's options' verdict on one choice: its labels, or a LabError saying why not."""
    from .errors import Conflict, LabError

    images = {i["id"]: i for i in options.get("images", [])}
    sizes = {s["id"]: s for s in options.get("sizes", [])}
    if not isinstance(image, str) or image not in images:
        raise LabError(f"image {image!r} is not one you may use; choose one of: "
                       f"{', '.join(images) or '(none)'}")
    if not isinstance(size, str) or size not in sizes:
        raise LabError(f"size {size!r} is not one you may use; choose one of: "
                       f"{', '.join(sizes) or '(none)'}")
    why = options.get("unavailable", {}).get(f"{image}/{size}")
    if why:
        raise Conflict(f"{sizes[size]['label']} cannot run {images[image]['label']} now: {why}")
    return {"kernel_name": images[image]["kernel_name"], "image": image, "size": size,
            "image_label": images[image]["label"], "size_label": sizes[size]["label"]}


def kernel_report(kernel_id: str, kernel_name: str, environ: Mapping[str, str]
                  ) -> dict[str, Any]:
    """Where a kernel runs: its placement, or the server's own image and size."""
    placed = BOOK.placed.get(kernel_id)
    if placed is not None:
        choice = {"image": placed["image"], "size": placed["size"],
                  "image_label": placed["image_label"], "size_label": placed["size_label"],
                  "limits": placed["limits"], "placed": True}
    else:
        image = kernel_name[len(KERNEL_PREFIX):] if kernel_name.startswith(KERNEL_PREFIX) \
            else None
        same = image == environ.get("STUDIOHUB_IMAGE")
        choice = {"image": image, "size": environ.get("STUDIOHUB_SIZE") or None,
                  "image_label": environ.get("STUDIOHUB_IMAGE_LABEL") if same else None,
                  "size_label": environ.get("STUDIOHUB_SIZE_LABEL") or None,
                  "limits": {"cpus": cpu_limit(environ.get("STUDIOHUB_CPU_LIMIT")),
                             "memory": memory_limit(environ.get("STUDIOHUB_MEM_LIMIT")),
                             "gpus": int(environ.get("STUDIOHUB_GPU_LIMIT") or 0)},
                  "placed": False}
    return {"choice": choice, "fallback": BOOK.fallbacks.get(kernel_id)}
