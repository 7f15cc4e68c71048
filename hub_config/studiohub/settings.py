"""Operator settings: built-in defaults, merged with ``etc/config.yaml``, then ``STUDIOHUB_*``.

Like The Littlest JupyterHub's config.yaml: a small YAML file of plain values that
:mod:`studiohub.configurer` turns into traitlets. Environment variables (set by
``studiohub up --port ...`` flags) override the file for one run without editing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .auth import check_type, default_type
from .catalog import merge
from .paths import paths, system_mode

DEFAULTS: dict[str, Any] = {
    "ip": "127.0.0.1",
    "port": 8000,
    "db_url": None,  # None: SQLite in the state directory
    "catalog_path": None,  # None: etc/catalog.yaml if present, else the built-in catalog
    "state_dir": None,  # None: <prefix>/state
    "base_url": "/",
    "auth": {
        # None: "firstuse" as root (each user sets a password at first login),
        # "shared-password" for a personal hub. Others: studiohub.auth.AUTHENTICATORS,
        # a JupyterHub authenticator entry point, or an import path.
        "type": None,
        "password": None,  # shared-password: None = generated once into state/password
        "admin_users": [],
        "config": {},  # extra traits for the authenticator class
    },
    "culling": {
        "enabled": True,
        "idle_server_timeout": 3600,  # jupyterhub-idle-culler --timeout (seconds)
        "cull_every": 300,  # jupyterhub-idle-culler --cull-every (seconds)
        "max_server_age": 0,  # jupyterhub-idle-culler --max-age; 0 = no limit
        "idle_kernel_timeout": 1200,  # MappingKernelManager.cull_idle_timeout (seconds)
        "kernel_cull_interval": 120,  # MappingKernelManager.cull_interval (seconds)
        "cull_busy_kernels": False,
        "cull_connected_kernels": False,
    },
    "spawner": {
        "start_timeout": 60,
        "stop_timeout": 10,  # seconds a server has to shut down (SIGTERM) before SIGKILL
        "default_url": "/lab",
        "max_placed_kernels": 16,  # per user, kernels on sizes of their own at once
    },
    # Notebook sharing service; keys and defaults in studiohub.sharing.config.DEFAULTS.
    "sharing": {},
    # Training jobs service; keys and defaults in studiohub.jobs.config.DEFAULTS.
    "jobs": {},
}

ENV_KEYS = {
    "STUDIOHUB_IP": ("ip", str),
    "STUDIOHUB_PORT": ("port", int),
    "STUDIOHUB_DB_URL": ("db_url", str),
    "STUDIOHUB_CATALOG": ("catalog_path", str),
    "STUDIOHUB_STATE_DIR": ("state_dir", str),
    "STUDIOHUB_PASSWORD": ("auth.password", str),
}


class SettingsError(ValueError):
    """A config.yaml that cannot be used; names the file and the key."""


def config_file() -> Path:
    return Path(os.environ.get("STUDIOHUB_CONFIG", paths().config_file))


def load_settings(path: Path | None = None,
                  environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Defaults ← config.yaml ← STUDIOHUB_* environment variables, with paths resolved."""
    path = path or config_file()
    environ = dict(os.environ) if environ is None else environ
    settings = merge(DEFAULTS, _read(path))
    for var, (key, cast) in ENV_KEYS.items():
        if environ.get(var):
            settings = set_item(settings, key, cast(environ[var]))
    check(settings, DEFAULTS, str(path))
    settings = resolve(settings)
    if not settings["auth"]["type"]:
        # A hub that ran with the shared password before this default existed keeps it
        # until the operator chooses: switching it silently to first-use passwords would
        # let whoever logs in first as an existing user set that user's password.
        kept = (Path(settings["state_dir"]) / "password").exists()
        settings["auth"] = {**settings["auth"],
                            "type": "shared-password" if kept else default_type(system_mode())}
    try:
        check_type(settings["auth"]["type"])
    except ValueError as e:
        raise SettingsError(f"{path}: auth.type: {e}") from None
    password = settings["auth"]["password"]
    if settings["auth"]["type"] == "shared-password" and password and len(password) < 8:
        raise SettingsError(f"{path}: auth.password: at least 8 characters, as JupyterHub's "
                            "shared-password authenticator requires")
    return settings


#: Settings whose value is free-form (checked by what reads them).
FREE_FORM = {"auth.config", "sharing", "jobs"}


def check(settings: dict[str, Any], defaults: dict[str, Any], path: str,
          prefix: str = "") -> None:
    """Refuse unknown keys and values of the wrong type, naming the file and the key."""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        where = f" under {prefix.rstrip('.')}" if prefix else ""
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(prefix + k for k in unknown)}"
                            f"; known settings{where}: {', '.join(sorted(defaults))}")
    for key, default in defaults.items():
        name, value = prefix + key, settings.get(key)  # null removes a key: None
        if name in FREE_FORM:
            if value is None:  # a section with every line commented out: its defaults
                settings[key] = value = {}
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: {name}: must be a mapping")
            if name == "auth.config":
                for cls, traits in value.items():
                    if not isinstance(traits, dict):
                        raise SettingsError(f"{path}: {name}.{cls}: must be a mapping of "
                                            "the class's settings")
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: {name}: must be a mapping of "
                                    f"{', '.join(sorted(default))}")
            check(value, default, path, name + ".")
        elif not _fits(value, default):
            kind = _kind(default)
            raise SettingsError(f"{path}: {name}: {value!r} is not {kind}")


def _fits(value: Any, default: Any) -> bool:
    if default is None:  # optional text: a URL, a path, a password
        return value is None or isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _kind(default: Any) -> str:
    if default is None:
        return "text (or empty)"
    return {bool: "true or false", int: "a whole number", str: "text",
            list: "a list"}.get(type(default), type(default).__name__)


def resolve(settings: dict[str, Any]) -> dict[str, Any]:
    """Fill the path defaults that depend on the prefix."""
    p = paths()
    settings = dict(settings)
    settings["state_dir"] = str(Path(settings["state_dir"] or p.state))
    if settings["catalog_path"] is None and (p.etc / "catalog.yaml").exists():
        settings["catalog_path"] = str(p.etc / "catalog.yaml")
    if not settings["db_url"]:
        settings["db_url"] = f"sqlite:///{Path(settings['state_dir']) / 'jupyterhub.sqlite'}"
    return settings


def set_item(settings: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``settings`` with ``a.b.c`` set to ``value``."""
    head, _, rest = dotted.partition(".")
    copy = dict(settings)
    copy[head] = set_item(dict(copy.get(head) or {}), rest, value) if rest else value
    return copy


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping of settings")
    return data
