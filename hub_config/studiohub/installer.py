"""``studiohub up``: a checklist of idempotent ``ensure_*`` steps, then the hub.

Every step is safe to re-run, so upgrading or repairing is running ``studiohub up``
again. One progress line per step; a subprocess's output goes to the install log
on success and to the screen on failure, with what to do next.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import configurer
from .catalog import CatalogError, load_catalog
from .paths import Paths, paths, system_mode
from .settings import SettingsError, load_settings

PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
JUPYTERHUB_CONFIG = Path(__file__).with_name("jupyterhub_config.py")


class StepError(RuntimeError):
    """A step that failed; the message says what to do."""


def step(message: str) -> None:
    print(f"  ✓ {message}", flush=True)


def run_logged(cmd: Sequence[str], log: Path, what: str, **kwargs: Any) -> None:
    """Run ``cmd``; keep its output in ``log``; on failure show it and raise."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, check=False, **kwargs)
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n{result.stdout}\n")
    if result.returncode != 0:
        print(result.stdout[-4000:], file=sys.stderr)
        raise StepError(f"{what} failed (exit {result.returncode}); full output in {log}")


def ensure_dirs(p: Paths, settings: dict[str, Any]) -> None:
    for directory, mode in ((p.prefix, 0o755), (p.etc, 0o755), (p.envs, 0o755),
                            (p.kernels, 0o755), (Path(settings["state_dir"]), 0o700)):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)
        except PermissionError:
            raise StepError(f"{directory} is not yours to write: run as root for a system "
                            "hub, or unset STUDIOHUB_PREFIX (or point it at a directory of "
                            "yours) for a personal one") from None
    step(f"directories under {p.prefix}")


def ensure_hub_env_reachable() -> None:
    """Users' servers run this Python: every directory up to it must be enterable by all."""
    if not system_mode():
        return
    for path in (Path(sys.prefix), Path(os.path.realpath(sys.executable))):
        for parent in [path, *path.parents]:
            if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
                raise StepError(
                    f"the hub environment {sys.prefix} runs {os.path.realpath(sys.executable)}, "
                    f"but {parent} is not enterable by other users, so their servers could not "
                    "start. Create the hub environment from /usr/bin/python3 (`make up` does).")
    step(f"hub environment {sys.prefix} usable by every user")


def ensure_proxy(p: Paths) -> None:
    command = Path(configurer.proxy_command())
    if command.is_absolute() and command.exists():
        step(f"configurable-http-proxy at {command}")
        return
    npm = "npm"
    try:
        run_logged([npm, "install", "--no-fund", "--no-audit", "--prefix", str(p.prefix / "npm"),
                    PROXY_PACKAGE], p.prefix / "install.log", "installing configurable-http-proxy")
    except FileNotFoundError:
        raise StepError("npm not found: install Node.js 20.19+ (or 22.12+) and npm, then "
                        "run studiohub up again") from None
    step(f"configurable-http-proxy installed under {p.prefix / 'npm'}")


def ensure_base_env(settings: dict[str, Any]) -> None:
    from .envs import build_command

    if build_command(["base"], catalog_path=settings["catalog_path"], force=False) != 0:
        raise StepError("building the base environment failed: see the message above")


def ensure_tensorboard_env() -> None:
    """The light TensorBoard environment (TensorBoard without TensorFlow) for the Lab."""
    from .catalog import images_dir
    from .envbuild import EnvBuildError, build_env

    try:
        build_env("tensorboard", [images_dir() / "tensorboard" / "requirements.txt"],
                  imports=["tensorboard"])
    except EnvBuildError as e:
        raise StepError(f"building the TensorBoard environment failed: {e}") from None
    step("TensorBoard environment")


def ensure_password(settings: dict[str, Any]) -> str | None:
    """The shared password: the operator's, or generated once and printed once."""
    auth = settings["auth"]
    if auth["type"] != "shared-password":
        return None
    if auth["password"]:
        step("shared password from config")
        return None
    path = Path(settings["state_dir"]) / "password"
    fresh = not path.exists()
    password = configurer.read_secret(settings, "password", 16)
    step(f"shared password kept in {path}")
    return password if fresh else None


def banner(settings: dict[str, Any], password: str | None) -> str:
    host = "localhost" if settings["ip"] in ("127.0.0.1", "0.0.0.0", "") else settings["ip"]
    url = f"http://{host}:{settings['port']}{settings['base_url']}"
    lines = [f"StudioHub is starting at {url}"]
    if not system_mode():
        lines.append(f"Personal hub: not run as root, so only {os.environ.get('USER', 'you')} "
                     "can log in, and servers run as that account.")
    if settings["auth"]["type"] == "shared-password":
        secret = password or f"(the one printed on first start, kept in {settings['state_dir']}"\
                             "/password)"
        who = "with any user name" if system_mode() else \
            f"as {os.environ.get('USER', 'yourself')}"
        lines.append(f"Log in {who} and the shared password: {secret}")
    lines.append("Stop it with Ctrl-C; users' servers keep running and are picked up again.")
    return "\n".join(lines)


def up_command(args: argparse.Namespace) -> int:
    for flag, var in (("ip", "STUDIOHUB_IP"), ("port", "STUDIOHUB_PORT"),
                      ("db_url", "STUDIOHUB_DB_URL"), ("catalog", "STUDIOHUB_CATALOG"),
                      ("config", "STUDIOHUB_CONFIG")):
        if getattr(args, flag, None) is not None:
            os.environ[var] = str(getattr(args, flag))
    try:
        settings = load_settings()
        load_catalog(settings["catalog_path"])
        p = paths()
        print(f"StudioHub: setting up {'system' if system_mode() else 'personal'} hub "
              f"in {p.prefix}", flush=True)
        ensure_dirs(p, settings)
        ensure_hub_env_reachable()
        ensure_proxy(p)
        ensure_base_env(settings)
        ensure_tensorboard_env()
        password = ensure_password(settings)
    except (CatalogError, SettingsError, StepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.no_start:
        return 0
    print(banner(settings, password), flush=True)
    os.chdir(settings["state_dir"])
    hub = [sys.executable, "-m", "jupyterhub", "-f", str(JUPYTERHUB_CONFIG)]
    os.execv(sys.executable, hub)
    return 0  # not reached
