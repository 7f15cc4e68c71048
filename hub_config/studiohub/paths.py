"""Where StudioHub keeps things on a host, in one place.

Run as root, StudioHub is a system install under ``/opt/studiohub`` serving every
unix user (like The Littlest JupyterHub's ``/opt/tljh``). Run as anyone else it is a
personal hub under ``~/.local/share/studiohub``. ``STUDIOHUB_PREFIX`` overrides both.
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
    if system_mode():
        return Path("/opt/studiohub")
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data / "studiohub"


def paths() -> Paths:
    return Paths(default_prefix())
