"""The notebook a share or a new version sends: read here, through the contents manager,
so the Lab sends a path, never a whole notebook."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from typing import Any

from jupyter_core.utils import ensure_async
from tornado import web

from studiohub import contract

from ..base import quoted
from ..errors import LabError, NotFound

MAX_PATH = 4096


def notebook_name(path: Any) -> str:
    """The file name the share takes; 400 unless ``path`` is a notebook's path."""
    if not isinstance(path, str) or not path.strip("/"):
        raise LabError("path: the notebook's path (ending in .ipynb) is required")
    if len(path) > MAX_PATH or "\0" in path:
        raise LabError(f"path {quoted(path)} is not a file path")
    name = posixpath.basename(path.rstrip("/"))
    if not name.endswith(".ipynb"):
        raise LabError(f"{quoted(path)} is not a notebook: only .ipynb files can be shared")
    return name


def with_environment(notebook: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The notebook with ``metadata.studiohub`` {image, size} filled where missing.

    The image and size the Lab's picker recorded win. A notebook that never chose one
    ran on its kernel's image (``studiohub-<image>`` kernels) and, if that is this
    server's own image, on this server's size. Returns a copy; nothing else changes.
    """
    metadata = dict(notebook.get("metadata") or {})
    recorded = metadata.get("studiohub")
    studiohub = dict(recorded) if isinstance(recorded, dict) else {}
    kernel = str((metadata.get("kernelspec") or {}).get("name") or "")
    if not studiohub.get("image") and contract.image_of_kernel(kernel):
        studiohub["image"] = contract.image_of_kernel(kernel)
    server = contract.read_server_env(environ)
    if not studiohub.get("size") and server.size and studiohub.get("image") == server.image:
        studiohub["size"] = server.size
    if studiohub:
        metadata["studiohub"] = studiohub
    return {**notebook, "metadata": metadata}


async def read_notebook(contents_manager: Any, path: str) -> dict[str, Any]:
    """The saved notebook at ``path`` (relative to the server's root) as a plain dict."""
    try:
        model = await ensure_async(contents_manager.get(path.strip("/"), content=True,
                                                        type="notebook"))
    except web.HTTPError as e:
        if e.status_code == 404:
            raise NotFound(f"no notebook at {quoted(path)}: save it first, or open the "
                           "notebook you want to share and use Share… from its toolbar") \
                from None
        raise LabError(f"cannot read {quoted(path)}: {(e.log_message or e.reason or '')[:200]}",
                       e.status_code if 400 <= e.status_code < 500 else 400) from None
    except RecursionError:
        raise LabError(f"{quoted(path)} nests too deeply to be read as a notebook") from None
    except OSError as e:  # e.g. a link into a directory this account cannot read
        raise LabError(f"cannot read {quoted(path)}: {e.strerror or 'not readable'}",
                       403) from None
    content = model.get("content")
    if not isinstance(content, dict):
        raise LabError(f"{quoted(path)} could not be read as a notebook")
    # NotebookNode is a dict; a JSON round trip makes it plain (and JSON-safe).
    try:
        plain: dict[str, Any] = json.loads(json.dumps(content))
    except (RecursionError, ValueError):
        raise LabError(f"{quoted(path)} nests too deeply to be shared") from None
    return with_environment(plain, os.environ)
