"""``studiohub``: the command line. Argument parsing only; the work lives in modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .catalog import CatalogError, load_catalog


def _operator_catalog(path: str | None) -> str | None:
    """The file given, else the one the hub reads (etc/catalog.yaml, config.yaml's)."""
    if path:
        return path
    from .reload import catalog_path_in_use

    return catalog_path_in_use()


def _catalog_check(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(_operator_catalog(args.file))
    except CatalogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{catalog.source}: OK — {len(catalog.images)} images, {len(catalog.sizes)} sizes, "
          f"{len(catalog.domains)} domains")
    for domain in catalog.domains.values():
        pairs = catalog.allowed_pairs([domain.id])
        print(f"  domain {domain.id}: {len(pairs)} image × size choices")
    return 0


def _env_build(args: argparse.Namespace) -> int:
    from .envs import build_command

    return build_command(args.images, catalog_path=_operator_catalog(args.catalog),
                         force=args.force)


def _env_list(args: argparse.Namespace) -> int:
    from .envs import list_command

    return list_command(catalog_path=_operator_catalog(args.catalog))


def _up(args: argparse.Namespace) -> int:
    from .installer import up_command

    return up_command(args)


def _reload(args: argparse.Namespace) -> int:
    from .reload import reload_command

    return reload_command()


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor_command

    return doctor_command(catalog_path=_operator_catalog(args.catalog))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studiohub", description="StudioHub: an ML workspace on JupyterHub.")
    parser.add_argument("--version", action="version", version=f"studiohub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    catalog = sub.add_parser("catalog", help="check the catalog of images, sizes and domains")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    check = catalog_sub.add_parser("check", help="validate a catalog file (merged with defaults)")
    check.add_argument("file", nargs="?",
                       help="operator catalog file; default: the one the hub reads "
                       "(etc/catalog.yaml or config.yaml's catalog_path), merged with "
                       "the built-in one")
    check.set_defaults(func=_catalog_check)

    env = sub.add_parser("env", help="build the Python environment of each image")
    env_sub = env.add_subparsers(dest="env_command", required=True)
    build = env_sub.add_parser("build", help="build environments and register their kernels")
    build.add_argument("images", nargs="*", help="image ids (default: base)")
    build.add_argument("--force", action="store_true", help="rebuild even if unchanged")
    build.add_argument("--catalog", help="operator catalog file")
    build.set_defaults(func=_env_build)
    lst = env_sub.add_parser("list", help="show each image's environment and whether it is built")
    lst.add_argument("--catalog", help="operator catalog file")
    lst.set_defaults(func=_env_list)

    up = sub.add_parser("up", help="install what is missing and run the hub")
    up.add_argument("--ip", default=None, help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=None, help="port to listen on (default 8000)")
    up.add_argument("--db-url", default=None,
                    help="database URL, e.g. postgresql://user:pw@host/db (default: SQLite)")
    up.add_argument("--catalog", default=None, help="operator catalog file")
    up.add_argument("--config", default=None, help="StudioHub config.yaml")
    up.add_argument("--no-start", action="store_true", help="run the install steps only")
    up.set_defaults(func=_up)

    reload = sub.add_parser("reload", help="check config.yaml and the catalog, then apply "
                            "domains, members and admins to the running hub")
    reload.set_defaults(func=_reload)

    doctor = sub.add_parser("doctor", help="report what this host can and cannot enforce")
    doctor.add_argument("--catalog", help="operator catalog file")
    doctor.set_defaults(func=_doctor)

    from .jobs.cli import add_jobs_parser  # studiohub jobs submit|list|describe|logs|…
    add_jobs_parser(sub)
    from .serving.cli import add_endpoints_parser  # studiohub endpoints deploy|list|…
    add_endpoints_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
