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
    # Every user's JupyterLab (studiohub.labdefaults).
    "lab": {
        # JupyterLab's news feed and update check, for everyone: off on a managed hub
        # (no user is asked about them either way).
        "jupyter_news": False,
    },
    # Notebook sharing service; keys and defaults in studiohub.sharing.config.DEFAULTS.
    "sharing": {},
    # Training jobs service; keys and defaults in studiohub.jobs.config.DEFAULTS.
    "jobs": {},
    # Model endpoints service; keys and defaults in studiohub.serving.config.DEFAULTS.
    "models": {},
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
    """A config.yaml that cannot be used: one ``<file>: <key>: <problem>`` line per problem.

    ``problems`` holds every ``<key>: <problem>`` found, in the file's order of keys.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, list(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


def config_file() -> Path:
    return Path(os.environ.get("STUDIOHUB_CONFIG", paths().config_file))


def load_settings(path: Path | None = None,
                  environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Defaults ← config.yaml ← STUDIOHUB_* environment variables, with paths resolved.

    Every problem is found in one pass and raised together (:class:`SettingsError`), each
    with its key, so an operator fixes them all after one ``studiohub up``.
    """
    path = path or config_file()
    environ = dict(os.environ) if environ is None else environ
    settings = merge(DEFAULTS, _read(path))
    found: list[str] = []
    for var, (key, cast) in ENV_KEYS.items():
        if environ.get(var):
            try:
                settings = set_item(settings, key, cast(environ[var]))
            except ValueError:
                found.append(f"{var} (environment): {environ[var]!r} is not "
                             f"{_kind(cast())}")
    found.extend(problems(settings, DEFAULTS))
    found.extend(_auth_problems(settings.get("auth")))
    if found:
        raise SettingsError(str(path), found)
    settings = resolve(settings)
    if not settings["auth"]["type"]:
        # A hub that ran with the shared password before this default existed keeps it
        # until the operator chooses: switching it silently to first-use passwords would
        # let whoever logs in first as an existing user set that user's password.
        try:
            kept = (Path(settings["state_dir"]) / "password").exists()
        except PermissionError:  # another account's state: `up` says so, clearly, next
            kept = False
        settings["auth"] = {**settings["auth"],
                            "type": "shared-password" if kept else default_type(system_mode())}
        found = _auth_problems(settings["auth"])  # the password, now the type is known
        if found:
            raise SettingsError(str(path), found)
    return settings


def _auth_problems(auth: Any) -> list[str]:
    """The authenticator named and the shared password's length, when they are text."""
    if not isinstance(auth, dict):
        return []
    found = []
    kind, password = auth.get("type"), auth.get("password")
    if isinstance(kind, str) and kind:
        try:
            check_type(kind)
        except ValueError as e:
            found.append(f"auth.type: {e}")
    if kind == "shared-password" and isinstance(password, str) and password \
            and len(password) < 8:
        found.append("auth.password: at least 8 characters, as JupyterHub's "
                     "shared-password authenticator requires")
    return found


#: Settings whose value is free-form (checked by what reads them).
FREE_FORM = {"auth.config", "sharing", "jobs", "models"}


def check(settings: dict[str, Any], defaults: dict[str, Any], path: str,
          prefix: str = "") -> None:
    """Refuse unknown keys and values of the wrong type, naming the file and every key."""
    found = problems(settings, defaults, prefix)
    if found:
        raise SettingsError(path, found)


def problems(settings: dict[str, Any], defaults: dict[str, Any],
             prefix: str = "") -> list[str]:
    """Every unknown key and value of the wrong type under ``prefix``, as ``key: problem``.

    Sections left empty (``sharing:`` with its lines commented out) are filled with
    their defaults in ``settings`` on the way, so what follows reads plain values.
    """
    found: list[str] = []
    unknown = sorted(set(settings) - set(defaults), key=str)
    if unknown:
        where = f" under {prefix.rstrip('.')}" if prefix else ""
        found.append(f"unknown setting(s) {', '.join(prefix + str(k) for k in unknown)}"
                     f"; known settings{where}: {', '.join(sorted(defaults))}")
    for key, default in defaults.items():
        name, value = prefix + key, settings.get(key)  # null removes a key: None
        if name in FREE_FORM:
            if value is None:  # a section with every line commented out: its defaults
                settings[key] = value = {}
            if not isinstance(value, dict):
                found.append(f"{name}: must be a mapping, not {_what(value)}")
            elif name == "auth.config":
                found.extend(f"{name}.{cls}: must be a mapping of the class's settings"
                             for cls, traits in value.items() if not isinstance(traits, dict))
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                found.append(f"{name}: must be a mapping of {', '.join(sorted(default))}"
                             + ("" if value is None else f", not {_what(value)}"))
            else:
                found.extend(problems(value, default, name + "."))
        elif not _fits(value, default):
            found.append(f"{name}: {value!r} is not {_kind(default)}")
        elif isinstance(default, list) and isinstance(value, list):
            found.extend(f"{name}[{i}]: {item!r} is not text" for i, item in enumerate(value)
                         if not isinstance(item, str))
    return found


def _what(value: Any) -> str:
    """``a list``, ``text``…: what the operator wrote instead, for a message."""
    return {list: "a list", str: "text", bool: "true or false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


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
    """The file's mapping; a file that is not one is a :class:`SettingsError`, never a
    traceback (unreadable, not UTF-8, not YAML, or a list or text at the top)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(str(path), [f"cannot be read: {e}"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SettingsError(str(path), [f"not valid YAML: {where}{problem}"]) from None
    if not isinstance(data, dict):
        raise SettingsError(str(path), [
            f"must be a mapping of settings (`key: value` lines, e.g. `port: 8000`), "
            f"not {_what(data)}"])
    return data
