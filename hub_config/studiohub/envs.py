"""Image environments for the local mode: one guarded venv and one kernel spec per image.

Each catalog image's environment is built from the same requirement files as its
container image (``images/<framework>-<cpu|gpu>/``), so a notebook behaves the same on
a laptop and on Kubernetes; its kernel spec, ``studiohub-<image>``, is what JupyterLab
lists and what the notebook's metadata names. How environments are built, swapped and
guarded is :mod:`studiohub.envbuild`; this module says which, for the catalog.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from . import contract
from .catalog import Image
from .envbuild import (
    MARKER,
    STEPS,
    EnvBuild,
    EnvBuildError,
    Progress,
    build_env,
    env_base_python,
    env_dir,
    env_hash,
    env_python,
    python_version,
    read_marker,
    umask,
)
from .paths import paths

__all__ = ["MARKER", "STEPS", "EnvBuild", "EnvBuildError", "build_command", "build_env",
           "ensure_image_env", "ensure_kernel_spec", "env_dir", "env_python", "env_status",
           "image_hash", "image_imports", "kernel_name", "kernel_spec_dir", "list_command",
           "make_kernel_spec", "refresh_built_envs"]

#: What a catalog image's environment must import, by ``framework`` (lower case).
FRAMEWORK_IMPORTS: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch",), "tensorflow": ("tensorflow",), "mxnet": ("mxnet",),
}


def kernel_name(image_id: str) -> str:
    """The Jupyter kernel spec name of an image's environment."""
    return contract.kernel_name(image_id)


def kernel_spec_dir(image_id: str) -> Path:
    return paths().kernels / kernel_name(image_id)


def kernel_registered(image_id: str) -> bool:
    """Whether the image's kernel is registered where user servers look: StudioHub's
    kernels directory, or a ``kernels`` directory on the operator's ``JUPYTER_PATH``."""
    from jupyter_core.paths import jupyter_path

    dirs = [kernel_spec_dir(image_id).parent, *(Path(d) / "kernels" for d in jupyter_path())]
    return any((d / kernel_name(image_id) / "kernel.json").exists() for d in dirs)


def make_kernel_spec(image: Image, python: Path) -> dict[str, Any]:
    """kernel.json for an image: its label, its python, and which image it is (also
    to the kernel: a kernel of this image that was not placed runs on the server's size,
    whose ``STUDIOHUB_KERNEL_*`` it inherits, but on this image)."""
    return {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": image.label,
        "env": {contract.KERNEL_IMAGE: image.id},
        "language": "python",
        "metadata": {"studiohub": {"image": image.id}, "debugger": True},
    }


def image_imports(image: Image) -> tuple[str, ...]:
    """Modules a working environment of this image must import."""
    return ("ipykernel", *FRAMEWORK_IMPORTS.get(image.framework.lower(), ()))


def image_hash(image: Image) -> str:
    return env_hash(image.requirements, python_version(env_base_python()))


def env_status(image: Image) -> tuple[bool, str]:
    """(usable, detail) for ``studiohub doctor`` and ``env list``."""
    marker = read_marker(image.id)
    if marker is None:
        return False, "not built"
    if marker.get("hash") != image_hash(image):
        return True, f"outdated: run `studiohub env build {image.id}`"
    return True, f"up to date (hash {marker['hash'][:12]})"


def ensure_kernel_spec(image: Image) -> Path:
    """Write (or rewrite) the image's kernel spec, world-readable; returns its directory."""
    spec_dir = kernel_spec_dir(image.id)
    with umask(0o022):
        spec_dir.mkdir(parents=True, exist_ok=True)
    spec_dir.chmod(0o755)
    tmp = spec_dir / ".kernel.json.tmp"
    spec = make_kernel_spec(image, env_python(image.id))
    tmp.write_text(json.dumps(spec, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, spec_dir / "kernel.json")
    logos = env_dir(image.id) / "share" / "jupyter" / "kernels" / "python3"
    for logo in logos.glob("logo-*"):
        shutil.copyfile(logo, spec_dir / logo.name)
        (spec_dir / logo.name).chmod(0o644)
    return spec_dir


def ensure_image_env(image: Image, *, force: bool = False,
                     progress: Progress | None = None) -> EnvBuild:
    """Build (or keep) an image's environment and register its kernel."""
    result = build_env(image.id, image.requirements, imports=image_imports(image),
                       force=force, progress=progress)
    if progress and result.built:
        progress("kernel", kernel_name(image.id))
    ensure_kernel_spec(image)
    from .sdk import install_sdk  # the SDK for kernels and job replicas (studiohub.sdk)
    install_sdk(env_dir(image.id))
    return result


def refresh_built_envs(images: list[Image]) -> list[str]:
    """Bring every built environment's kernel spec and SDK copy up to this StudioHub
    (``studiohub up`` after an upgrade: a new kernel variable, a fixed checkpoint helper
    reach the environments without rebuilding them); the ids refreshed."""
    from .sdk import install_sdk

    refreshed = []
    for image in images:
        if read_marker(image.id) is None or not env_python(image.id).exists():
            continue
        ensure_kernel_spec(image)
        install_sdk(env_dir(image.id))
        refreshed.append(image.id)
    return refreshed


def build_command(images: list[str], catalog_path: str | None, force: bool) -> int:
    """``studiohub env build``: one line per image; a failure shows its log and what to do."""
    from .envs_cli import build_images

    return build_images(images or ["base"], catalog_path, force)


def list_command(catalog_path: str | None) -> int:
    """``studiohub env list``: each image's environment and whether it is up to date."""
    from .envs_cli import list_images

    return list_images(catalog_path)
