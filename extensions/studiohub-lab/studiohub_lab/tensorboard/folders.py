"""Pure functions from the folders a user asked for to what a TensorBoard is started with.

* :func:`resolve_folders` is the one check of user input: real paths, inside the
  allowed root (the user's home), existing folders.
* :func:`run_names` names each folder when several are compared (TensorBoard shows
  the name in front of every run inside it).
* :func:`instance_id` is the identity of a set of folders: the same folders, in any
  order, always give the same id, so opening them again reuses the running TensorBoard.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..base import quoted
from ..errors import Forbidden, LabError, NotFound

MAX_FOLDERS = 32
MAX_PATH = 4096


def resolve_folders(requested: Sequence[object], root_dir: Path, allowed_root: Path
                    ) -> list[Path]:
    """Real, deduplicated, sorted paths of ``requested``.

    Relative paths are relative to ``root_dir`` (the file browser's root), ``~`` is the
    user's home. Symbolic links are resolved before the check, so a link inside the
    home pointing outside it is refused too.
    """
    if not isinstance(requested, (list, tuple)) or not requested:
        raise LabError("folders: give a list of at least one folder")
    if len(requested) > MAX_FOLDERS:
        raise LabError(f"folders: {len(requested)} folders given; "
                       f"at most {MAX_FOLDERS} can be compared in one TensorBoard")
    allowed = Path(os.path.realpath(allowed_root))
    resolved: set[Path] = set()
    for raw in requested:
        if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
            raise LabError(f"folders: {quoted(raw)} is not a folder path")
        if len(raw) > MAX_PATH:
            raise LabError(f"folders: {quoted(raw)} is longer than a folder path can be "
                           f"({MAX_PATH} characters)")
        try:
            real = _check_folder(raw, root_dir, allowed)
        except OSError as e:  # e.g. a name longer than the file system allows
            raise LabError(f"folder {quoted(raw)}: {e.strerror or e}") from None
        except RuntimeError:  # ~name of an account that does not exist
            raise NotFound(f"folder {quoted(raw)} does not exist") from None
        resolved.add(real)
    return sorted(resolved)


def _check_folder(raw: str, root_dir: Path, allowed: Path) -> Path:
    """The real path of one requested folder, if the user may open it."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = root_dir / path
    real = Path(os.path.realpath(path))
    if real != allowed and allowed not in real.parents:
        raise Forbidden(f"folder {quoted(raw)} is outside your home folder {allowed}: "
                        "TensorBoard opens only folders inside your home")
    if not real.exists():
        raise NotFound(f"folder {quoted(raw)} does not exist")
    if not real.is_dir():
        raise LabError(f"{quoted(raw)} is not a folder: open the folder that holds "
                       "the event files (or their run folders)")
    if not os.access(real, os.R_OK | os.X_OK):
        raise Forbidden(f"folder {quoted(raw)} is not readable by you")
    return real


def instance_id(folders: Sequence[Path]) -> str:
    """A decimal id (it also stands in for a port number for ``%tensorboard``)."""
    digest = hashlib.sha256("\0".join(sorted(str(f) for f in folders)).encode()).hexdigest()
    return str(int(digest[:8], 16))


def run_names(folders: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(name, folder)`` pairs with the shortest distinct trailing parts of each path.

    ``~/a/logs`` and ``~/b/logs`` become ``a/logs`` and ``b/logs``; ``~/x`` and
    ``~/y`` become ``x`` and ``y``.
    """
    parts = [f.parts[1:] or ("root",) for f in folders]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) and not _nested(names):
            return list(zip(names, folders, strict=True))
    return [("/".join(p), f) for p, f in zip(parts, folders, strict=True)]


def _nested(names: Sequence[str]) -> bool:
    """True when one name is a folder prefix of another (links cannot nest)."""
    return any(a != b and b.startswith(a + "/") for a in names for b in names)


def display_path(folder: Path, home: Path) -> str:
    """``~/runs/mnist`` for folders inside the home, else the absolute path."""
    try:
        rel = folder.relative_to(home)
    except ValueError:
        return str(folder)
    return "~" if rel == Path(".") else f"~/{rel}"
