"""Which image and size each notebook's kernel runs on, and where that was placed.

A notebook's choice is ``metadata.studiohub = {"image", "size"}``. The Lab front end
records a new choice here before it restarts the kernel (the file may be unsaved);
a kernel started without one (a notebook reopened, or copied from someone else) takes
the choice saved in the notebook file. Notebooks without a choice run within the
server's own size.

Recording a choice checks only its shape: whether this user may have it and whether
the machine has room is the hub's one decision, made when the kernel is placed
(:mod:`.provisioner`), whose refusal the session's kernel change answers as the hub
worded it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studiohub import contract

from ..base import quoted
from ..errors import LabError

log = logging.getLogger(__name__)

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
MAX_PATH = 4096
#: Catalog ids (images and sizes) as the catalog allows them.
CATALOG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class KernelChoice:
    image: str
    size: str
    replaces: str = ""  # the kernel this one replaces (its size no longer counts as held)
    saved: bool = False  # read from the notebook file rather than chosen just now


class ChoiceBook:
    """Choices made in this server (by notebook path) and kernels placed (by kernel id).

    One per server, owned by the extension app (``StudioHubLab.book``) and reached by
    the provisioner through its kernel manager (:func:`book_of`). A recorded choice
    outranks the notebook file, whose metadata may not be saved yet.
    """

    def __init__(self, root_dir: str = ".") -> None:
        self.by_path: dict[str, KernelChoice] = {}
        self.placed: dict[str, dict[str, Any]] = {}  # kernel id → the hub's placement
        self.fallbacks: dict[str, dict[str, str]] = {}  # kernel id → saved choice not used, why
        self.labels: dict[str, str] = {}  # "image:<id>"/"size:<id>" → label, from the hub
        self.root_dir = root_dir

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
        image = contract.image_of_kernel(kernel_name)
        if image is None or not path:
            return None
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
        except (ValueError, OSError):
            return ""

    def remember_labels(self, options: Mapping[str, Any]) -> None:
        """Keep the labels of the hub's kernel options (the picker just fetched them
        through this server), so a recorded choice is answered with them."""
        for kind in ("image", "size"):
            for item in options.get(f"{kind}s") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    self.labels[f"{kind}:{item['id']}"] = str(item.get("label") or item["id"])

    def check(self, path: Any, image: Any, size: Any, replaces: Any
              ) -> tuple[str, KernelChoice]:
        """A notebook's choice, its shape checked only (400 naming the problem): the
        notebook's path under the root and the choice."""
        relative = self.check_path(path)
        for key, value in (("image", image), ("size", size)):
            if not isinstance(value, str) or not CATALOG_ID.match(value):
                raise LabError(f"{key} {quoted(value)} is not a catalog id: choose one "
                               "from the kernel options")
        replaced = replaces or ""
        if not contract.is_kernel_id(replaced) and replaced != "":
            raise LabError(f"replaces {quoted(replaces)} is not a kernel id")
        return relative, KernelChoice(image, size, replaced)

    def answer(self, choice: KernelChoice) -> dict[str, Any]:
        """What the Lab restarts the kernel with: its name and the picker's labels."""
        return {"kernel_name": contract.kernel_name(choice.image), "image": choice.image,
                "size": choice.size,
                "image_label": self.labels.get(f"image:{choice.image}", choice.image),
                "size_label": self.labels.get(f"size:{choice.size}", choice.size)}

    def choose(self, path: Any, image: Any, size: Any, replaces: Any) -> dict[str, Any]:
        """Record a notebook's choice after checking its shape only; the answer."""
        relative, choice = self.check(path, image, size, replaces)
        self.record(relative, choice)
        return self.answer(choice)

    def check_path(self, path: Any) -> str:
        """A notebook's path under the root, or a 400 saying what is wrong with it."""
        if not isinstance(path, str) or not path.endswith(".ipynb") or \
                len(path) > MAX_PATH or "\0" in path:
            raise LabError("path: the notebook's path (ending in .ipynb) is required, "
                           f"not {quoted(path)}")
        relative = self.relative(path)
        if not relative or ".." in relative.split("/"):
            raise LabError(f"path {quoted(path)} is outside this server's root folder")
        return relative

    def report(self, kernel_id: str, kernel_name: str, environ: Mapping[str, str]
               ) -> dict[str, Any]:
        """Where a kernel runs: its placement, or the server's own image and size."""
        return kernel_report(self, kernel_id, kernel_name, environ)


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
    except (OSError, ValueError, AttributeError, RecursionError) as e:
        log.debug("no saved choice in %s: %s", path, str(e)[:200])
        return None
    chosen = meta.get("studiohub") if isinstance(meta, dict) else None
    if isinstance(chosen, dict) and isinstance(chosen.get("size"), str):
        return KernelChoice(str(chosen.get("image") or ""), chosen["size"], saved=True)
    return None


def kernel_report(book: ChoiceBook, kernel_id: str, kernel_name: str,
                  environ: Mapping[str, str]) -> dict[str, Any]:
    """Where a kernel runs: its placement, or the server's own image and size."""
    placed = book.placed.get(kernel_id)
    if placed is not None:
        choice = {"image": placed["image"], "size": placed["size"],
                  "image_label": placed["image_label"], "size_label": placed["size_label"],
                  "limits": placed["limits"], "placed": True}
    else:
        server = contract.read_server_env(environ)
        image = contract.image_of_kernel(kernel_name)
        choice = {"image": image, "size": server.size,
                  "image_label": server.image_label if image == server.image else None,
                  "size_label": server.size_label,
                  "limits": {"cpus": server.cpus, "memory": server.memory,
                             "gpus": server.gpus},
                  "placed": False}
    return {"choice": choice, "fallback": book.fallbacks.get(kernel_id)}


#: The attribute of the server's kernel manager that holds its book (set by the app).
BOOK_ATTRIBUTE = "studiohub_book"


def attach(kernel_manager: Any, book: ChoiceBook) -> None:
    """Give the server's kernel manager this book, for its kernels' provisioners."""
    setattr(kernel_manager, BOOK_ATTRIBUTE, book)


def book_of(configurable: Any) -> ChoiceBook | None:
    """The book of the server a kernel's provisioner (or kernel manager) belongs to:
    the first of its parents holding one. None outside a StudioHub server."""
    node = configurable
    while node is not None:
        book = getattr(node, BOOK_ATTRIBUTE, None)
        if isinstance(book, ChoiceBook):
            return book
        node = getattr(node, "parent", None)
    return None
