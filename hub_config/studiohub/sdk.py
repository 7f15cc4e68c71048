"""The SDK in the image environments: ``from studiohub import training, checkpoints,
endpoints``.

Kernels and job replicas run on an image's own Python environment, which does not have
StudioHub (nor the hub's packages, whose versions could clash with the image's). The SDK
is standard-library only, so :func:`install_sdk` copies its modules into each
environment's site-packages as a small ``studiohub`` package of its own::

    <env>/lib/python3.X/site-packages/studiohub/{__init__,contract,training,checkpoints,
                                                 endpoints}.py
    <env>/lib/python3.X/site-packages/studiohub/modelserver/*.py

``modelserver`` is the replica program of model endpoints (``python -m
studiohub.modelserver``), run by the image's Python next to its framework.

``studiohub env build`` (and ``studiohub up``, which builds what is missing) calls it on
every run, also for an environment already up to date, so a hub upgrade reaches every
image's kernels without rebuilding them. The copies are root's, world-readable.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The modules the image environments get (each imports only the standard library and
#: the others of this list).
MODULES = ("contract.py", "training.py", "checkpoints.py", "endpoints.py")
#: Subpackages copied whole (their ``*.py``): standard library, tornado, numpy and the
#: image's framework only.
SUBPACKAGES = ("modelserver",)
INIT = ('"""StudioHub\'s SDK for kernels and job replicas (a copy made by '
        '`studiohub env build`; do not edit)."""\n')


def site_packages(env: Path) -> Path:
    """The venv's site-packages (``lib/python3.X/site-packages``)."""
    found = sorted(env.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"{env}: no lib/python3*/site-packages (not a venv?)")
    return found[-1]


def install_sdk(env: Path) -> Path:
    """Write (or refresh) the SDK package into the environment; returns its folder."""
    return write_package(site_packages(env) / "studiohub")


def write_package(target: Path) -> Path:
    """The SDK package's files in ``target`` (made if missing). Each file is written
    beside its place and renamed over it, so a kernel starting meanwhile imports either
    the old or the new module, never half of one."""
    here = Path(__file__).parent
    files = {"__init__.py": INIT, **{m: (here / m).read_text(encoding="utf-8")
                                     for m in MODULES}}
    _write_files(target, files)
    for sub in SUBPACKAGES:
        sources = {f.name: f.read_text(encoding="utf-8")
                   for f in sorted((here / sub).glob("*.py"))}
        _write_files(target / sub, sources)
        for stale in (target / sub).glob("*.py"):
            if stale.name not in sources:
                stale.unlink()
    return target


def _write_files(target: Path, files: dict[str, str]) -> None:
    target.mkdir(mode=0o755, exist_ok=True)
    for name, text in files.items():
        tmp = target / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, target / name)
