"""Guarded Python environments built from requirement files: how, not which.

:mod:`studiohub.envs` uses this for catalog images; anything else needing its own
environment (a light TensorBoard one) calls :func:`build_env` with its files. Layout
under ``paths().envs``::

    <name> -> .store/<name>/<hash12>-<random>/     the link is what everything uses
    .store/<name>.lock                             one build of <name> at a time

A venv cannot be moved once built (its scripts name their interpreter by absolute
path), so every build goes into a fresh directory and only the link is renamed over
the old one: a failed build never touches the environment users have.

An environment is rebuilt only when its hash changes: requirement lines, interpreter
version and pin guard. It guards its own pins: ``<env>/pip.conf`` (pip's *site* config,
read from ``sys.prefix``) makes every ``pip install`` run with the environment's frozen
pins as constraints, so a user cannot replace mxnet's NumPy or pull a CUDA torch.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .paths import paths

#: Bump when the guard (pip.conf, constraints) changes: every environment then rebuilds.
PIN_GUARD_VERSION = 1
MARKER = "studiohub-env.json"
CONSTRAINTS = "constraints.txt"
STEPS = {"create": "creating the venv", "install": "installing requirements",
         "guard": "writing the pin guard", "verify": "verifying imports and pip check",
         "kernel": "registering the kernel"}

#: ``progress(step, detail)``: ``step`` is a key of :data:`STEPS`.
Progress = Callable[[str, str], None]


class EnvBuildError(RuntimeError):
    """A build that failed; the environment users have (if any) is unchanged."""

    def __init__(self, name: str, step: str, problem: str, log: Path | None = None,
                 hint: str = "") -> None:
        self.name, self.step, self.problem, self.log, self.hint = name, step, problem, log, hint
        super().__init__(f"{name}: {STEPS.get(step, step)} failed: {problem}")


@dataclass(frozen=True)
class EnvBuild:
    """The outcome of :func:`build_env`: ``built`` is False when it was already up to date."""

    name: str
    hash: str
    path: Path
    built: bool
    seconds: float = 0.0
    packages: int = 0


# --- where things are ------------------------------------------------------------------

def env_dir(name: str) -> Path:
    """The environment as everything should name it (a link swapped on each build)."""
    return paths().envs / name


def env_python(name: str) -> Path:
    """The interpreter kernels, jobs and services of this environment run with."""
    return env_dir(name) / "bin" / "python"


def log_path(name: str) -> Path:
    return paths().prefix / "logs" / f"env-{name}.log"


def _store(name: str) -> Path:
    return paths().envs / ".store" / name


def env_base_python() -> Path:
    """The interpreter environments are made from: Debian's python3, which every unix user
    can run (an interpreter under a private home would not be); ``STUDIOHUB_ENV_PYTHON``
    overrides it."""
    if os.environ.get("STUDIOHUB_ENV_PYTHON"):
        return Path(os.environ["STUDIOHUB_ENV_PYTHON"])
    system = Path("/usr/bin/python3")
    return system if system.exists() else Path(sys.base_prefix) / "bin" / "python3"


@functools.cache
def python_version(python: Path) -> str:
    """``CPython 3.11.2``: part of the hash, since a venv is tied to its interpreter."""
    code = "import platform; print(platform.python_implementation(), platform.python_version())"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


# --- pure builders ------------------------------------------------------------------------

def requirement_lines(path: Path) -> list[str]:
    """The lines of a requirement file that change an environment (no comments, no blanks).

    Nested ``-r``/``-c`` files are refused: the catalog lists every file, so the hash
    sees every file.
    """
    lines = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if re.match(r"^(-r|-c|--requirement|--constraint)\b", line):
            raise ValueError(f"{path}: {line!r}: list that file in the catalog's "
                             "requirements instead of including it")
        if line:
            lines.append(line)
    return lines


def make_pip_conf(constraints: Path) -> str:
    """pip's site config for an environment: its own pins constrain every install."""
    return ("# Written by StudioHub: pip in this environment keeps the image's pins.\n"
            "# Conflicting installs fail; see docs/environments.md (pin guard).\n"
            "[global]\n"
            f"constraint = {constraints}\n")


def make_constraints(name: str, frozen: Sequence[str]) -> str:
    """The constraints file: the verified environment's ``pip freeze``."""
    header = (f"# Pins of the {name} environment (pip freeze after its build), applied to\n"
              "# every pip install in it through pip.conf. Written by StudioHub.\n")
    return header + "".join(f"{line}\n" for line in frozen)


def env_hash(requirement_files: Sequence[Path], version: str) -> str:
    """What decides a rebuild: the requirements, the interpreter and the pin guard."""
    digest = hashlib.sha256()
    parts = [f"python {version}", f"pin-guard {PIN_GUARD_VERSION}",
             make_pip_conf(Path("CONSTRAINTS")),
             *("\n".join(requirement_lines(f)) for f in requirement_files)]
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


class PipProgress:
    """Turns pip's output into one short line: what it is doing, how many packages."""

    def __init__(self, report: Progress) -> None:
        self.report, self.collected, self.installed = report, 0, 0

    def __call__(self, line: str) -> None:
        if m := re.match(r"Collecting (\S+)", line):
            self.collected += 1
            self.report("install", f"resolving {m[1]} ({self.collected} packages)")
        elif m := re.match(r"\s*Downloading (\S+) \(([^)]+)\)", line):
            self.report("install", f"downloading {m[1]} ({m[2]})")
        elif m := re.match(r"Installing collected packages: (.*)", line):
            self.installed = len(m[1].split(", "))
            self.report("install", f"unpacking {self.installed} packages")


# --- installed state ----------------------------------------------------------------------

def read_marker(name: str) -> dict[str, Any] | None:
    """What the current environment was built from, or None when there is none."""
    try:
        data = json.loads((env_dir(name) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and env_python(name).exists() else None


# --- building -------------------------------------------------------------------------------

def build_env(name: str, requirement_files: Sequence[Path], *, imports: Sequence[str] = (),
              force: bool = False, progress: Progress | None = None) -> EnvBuild:
    """Make ``envs/<name>`` match ``requirement_files``; a no-op when the hash is unchanged.

    Catalog images use their id as ``name``; other environments (``_tensorboard``) start
    with ``_``, which no image id can, so the two never collide.

    Builds into a new directory, verifies it (``imports`` + ``pip check``), then swaps
    the link. Raises :class:`EnvBuildError` with the previous environment left in place.
    """
    if not re.fullmatch(r"_?[a-z0-9]([a-z0-9-]*[a-z0-9])?", name):
        raise ValueError(f"environment name {name!r}: use lowercase letters, digits and '-' "
                         "(a leading '_' for environments that are not catalog images)")
    files, python = tuple(Path(f) for f in requirement_files), env_base_python()
    try:
        digest = env_hash(files, python_version(python))
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        raise EnvBuildError(name, "create", str(e)) from None
    with umask(0o022), _locked(name):
        marker = read_marker(name)
        if not force and marker and marker.get("hash") == digest:
            return EnvBuild(name, digest, env_dir(name), built=False)
        _remove_leftovers(name)
        started = time.monotonic()
        target = Path(tempfile.mkdtemp(prefix=f"{digest[:12]}-", dir=_store(name)))
        target.chmod(0o755)
        plan = _Plan(name, target, python, files, tuple(imports), digest)
        packages = _populate(plan, progress or (lambda step, detail: None))
        _swap(name, target)
    return EnvBuild(name, digest, env_dir(name), built=True,
                    seconds=time.monotonic() - started, packages=packages)


@dataclass(frozen=True)
class _Plan:
    """One build: what goes in, and the fresh directory it goes into."""

    name: str
    target: Path
    python: Path
    files: tuple[Path, ...]
    imports: tuple[str, ...]
    digest: str

    @property
    def pip(self) -> list[str]:
        return [str(self.target / "bin" / "python"), "-m", "pip", "--no-input"]


def _populate(plan: _Plan, report: Progress) -> int:
    """Run each step into ``plan.target``; on failure remove it and say what to do."""
    log = log_path(plan.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    install = [*plan.pip, "install", "--progress-bar", "off"]
    for f in plan.files:
        install += ["-r", str(f)]
    frozen: list[str] = []
    steps: list[tuple[str, Callable[[IO[str]], object]]] = [
        ("create", lambda out: _run([str(plan.python), "-m", "venv", str(plan.target)], out)),
        ("install", lambda out: _run(install, out, PipProgress(report))),
        ("guard", lambda out: frozen.extend(_write_guard(plan, out))),
        ("verify", lambda out: _verify(plan, out)),
    ]
    with log.open("w") as out:
        for step, action in steps:
            report(step, "")
            out.write(f"## {step}: {STEPS[step]}\n")
            try:
                action(out)
            except (OSError, subprocess.CalledProcessError) as e:
                out.flush()
                shutil.rmtree(plan.target, ignore_errors=True)
                raise EnvBuildError(plan.name, step, _describe(e), log,
                                    _hint(step, plan.files, log)) from None
    return len(frozen)


def _run(cmd: Sequence[str], out: IO[str], on_line: Callable[[str], None] | None = None,
         ) -> list[str]:
    """Run ``cmd`` with its output going to the log (and ``on_line``); raise on failure."""
    out.write(f"$ {' '.join(cmd)}\n")
    out.flush()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(line)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, list(cmd), "\n".join(lines))
    return lines


def _write_guard(plan: _Plan, out: IO[str]) -> list[str]:
    """Freeze the new environment and make its pins constrain every later install."""
    frozen = [line for line in _run([*plan.pip, "freeze", "--exclude-editable"], out)
              if line and not line.startswith("#")]
    constraints = plan.target / CONSTRAINTS
    constraints.write_text(make_constraints(plan.name, frozen))
    (plan.target / "pip.conf").write_text(make_pip_conf(constraints))
    return frozen


def _verify(plan: _Plan, out: IO[str]) -> None:
    """Refuse an environment that cannot import what it is for or has broken requirements;
    only then mark it as built from ``plan.digest``."""
    if plan.imports:
        _run([str(plan.target / "bin" / "python"), "-c", f"import {', '.join(plan.imports)}"],
             out)
    _run([*plan.pip, "check"], out)
    marker = {"name": plan.name, "hash": plan.digest, "python": str(plan.python),
              "python_version": python_version(plan.python),
              "requirements": [str(f) for f in plan.files], "pin_guard": PIN_GUARD_VERSION,
              "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (plan.target / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _describe(e: Exception) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        cmd = " ".join([Path(e.cmd[0]).name, *map(str, e.cmd[1:])])
        cmd = cmd if len(cmd) < 100 else cmd[:99] + "…"
        return f"`{cmd}` exited with status {e.returncode}"
    return str(e)


def _hint(step: str, files: Sequence[Path], log: Path) -> str:
    """What the operator can do next, from what failed."""
    text = log.read_text(errors="replace") if log.exists() else ""
    listed = ", ".join(str(f) for f in files)
    if step == "create":
        return ("the venv could not be created: install python3-venv "
                "(apt-get install -y python3-venv) or set STUDIOHUB_ENV_PYTHON")
    if step == "install":
        hint = (f"pip could not install {listed}: fix the pin named in the log, "
                "or check that pip can reach its index (proxy, pip.conf)")
        if re.search(r"No matching distribution found for \S+\+cpu", text):
            hint += ("; CPU builds of PyTorch come from PyTorch's own index: "
                     "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu")
        return hint
    return (f"the new environment is inconsistent (failed {STEPS[step]}): align the pins "
            f"in {listed}")


def _swap(name: str, target: Path) -> None:
    """Point ``envs/<name>`` at ``target`` in one rename, then remove the old build."""
    link = env_dir(name)
    previous = link.resolve() if link.is_symlink() else None
    tmp = link.with_name(f".{name}.swap")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.relative_to(link.parent))
    if link.exists() and not link.is_symlink():  # a plain directory: move it aside first
        previous = _store(name) / "previous"
        link.rename(previous)
    os.replace(tmp, link)
    if previous is not None and previous != target.resolve():
        shutil.rmtree(previous, ignore_errors=True)


def _remove_leftovers(name: str) -> None:
    """Remove builds a crash left behind (anything in the store but the current one)."""
    current = env_dir(name).resolve() if env_dir(name).is_symlink() else None
    for child in _store(name).iterdir():
        if child.resolve() != current:
            shutil.rmtree(child, ignore_errors=True)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """One build of an environment at a time, across processes."""
    store = _store(name)
    store.mkdir(parents=True, exist_ok=True)
    for d in (paths().envs, store.parent, store):
        d.chmod(0o755)
    with (store.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Environments must be readable by every user's server, whatever our umask is."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
