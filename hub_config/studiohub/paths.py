"""Where StudioHub keeps things on a host, in one place.

Run as root, StudioHub is a system install under ``/opt/studiohub`` serving every
unix user (like The Littlest JupyterHub's ``/opt/tljh``). Run as anyone else it is a
personal hub under ``~/.local/share/studiohub``. A command run from an installation's
own hub environment (``<prefix>/hub``, as ``make up PREFIX=…`` makes) acts on that
installation, not on the default one; ``STUDIOHUB_PREFIX`` overrides all of these.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    prefix: Path

    @property
    def hub_env(self) -> Path:
        """The environment JupyterHub, JupyterLab and StudioHub run from."""
        return Path(sys.prefix)

    @property
    def envs(self) -> Path:
        """One Python environment per catalog image: ``envs/<image-id>``."""
        return self.prefix / "envs"

    @property
    def state(self) -> Path:
        """Hub database, cookie secret, generated password: readable by the hub only."""
        return self.prefix / "state"

    @property
    def etc(self) -> Path:
        """Operator configuration: ``config.yaml``, ``catalog.yaml``, ``jupyterhub_config.d``."""
        return self.prefix / "etc"

    @property
    def config_file(self) -> Path:
        return self.etc / "config.yaml"

    @property
    def kernels(self) -> Path:
        """Kernel specs of the image environments, on every user server's Jupyter path."""
        return self.prefix / "share" / "jupyter" / "kernels"


def system_mode() -> bool:
    """True when running as root: a multi-user hub with one unix account per user."""
    return os.geteuid() == 0


def default_prefix() -> Path:
    if "STUDIOHUB_PREFIX" in os.environ:
        return Path(os.environ["STUDIOHUB_PREFIX"])
    installed = installation_of(Path(sys.prefix))
    if installed is not None:
        return installed
    if system_mode():
        return Path("/opt/studiohub")
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data / "studiohub"


def installation_of(env: Path) -> Path | None:
    """The prefix whose hub environment ``env`` is (``<prefix>/hub``, a venv beside the
    prefix's ``etc/`` or ``state/``) when it is this account's own, else None: a second
    installation's ``studiohub`` acted on ``/opt/studiohub`` unless ``STUDIOHUB_PREFIX``
    was set. (Root's system install run by another account stays that account's personal
    hub, as before.)"""
    if env.name != "hub" or not (env / "pyvenv.cfg").is_file():
        return None
    if env.stat().st_uid != os.geteuid():
        return None
    prefix = env.parent
    return prefix if (prefix / "etc").is_dir() or (prefix / "state").is_dir() else None


def paths() -> Paths:
    return Paths(default_prefix())
