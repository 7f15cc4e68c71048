"""images/docker-bake.hcl, generated from the catalog: one bake target per catalog image.

    /opt/studiohub/hub/bin/python images/bake.py            rewrite images/docker-bake.hcl
    /opt/studiohub/hub/bin/python images/bake.py --check    exit 1 when it is out of date

The catalog (``hub_config/studiohub/catalog.yaml``) is the one truth about the images:
their ids, requirement files (in order), accelerator, framework and ``container_image``.
Every single-user image is built by one Dockerfile, ``images/singleuser/Dockerfile``,
from the build arguments :func:`make_image_args` derives from its catalog entry. What the
catalog does not say is a fact of a framework's wheels, kept here by framework: the CUDA
image its GPU wheels need, the system libraries they link, the package index of a build.
A new catalog image of a known framework needs no edit here; one of a new framework with
a GPU build fails with a message naming what to add. ``tests/unit/test_images.py``
regenerates the file and compares, then renders the Dockerfile per target.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studiohub.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
BAKE_FILE = ROOT / "images" / "docker-bake.hcl"
SINGLE_USER_DOCKERFILE = "images/singleuser/Dockerfile"
HUB_DOCKERFILE = "images/hub/Dockerfile"
#: The Debian of a local StudioHub host, whose Python 3.11 the CPU environments use.
CPU_BASE = "debian:12.11-slim"
#: The NVIDIA CUDA image per framework: the CUDA version its GPU wheels bring or link.
#: PyTorch 2.13 and TensorFlow 2.21 install their CUDA libraries from PyPI (nvidia-*
#: wheels, CUDA 13.0 and 12.9), so the small ``base`` flavour; mxnet-cu112 links CUDA
#: 11.2 and cuDNN 8 from the system (docs/images.md, "The GPU images").
CUDA_BASES = {
    "pytorch": "nvidia/cuda:13.0.0-base-ubuntu22.04",
    "tensorflow": "nvidia/cuda:12.9.1-base-ubuntu22.04",
    "mxnet": "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04",
}
#: System libraries a framework's wheels link, per (framework, accelerator): Debian's
#: pinned to bookworm's versions; Ubuntu's (the CUDA images) unpinned, as no Ubuntu index
#: can be checked where this is tested.
APT_PACKAGES = {
    ("mxnet", "cpu"): ("libgomp1=12.2.0-14+deb12u1", "libquadmath0=12.2.0-14+deb12u1"),
    ("mxnet", "gpu"): ("libgomp1", "libquadmath0"),
}
#: A package index besides PyPI, per (framework, accelerator): torch==2.13.0+cpu.
EXTRA_INDEXES = {("pytorch", "cpu"): "https://download.pytorch.org/whl/cpu"}
#: Modules a build cannot import, per (framework, accelerator): mxnet-cu112 needs the
#: driver's libcuda.so.1, which a GPU node mounts at run time and no build has.
NOT_IMPORTED_AT_BUILD = {("mxnet", "gpu"): ("mxnet",)}


class BakeError(ValueError):
    """A catalog image this file cannot make a bake target for, and what to do."""


@dataclass(frozen=True)
class Target:
    """One bake target: its tag's repository and its build arguments."""

    name: str
    repository: str  # tagged tag(repository): REGISTRY/repository:VERSION
    dockerfile: str
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bake:
    targets: tuple[Target, ...]
    groups: Mapping[str, tuple[str, ...]]
    version: str


def make_image_args(image_id: str, framework: str, accelerator: str,
                    requirements: list[str], imports: list[str]) -> dict[str, str]:
    """The single-user Dockerfile's build arguments for one catalog image.

    ``requirements`` are paths under images/, in catalog order; ``imports`` the modules
    a working environment of the image imports (``studiohub.envs.image_imports``).
    """
    key = (framework.lower(), accelerator)
    if accelerator == "gpu":
        if key[0] not in CUDA_BASES:
            raise BakeError(f"image {image_id}: no CUDA base image for framework "
                            f"{framework!r}: add the CUDA image its GPU wheels need to "
                            f"CUDA_BASES in images/bake.py (known: {', '.join(CUDA_BASES)})")
        base = CUDA_BASES[key[0]]
    else:
        base = CPU_BASE
    skipped = NOT_IMPORTED_AT_BUILD.get(key, ())
    args = {"ACCELERATOR": accelerator, "BASE_IMAGE": base, "IMAGE_ID": image_id,
            "REQUIREMENTS": " ".join(requirements),
            "IMPORTS": " ".join(m for m in imports if m not in skipped)}
    if key in APT_PACKAGES:
        args["APT_PACKAGES"] = " ".join(APT_PACKAGES[key])
    if key in EXTRA_INDEXES:
        args["PIP_EXTRA_INDEX_URL"] = EXTRA_INDEXES[key]
    return args


def repository_of(image_id: str, container_image: str, version: str) -> str:
    """``studiohub/pytorch-gpu`` of ``studiohub/pytorch-gpu:<version>``: the bake file
    tags every image with the one VERSION, so the catalog's tag must be it."""
    repository, _, tag = container_image.rpartition(":")
    if not repository or "/" in tag or tag != version:
        raise BakeError(f"image {image_id}: container_image {container_image!r} must be "
                        f"'<repository>:{version}' (the project's version) to be built here")
    return repository


def make_bake(catalog: Catalog, version: str) -> Bake:
    """Every target and group of images/docker-bake.hcl from a loaded catalog
    (``studiohub.catalog.Catalog``)."""
    from studiohub.catalog import images_dir
    from studiohub.envs import image_imports

    targets = [Target("hub", "studiohub/hub", HUB_DOCKERFILE)]
    groups: dict[str, list[str]] = {"cpu": [], "gpu": []}
    for image in catalog.images.values():
        repository = repository_of(image.id, image.container_image, version)
        name = repository.rpartition("/")[2]
        files = [p.relative_to(images_dir()).as_posix() for p in image.requirements]
        args = make_image_args(image.id, image.framework, image.accelerator, files,
                               list(image_imports(image)))
        targets.append(Target(name, repository, SINGLE_USER_DOCKERFILE, args))
        groups[image.accelerator].append(name)
    return Bake(tuple(targets), {"default": ("hub", "cpu", "gpu"),
                                 **{k: tuple(v) for k, v in groups.items()}}, version)


HEADER = """\
// Every StudioHub container image, built from the repository root (docs/images.md).
// GENERATED from the catalog by images/bake.py: edit the catalog or that file, then run
//   /opt/studiohub/hub/bin/python images/bake.py
// (tests/unit/test_images.py fails while this file is out of date).
//
//   docker buildx bake -f images/docker-bake.hcl              all images (group "default")
//   docker buildx bake -f images/docker-bake.hcl cpu          the CPU single-user images
//   docker buildx bake -f images/docker-bake.hcl gpu          the GPU single-user images
//   REGISTRY=registry.example.com/team docker buildx bake -f images/docker-bake.hcl --push
//
// or `make images` / scripts/build-images.sh. The single-user images' tags are the
// catalog's container_image references (hub_config/studiohub/catalog.yaml) with REGISTRY
// in front when it is set; all of them are built by images/singleuser/Dockerfile from
// the arguments below.

variable "REGISTRY" {
  // Registry and namespace put in front of every tag, e.g. "ghcr.io/acme"; empty: none.
  default = ""
}

variable "VERSION" {
  // StudioHub's version (pyproject.toml), the tag of every image.
  default = "%(version)s"
}

function "tag" {
  params = [name]
  result = REGISTRY == "" ? "${name}:${VERSION}" : "${trimsuffix(REGISTRY, "/")}/${name}:${VERSION}"
}

// What every image shares. The requirement files are frozen for x86_64 Linux (and
// mxnet-cu112 exists only there), so the images are built for linux/amd64.
target "_studiohub" {
  context   = "."
  platforms = ["linux/amd64"]
  labels = {
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.licenses" = "BSD-3-Clause"
    "org.opencontainers.image.vendor"   = "StudioHub"
  }
}
"""


def _hcl_string(value: str) -> str:
    if any(c in value for c in '"\\\n') or "${" in value or "%{" in value:
        raise BakeError(f"{value!r} cannot be written as a plain HCL string")
    return f'"{value}"'


def _hcl_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_hcl_string(v) for v in values) + "]"


def render_hcl(bake: Bake) -> str:
    """The text of images/docker-bake.hcl."""
    out = [HEADER % {"version": bake.version}]
    for name, members in bake.groups.items():
        out.append(f'\ngroup "{name}" {{\n  targets = {_hcl_list(members)}\n}}\n')
    for target in bake.targets:
        lines = ['  inherits   = ["_studiohub"]',
                 f"  dockerfile = {_hcl_string(target.dockerfile)}",
                 f'  tags       = [tag({_hcl_string(target.repository)})]']
        if target.args:
            width = max(len(k) for k in target.args)
            lines.append("  args = {")
            lines += [f"    {k.ljust(width)} = {_hcl_string(v)}" for k, v in target.args.items()]
            lines.append("  }")
        out.append(f'\ntarget "{target.name}" {{\n' + "\n".join(lines) + "\n}\n")
    return "".join(out)


def project_version() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images/bake.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write: exit 1 when images/docker-bake.hcl is out of date")
    args = parser.parse_args(argv)
    from studiohub.catalog import load_catalog

    try:
        text = render_hcl(make_bake(load_catalog(), project_version()))
    except BakeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    current = BAKE_FILE.read_text() if BAKE_FILE.exists() else ""
    if args.check:
        if current != text:
            print(f"{BAKE_FILE} is out of date: run images/bake.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        BAKE_FILE.write_text(text)
        print(f"wrote {BAKE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
