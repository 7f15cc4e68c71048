"""What a user asks for when they submit a training job, checked before anything is made.

A spec comes from the REST API (JSON), the CLI (flags or a YAML file) or the SDK; all three
end in :func:`parse_spec`, which checks every field against a key → type table and
returns a :class:`JobSpec` or raises :class:`SpecError` naming the field, the bad value
(a short prefix of it) and what is allowed. The image and size are checked afterwards by
the catalog (``Catalog.choose``) for the user's domains, the paths against the user's home
(:func:`resolve_in_home`): both need the user, this module does not.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

#: Most replicas one job may ask for (workers + parameter servers + a scheduler/chief).
MAX_WORKERS = 64
MAX_PARAMETER_SERVERS = 16
MAX_RETRIES = 10
MAX_TIMEOUT = 30 * 24 * 3600
MAX_ARGS = 256
MAX_TEXT = 4096
_DURATION = re.compile(r"^([0-9]{1,12})\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_RESERVED_ENV = re.compile(r"^(STUDIOHUB_|TF_CONFIG$|MASTER_ADDR$|MASTER_PORT$|WORLD_SIZE$|"
                           r"RANK$|LOCAL_RANK$|LOCAL_WORLD_SIZE$|GROUP_RANK$|DMLC_|"
                           r"CUDA_VISIBLE_DEVICES$)")
ENTRIES = ("notebook", "script", "module", "command")


class SpecError(ValueError):
    """A spec that cannot run: ``<field>: <what is wrong>``, said to the user as is."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}" if key else problem)


def quote(value: Any, limit: int = 60) -> str:
    """A bad value as an answer may show it: ``repr``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


@dataclass(frozen=True)
class GitSource:
    url: str
    ref: str = "HEAD"


@dataclass(frozen=True)
class JobSpec:
    """A checked spec. Exactly one of notebook/script/module/command is set."""

    image: str | None
    size: str | None
    notebook: str | None = None
    script: str | None = None
    module: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    git: GitSource | None = None
    workers: int = 1
    parameter_servers: int = 0
    max_retries: int = 0
    timeout: int | None = None  # seconds
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    @property
    def entry(self) -> str:
        """Which of notebook, script, module, command this job runs."""
        return next(k for k in ENTRIES if getattr(self, k))

    def as_dict(self) -> dict[str, Any]:
        """The spec as the API answers it (and as ``Run again`` resubmits it)."""
        data: dict[str, Any] = {"image": self.image, "size": self.size, "name": self.name,
                                "workers": self.workers,
                                "parameter_servers": self.parameter_servers,
                                "max_retries": self.max_retries, "timeout": self.timeout,
                                "args": list(self.args), "parameters": dict(self.parameters),
                                "env": dict(self.env)}
        data[self.entry] = list(self.command) if self.entry == "command" else \
            getattr(self, self.entry)
        if self.git:
            data["git"] = {"url": self.git.url, "ref": self.git.ref}
        return data


_TYPES: dict[str, tuple[type, ...]] = {
    "image": (str,), "size": (str,), "name": (str,), "notebook": (str,), "script": (str,),
    "module": (str,), "command": (list, str), "args": (list,), "parameters": (dict,),
    "git": (dict,), "workers": (int,), "parameter_servers": (int,), "max_retries": (int,),
    "timeout": (int, str), "env": (dict,),
}


def parse_spec(data: Any) -> JobSpec:
    """Check a submitted spec; :class:`SpecError` for the first field that is wrong."""
    if not isinstance(data, Mapping):
        raise SpecError("", "a job spec is a JSON object (or a YAML mapping)")
    unknown = sorted(str(k) for k in data if k not in _TYPES)
    if unknown:
        raise SpecError(quote(unknown[0])[1:-1], f"unknown field; allowed: "
                        f"{', '.join(sorted(_TYPES))}")
    for key, value in data.items():
        if value is not None and (not isinstance(value, _TYPES[key]) or
                                  isinstance(value, bool)):
            names = " or ".join(_type_name(t) for t in _TYPES[key])
            raise SpecError(key, f"must be {names}, not {quote(value)}")
    entries = [k for k in ENTRIES if data.get(k) not in (None, "", [])]
    if len(entries) != 1:
        raise SpecError("", "give exactly one of notebook, script, module or command "
                        f"(got {', '.join(entries) or 'none'})")
    entry = entries[0]
    return JobSpec(
        image=_text(data, "image"), size=_text(data, "size"), name=_text(data, "name") or "",
        notebook=_path(data, "notebook", (".ipynb",)), script=_path(data, "script", (".py",)),
        module=_module(data.get("module")), command=_command(data.get("command")),
        args=_strings("args", data.get("args") or [], entry in ("script", "module")),
        parameters=_parameters(data.get("parameters") or {}, entry == "notebook"),
        git=_git(data.get("git")),
        workers=_bounded(data, "workers", 1, 1, MAX_WORKERS),
        parameter_servers=_bounded(data, "parameter_servers", 0, 0, MAX_PARAMETER_SERVERS),
        max_retries=_bounded(data, "max_retries", 0, 0, MAX_RETRIES),
        timeout=parse_duration(data.get("timeout")),
        env=_env(data.get("env") or {}))


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "an object"}[t]


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if len(value) > MAX_TEXT or "\x00" in value:
        raise SpecError(key, f"{quote(value)} is too long or holds a NUL character")
    return str(value)


def _path(data: Mapping[str, Any], key: str, suffixes: Sequence[str]) -> str | None:
    """A path relative to the home (or the repository): no ``..`` out of it."""
    value = _text(data, key)
    if not value:
        return None
    raw = value[2:] if value.startswith("~/") else value
    pure = PurePosixPath(posixpath.normpath(raw))
    if raw.startswith("/") or pure.parts[:1] == ("..",) or str(pure) == ".":
        raise SpecError(key, f"{quote(value)} is outside your home: give a path relative to "
                        "your home folder (as the file browser shows it)")
    if suffixes and pure.suffix not in suffixes:
        raise SpecError(key, f"{quote(value)} is not a {' or '.join(suffixes)} file")
    return str(pure)


def _module(value: str | None) -> str | None:
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", value):
        raise SpecError("module", f"{quote(value)} is not a Python module name "
                        "(e.g. trainer.main)")
    return value


def _command(value: list[Any] | str | None) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        import shlex

        try:
            value = shlex.split(value)
        except ValueError as e:
            raise SpecError("command", f"cannot be split into words: {e}") from None
    return _strings("command", value, True)


def _strings(key: str, values: list[Any], allowed: bool) -> tuple[str, ...]:
    if values and not allowed:
        raise SpecError(key, "only for a script, a module or a command")
    if len(values) > MAX_ARGS:
        raise SpecError(key, f"{len(values)} items; at most {MAX_ARGS}")
    for value in values:
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_TEXT:
            raise SpecError(key, f"every item is a string without NUL, up to {MAX_TEXT} "
                            f"characters: {quote(value)}")
    return tuple(values)


def _parameters(values: Mapping[str, Any], allowed: bool) -> dict[str, Any]:
    if values and not allowed:
        raise SpecError("parameters", "only for a notebook (they fill its cell tagged "
                        "'parameters'); a script takes args")
    for key, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SpecError("parameters", f"{quote(key)} is not a Python name")
        if not isinstance(value, (str, int, float, bool, type(None))) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise SpecError(f"parameters.{key}", "must be a string, finite number, boolean "
                            f"or null, not {quote(value)}")
    return dict(values)


def _git(value: Mapping[str, Any] | None) -> GitSource | None:
    if not value:
        return None
    unknown = sorted(set(value) - {"url", "ref"})
    if unknown:
        raise SpecError("git", f"unknown field {quote(unknown[0])}; allowed: url, ref")
    url, ref = value.get("url"), value.get("ref", "HEAD")
    if not isinstance(url, str) or not url or "\x00" in url or url.startswith("-"):
        raise SpecError("git.url", f"a repository URL git can clone, not {quote(url)}")
    if not isinstance(ref, str) or not re.fullmatch(r"[A-Za-z0-9._/@^~-]{1,200}", ref) \
            or ref.startswith("-"):
        raise SpecError("git.ref", f"a branch, tag or commit, not {quote(ref)}")
    return GitSource(url, ref)


def _bounded(data: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if not low <= value <= high:
        raise SpecError(key, f"{quote(value)} is out of range: {low} to {high}")
    return int(value)


def parse_duration(value: int | str | None) -> int | None:
    """Seconds from ``3600``, ``"90m"``, ``"1h"``, ``"2d"``; None or 0: no timeout."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise SpecError("timeout", f"{quote(value)} is not a duration (e.g. 3600, 90m, "
                            "1h, 2d)")
        value = int(match.group(1)) * _UNITS[match.group(2)]
    if value < 0 or value > MAX_TIMEOUT:
        raise SpecError("timeout", f"{quote(value)} is out of range: 0 to {MAX_TIMEOUT} "
                        "seconds (30 days)")
    return value or None


def _env(values: Mapping[str, Any]) -> dict[str, str]:
    for key, value in values.items():
        if not _ENV_NAME.match(key):
            raise SpecError("env", f"{quote(key)} is not a variable name")
        if _RESERVED_ENV.match(key):
            raise SpecError("env", f"{key} is set by StudioHub for each replica; it cannot "
                            "be given")
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_TEXT:
            raise SpecError(f"env.{key}", f"must be a string without NUL, not {quote(value)}")
    return dict(values)


def resolve_in_home(home: str, relative: str) -> str:
    """The absolute path of ``relative`` inside ``home`` (already checked by parse_spec).

    Symlinks are the caller's concern: the snapshot is copied as the user, who can only
    read what their account can read.
    """
    path = posixpath.normpath(posixpath.join(home, relative))
    if path != home and not path.startswith(home.rstrip("/") + "/"):
        raise SpecError("", f"{quote(relative)} is outside your home")
    return path
