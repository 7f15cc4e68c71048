"""What may be shared, and what a snapshot keeps: pure functions on notebook data.

A share holds a *snapshot*: the notebook as the author sent it, checked to be valid
nbformat 4, with outputs removed when the author asked, and with every trace of trust
removed. The last point matters: Jupyter signs a notebook on save when its cells say
``metadata.trusted: true``, and a signed notebook runs its JavaScript outputs in
JupyterLab. A snapshot never carries that flag, so a copy saved into a recipient's
workspace is untrusted there until they decide otherwise.

The environment a notebook runs on travels in its metadata, as the Lab extension
writes it: ``metadata.studiohub.image`` and ``metadata.studiohub.size`` (catalog ids),
with ``metadata.kernelspec.display_name`` as a fallback label.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

from .inputs import clipped, quoted

SUPPORTED_NBFORMAT = 4
MAX_NAME_BYTES = 255
MAX_NOTE_CHARS = 2000
_CATALOG_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_FORBIDDEN_IN_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")
_CONTROL_IN_NOTE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotebookError(ValueError):
    """A notebook or name that cannot be shared; the message says what to change."""


@dataclass(frozen=True)
class Environment:
    """The image and size a notebook was written for (catalog ids, possibly empty)."""

    image: str = ""
    size: str = ""
    kernel: str = ""


def check_name(name: str) -> str:
    """The notebook's file name, refused if it could name anything but one file.

    The name becomes the copy's file name in a recipient's workspace, so it must be a
    plain file name: no directory part, no ``..``, not hidden, ending in ``.ipynb``.
    """
    if _FORBIDDEN_IN_NAME.search(name) or name in (".", ".."):
        raise NotebookError(f"name {quoted(name)} must be a file name without '/', '\\' or "
                            "control characters: send the notebook's base name")
    if name.startswith("."):
        raise NotebookError(f"name {quoted(name)} is a hidden file name: rename the notebook")
    if not name.endswith(".ipynb") or name == ".ipynb":
        raise NotebookError(f"name {quoted(name)} must end in .ipynb")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise NotebookError(f"name is longer than {MAX_NAME_BYTES} bytes: rename the notebook")
    return name


def check_note(note: str) -> str:
    """An optional note from the author, bounded so listings stay small, and plain text
    (line breaks and tabs, no other control characters: PostgreSQL refuses NUL)."""
    if len(note) > MAX_NOTE_CHARS:
        raise NotebookError(f"note is {len(note)} characters; at most {MAX_NOTE_CHARS} "
                            "are allowed")
    control = _CONTROL_IN_NOTE.search(note)
    if control:
        raise NotebookError(f"note has the control character {control.group()!r}: send "
                            "plain text")
    return note.strip()


def parse_notebook(data: dict[str, Any]) -> NotebookNode:
    """``data`` as a validated nbformat 4 notebook, or :class:`NotebookError`."""
    version = data.get("nbformat")
    if version != SUPPORTED_NBFORMAT or isinstance(version, bool):
        raise NotebookError(f"nbformat {quoted(version)} is not supported: only nbformat "
                            f"{SUPPORTED_NBFORMAT} notebooks can be shared (open and save "
                            "the notebook in JupyterLab to upgrade it)")
    minor = data.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
        raise NotebookError(f"nbformat_minor {quoted(minor)} must be a non-negative integer")
    notebook = nbformat.from_dict(data)  # new containers: the request's data is not kept
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise NotebookError(f"not a valid nbformat 4 notebook: {clipped(e.message, 200)} at "
                            f"{clipped(where, 100)}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # nbformat normalises before it validates, and trips on some broken shapes.
        raise NotebookError(f"not a valid nbformat 4 notebook: {type(e).__name__} "
                            f"{clipped(str(e), 200)}") from None
    return notebook


def make_snapshot(notebook: NotebookNode, include_outputs: bool) -> NotebookNode:
    """A copy fit to hand to others: outputs kept or cleared, trust flags removed."""
    snapshot = copy.deepcopy(notebook)
    snapshot.metadata.pop("signature", None)
    if not include_outputs:
        snapshot.metadata.pop("widgets", None)
    for cell in snapshot.cells:
        cell.metadata.pop("trusted", None)
        if cell.cell_type == "code" and not include_outputs:
            cell.outputs = []
            cell.execution_count = None
    return snapshot


def serialize(notebook: NotebookNode) -> bytes:
    """The snapshot file's bytes (the same JSON layout JupyterLab writes)."""
    return nbformat.writes(notebook).encode("utf-8")


def environment_of(notebook: NotebookNode) -> Environment:
    """Image and size from the notebook's metadata; ids that are not catalog ids are dropped."""
    meta = notebook.metadata.get("studiohub")
    meta = meta if isinstance(meta, dict) else {}
    kernelspec = notebook.metadata.get("kernelspec")
    kernel = kernelspec.get("display_name", "") if isinstance(kernelspec, dict) else ""
    return Environment(image=_catalog_id(meta.get("image")), size=_catalog_id(meta.get("size")),
                       kernel=str(kernel)[:200] if isinstance(kernel, str) else "")


def _catalog_id(value: Any) -> str:
    return value if isinstance(value, str) and _CATALOG_ID.match(value) else ""


def title_of(name: str) -> str:
    """What lists and pages call a share: its file name without ``.ipynb``."""
    return name.removesuffix(".ipynb")
