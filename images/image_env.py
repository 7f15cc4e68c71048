"""StudioHub's environments inside a container image, built by the local mode's own code.

The single-user Dockerfile (images/singleuser/Dockerfile) runs this three times, with
its build arguments (images/docker-bake.hcl, generated from the catalog)::

    python3 image_env.py build tensorboard --imports tensorboard \\
        /tmp/images/tensorboard/requirements.txt
    python3 image_env.py build pytorch --imports "ipykernel torch" --dir /tmp/images \\
        "base-cpu/requirements.txt pytorch-cpu/requirements.txt"
    /opt/studiohub/hub/bin/python image_env.py register pytorch

``build`` is :func:`studiohub.envbuild.build_env`, the function behind ``studiohub env
build`` and ``studiohub up``: the same venv, pip command, pin guard (``pip.conf`` +
``constraints.txt``), import check, ``pip check`` and marker, under
``$STUDIOHUB_PREFIX/envs/<name>``. Its requirement files come in order, each argument a
path or a space-separated list of paths (a build argument holds them all), relative to
``--dir`` when given. It needs only ``studiohub/__init__.py``, ``paths.py`` and
``envbuild.py`` (standard library only), which the Dockerfile's ``envbuild`` stage
copies to ``lib/`` beside this file: editing any other module of StudioHub does not
rebuild the framework layers.

``register`` runs with the server environment, where all of StudioHub is installed. It
refuses an image whose environments were not built from the catalog's requirement files
(the hash ``studiohub env list`` compares), then writes the image's kernel spec
(:func:`studiohub.envs.ensure_kernel_spec`, as the local mode does), copies the SDK and
the model endpoints' replica program into the environment (:func:`studiohub.sdk.
install_sdk`) and writes the Jupyter server settings of a one-image server
(:func:`make_server_config`).

tests/unit/test_images.py renders the Dockerfile per bake target and parses its
``build`` commands with :func:`parse_args`, so what it checks is what this script does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

#: Where ``register`` writes the server settings (inside the server environment). Not a
#: file in ``jupyter_server_config.d/``: jupyter_server reads only ``jpserver_extensions``
#: from those.
SERVER_CONFIG = "etc/jupyter/jupyter_server_config.json"
#: Lines of a failed build's log shown in the image build's output.
TAIL_LINES = 40


def make_server_config(kernel: str) -> dict[str, Any]:
    """Settings of a server that runs one image, as a pod does.

    Its image's kernel is the default and the only one offered (the server
    environment's own ``python3`` kernel is hidden, as the local spawner hides it), and
    TensorBoard keeps its fast loader: a pod's loopback is its own
    (``TensorBoardManager.isolation``, docs/tensorboard.md).
    """
    return {
        "MappingKernelManager": {"default_kernel_name": kernel},
        "KernelSpecManager": {"allowed_kernelspecs": [kernel]},
        "TensorBoardManager": {"isolation": "private-network"},
    }


def build(name: str, imports: list[str], requirements: list[Path]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
    from studiohub.envbuild import STEPS, EnvBuildError, build_env

    os.environ.setdefault("PIP_NO_CACHE_DIR", "1")  # no pip cache in the image's layers
    seen: list[str] = []

    def progress(step: str, detail: str) -> None:
        if step not in seen:
            seen.append(step)
            print(f"{name}: {STEPS.get(step, step)}", flush=True)

    try:
        result = build_env(name, requirements, imports=imports,
                           progress=progress)
    except EnvBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.log and e.log.exists():
            tail = e.log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            print("\n".join(tail), file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    print(f"{name}: {result.packages} packages in {result.path} "
          f"(hash {result.hash[:12]}, {result.seconds:.0f} s)", flush=True)
    return 0


def register(image_id: str) -> int:
    from studiohub.catalog import images_dir, load_catalog
    from studiohub.envbuild import env_base_python, env_hash, python_version, read_marker
    from studiohub.envs import ensure_kernel_spec, env_status, kernel_name

    catalog = load_catalog()
    if image_id not in catalog.images:
        print(f"error: image {image_id!r} is not in the catalog: it has "
              f"{', '.join(catalog.images)}", file=sys.stderr)
        return 2
    image = catalog.images[image_id]
    _, detail = env_status(image)
    if not detail.startswith("up to date"):
        files = ", ".join(str(p.relative_to(images_dir())) for p in image.requirements)
        print(f"error: the {image_id} environment is {detail.split(':')[0]}: build it from "
              f"the catalog's requirement files, in this order: {files}", file=sys.stderr)
        return 1
    tensorboard = read_marker("tensorboard") or {}
    expected = env_hash([images_dir() / "tensorboard" / "requirements.txt"],
                        python_version(env_base_python()))
    if tensorboard.get("hash") != expected:
        print("error: the tensorboard environment is missing or was not built from "
              "tensorboard/requirements.txt", file=sys.stderr)
        return 1
    spec = ensure_kernel_spec(image)
    from studiohub.envbuild import env_dir
    from studiohub.sdk import install_sdk

    # The SDK, and the replica program of model endpoints (a pod runs it), as the local
    # mode installs them (studiohub.envs.ensure_image_env).
    install_sdk(env_dir(image.id))
    config = Path(sys.prefix) / SERVER_CONFIG
    config.parent.mkdir(parents=True, exist_ok=True)
    settings = json.loads(config.read_text()) if config.exists() else {}
    for section, values in make_server_config(kernel_name(image.id)).items():
        settings.setdefault(section, {}).update(values)
    config.write_text(json.dumps(settings, indent=1) + "\n")
    print(f"{image_id}: {detail}; kernel {spec}; server settings {config}", flush=True)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image_env.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build envs/NAME from requirement files, in order")
    b.add_argument("name")
    b.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="a module the environment must import (repeatable)")
    b.add_argument("--imports", dest="import_lists", action="append", default=[],
                   metavar="'MODULE …'", help="space-separated modules it must import")
    b.add_argument("--dir", type=Path, default=None,
                   help="the directory relative requirement paths are in")
    b.add_argument("requirements", nargs="+", metavar="REQUIREMENTS_TXT",
                   help="a requirement file, or a space-separated list of them, in order")
    r = sub.add_parser("register", help="check an image's environments, write its kernel")
    r.add_argument("image")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line, with ``imports`` and ``requirements`` as flat lists (the
    requirement files as paths, ``--dir`` applied)."""
    args = make_parser().parse_args(argv)
    if args.command == "build":
        args.imports = [*args.imports, *(m for s in args.import_lists for m in s.split())]
        files = [Path(f) for s in args.requirements for f in s.split()]
        args.requirements = [args.dir / f if args.dir else f for f in files]
        if not args.requirements:
            make_parser().error("build needs at least one requirement file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "build":
        return build(args.name, args.imports, args.requirements)
    return register(args.image)


if __name__ == "__main__":
    sys.exit(main())
