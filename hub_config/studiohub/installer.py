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

from . import auth, configurer, hub_url, pidrecords
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


OPERATOR_CATALOG = """\
# This machine's catalog: images, sizes and domains, merged into StudioHub's built-in
# one (its format is documented at the top of the built-in catalog.yaml). Check it with
# `studiohub catalog check`, then apply it with `studiohub reload` (no restart).
# For example, a team and who is in it:
#
# domains:
#   ml-team:
#     display_name: ML team
#     sizes: [small, medium]
#     members: [alice, bob]
"""


def ensure_operator_catalog(p: Paths) -> None:
    """``etc/catalog.yaml``, commented out, so the hub reads it from its first start and
    the tour's first ``studiohub reload`` applies what is added to it (a catalog file
    created after the start needs a restart)."""
    path = p.etc / "catalog.yaml"
    if path.exists() or os.environ.get("STUDIOHUB_CATALOG"):
        return
    try:
        p.etc.mkdir(parents=True, exist_ok=True)
        path.write_text(OPERATOR_CATALOG)
    except OSError:
        return  # ensure_dirs says what is wrong with the prefix
    step(f"an empty catalog of this machine's own: {path}")


def ensure_state_private(settings: dict[str, Any]) -> None:
    """Every file under ``state/`` 0600 and every directory 0700, not only ``state/`` itself.

    The directory's own 0700 alone leaves every file open the day its mode is changed
    by mistake, or to a process that was handed the path from inside. What the hub
    writes there is made 0600 where it is created (secrets, pid records, the proxy's pid
    file, the placement book, server logs; the services run with umask 077); the SQLite
    database is created here, 0600, before the hub opens it (its journal takes the
    database's mode). This also repairs what an older version left readable. (Not a
    umask for the whole hub: it creates cgroup directories users must traverse.)
    """
    state = Path(settings["state_dir"])
    db = sqlite_path(settings["db_url"])
    if db is not None and db.parent == state and not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    for root, dirs, files in os.walk(state):
        for name in dirs:
            _chmod_private(Path(root) / name, 0o700)
        for name in files:
            _chmod_private(Path(root) / name, 0o600)
    step(f"{state}: files 0600, directories 0700")


def sqlite_path(db_url: str) -> Path | None:
    """The file of a ``sqlite:///`` database URL (None for other databases)."""
    prefix = "sqlite:///"
    return Path(db_url[len(prefix):]) if db_url.startswith(prefix) else None


def _chmod_private(path: Path, mode: int) -> None:
    st = path.lstat()
    if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(mode)


def ensure_no_leftovers(settings: dict[str, Any]) -> None:
    """Stop what a hub that died without cleaning up left running (idempotent).

    Found only by the records that hub wrote (``state/run/*.pid``, pid *and* start time,
    see :mod:`studiohub.pidrecords`: its services and proxy), or for a hub older than
    those records, JupyterHub's proxy pid file checked against the proxy's command line;
    never by process name. Users' servers are not touched: they
    are meant to outlive the hub and are picked up again.
    """
    run = configurer.run_dir(settings)
    records = {r.name: r for r in pidrecords.read(run)}
    hub = records.pop(pidrecords.HUB, None)
    if hub is not None and hub.alive() and hub.pid != os.getpid():
        raise StepError(f"a hub of this state directory is already running (pid {hub.pid}): "
                        "stop it first (Ctrl-C, or kill -TERM it)")
    stopped = [f"{r.name} (pid {r.pid})" for r in records.values() if pidrecords.stop(r)]
    for name in records:
        pidrecords.remove(run, name)
    if "proxy" not in records:  # a hub from before the proxy had a record of its own
        proxy = _leftover_proxy(settings)
        if proxy is not None and pidrecords.stop(proxy):
            stopped.append(f"proxy (pid {proxy.pid})")
    if stopped:
        step(f"stopped what the last hub left running: {', '.join(stopped)}")
    else:
        step("no leftovers of an earlier hub")


def _leftover_proxy(settings: dict[str, Any]) -> pidrecords.Record | None:
    """The proxy of JupyterHub's pid file, if that pid still runs configurable-http-proxy."""
    pid_file = Path(settings["state_dir"]) / configurer.PROXY_PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    proxy = configurer.proxy_command().encode()
    started = pidrecords.start_ticks(pid)
    if started is None or not any(proxy in part for part in cmdline):
        return None
    return pidrecords.Record("proxy", pid, started)


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


class LinkRefused(StepError):
    """Where the command link goes there is already something that is not ours."""


def command_link() -> Path:
    """Where a shell finds ``studiohub``: ``/usr/local/bin`` for root (on every Debian
    PATH, sudo's ``secure_path`` included), ``~/.local/bin`` for a personal hub."""
    if system_mode():
        return Path("/usr/local/bin/studiohub")
    return Path.home() / ".local" / "bin" / "studiohub"


def link_command(target: Path, link: Path) -> bool:
    """Make ``link`` a symlink to ``target``; False when it already is one (a no-op).

    Replaced only when it is ours: a symlink to another StudioHub prefix's
    ``hub/bin/studiohub`` (removed, or the hub that ran ``up`` before this one: the
    last ``up`` owns the command, as it owns the ports). Anything else there, a file or
    a link elsewhere, is someone else's: :class:`LinkRefused`.
    """
    if link.is_symlink():
        current = Path(os.readlink(link))
        if current == target or (link.exists() and link.resolve() == target.resolve()):
            return False
        if current.parts[-3:] != ("hub", "bin", "studiohub"):
            raise LinkRefused(f"{link} already exists and is not StudioHub's (a link to "
                              f"{current}): left as it is; run {target}, or remove {link} "
                              "and run studiohub up again")
        if link.exists():
            print(f"    {link} pointed to {current}, another StudioHub prefix's command: "
                  f"now to {target}", flush=True)
        link.unlink()
    elif link.exists():
        raise LinkRefused(f"{link} already exists and is not StudioHub's link: left as it "
                          f"is; run {target}, or remove {link} and run studiohub up again")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return True


def ensure_command_link(target: Path | None = None, link: Path | None = None,
                        path_env: str | None = None) -> None:
    """``studiohub`` on the PATH of a new shell, so ``studiohub env build …`` as the
    README, the spawn page and ``doctor`` say works (a link, never a copy: upgrades
    follow). A place already taken is said and left alone; the hub still starts."""
    target = target or Path(sys.prefix) / "bin" / "studiohub"
    link = link or command_link()
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    if not target.exists():
        print(f"  ! {target} not found: not linked into {link.parent}", flush=True)
        return
    try:
        made = link_command(target, link)
    except LinkRefused as e:
        print(f"  ! {e}", flush=True)
        return
    except OSError as e:
        print(f"  ! could not link {link} to {target}: {e}", flush=True)
        return
    step(f"{'linked' if made else 'command'} {link} → {target}")
    if str(link.parent) not in path_env.split(os.pathsep):
        print(f"    {link.parent} is not on your PATH: add it (Debian's ~/.profile does "
              "when it exists at login: log in again), or run "
              f"{target}", flush=True)


def ensure_base_env(settings: dict[str, Any]) -> None:
    """The base environment built, and every built one's kernel spec and SDK refreshed."""
    from .envs import build_command, refresh_built_envs

    if build_command(["base"], catalog_path=settings["catalog_path"], force=False) != 0:
        raise StepError("building the base environment failed: see the message above")
    refresh_built_envs(list(load_catalog(settings["catalog_path"]).images.values()))


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


def ensure_admin_passwords(settings: dict[str, Any]) -> str | None:
    """The admins' password, made before the hub starts so the banner can show it once.

    Under first-use passwords it is also set for each admin before anyone can claim the
    name. Returned only when made now (None after: the banner says where it is kept).
    """
    kind, admins = settings["auth"]["type"], settings["auth"]["admin_users"]
    if kind not in ("firstuse", "shared-password") or not admins:
        return None
    path = Path(settings["state_dir"]) / "admin-password"
    fresh = not path.exists()
    password = configurer.read_secret(settings, "admin-password", 32)
    if kind == "firstuse":
        dbm_path = Path(settings["state_dir"]) / auth.PASSWORDS_DBM
        for name in admins:
            auth.seed_firstuse_password(dbm_path, name.lower(), password)
    step(f"admins' password kept in {path}")
    return password if fresh else None


def login_lines(settings: dict[str, Any], password: str | None,
                admin_password: str | None = None) -> list[str]:
    """How to log in, for the banner: what to type at a first login, and as an admin."""
    kind, state = settings["auth"]["type"], settings["state_dir"]
    admins = ", ".join(settings["auth"]["admin_users"])
    lines = []
    if kind == "shared-password":
        secret = password or f"(the one printed on first start, kept in {state}/password)"
        who = "with any user name" if system_mode() else \
            f"as {os.environ.get('USER', 'yourself')}"
        lines.append(f"Log in {who} and the shared password: {secret}")
        if system_mode():
            lines.append("  (anyone with it can log in as any non-admin user: for trials and "
                         "workshops. Each user their own password: auth.type: firstuse; "
                         "see docs/security.md)")
    elif kind == "firstuse":
        lines.append(f"First login: type a user name and choose a password (at least "
                     f"{auth.MIN_PASSWORD_LENGTH} characters); from then on only that "
                     "password opens that account.")
    else:
        lines.append(f"Log in through {kind} (auth.type).")
    if admins and kind in ("shared-password", "firstuse"):
        opened = admins_with_admin_password(settings)
        own = [n for n in settings["auth"]["admin_users"] if n not in opened]
        names = ", ".join(opened)
        if opened and admin_password:
            lines.append(f"Admins ({names}) log in with their name and the admin password: "
                         f"{admin_password} (shown once; kept in {state}/admin-password)")
        elif opened:
            lines.append(f"Admins ({names}) log in with the password in "
                         f"{state}/admin-password (sudo cat {state}/admin-password).")
        if own:
            lines.append(f"Admins who already had a password ({', '.join(own)}) keep "
                         "logging in with their own; the admin password is only for admin "
                         "names that had none yet.")
    return lines


def admins_with_admin_password(settings: dict[str, Any]) -> list[str]:
    """The admins ``state/admin-password`` opens: all under the shared password; under
    first-use passwords only those it was set for (an admin who had already chosen a
    password keeps it, :func:`studiohub.auth.seed_firstuse_password`)."""
    admins = list(settings["auth"]["admin_users"])
    if settings["auth"]["type"] != "firstuse":
        return admins
    state = Path(settings["state_dir"])
    try:
        password = (state / "admin-password").read_text().strip()
    except OSError:
        return []
    return [n for n in admins
            if auth.password_opens(state / auth.PASSWORDS_DBM, n.lower(), password)]


def banner(settings: dict[str, Any], password: str | None,
           admin_password: str | None = None) -> str:
    host = "localhost" if settings["ip"] in ("127.0.0.1", "0.0.0.0", "") else settings["ip"]
    url = f"http://{host}:{settings['port']}{settings['base_url']}"
    lines = [f"StudioHub is starting at {url}"]
    if not system_mode():
        lines.append(f"Personal hub: not run as root, so only {os.environ.get('USER', 'you')} "
                     "can log in, and servers run as that account.")
    lines.extend(login_lines(settings, password, admin_password))
    lines.append("Stop it with Ctrl-C; users' servers keep running and are picked up again.")
    return "\n".join(lines)


def up_command(args: argparse.Namespace) -> int:
    for flag, var in (("ip", "STUDIOHUB_IP"), ("port", "STUDIOHUB_PORT"),
                      ("db_url", "STUDIOHUB_DB_URL"), ("catalog", "STUDIOHUB_CATALOG"),
                      ("config", "STUDIOHUB_CONFIG")):
        if getattr(args, flag, None) is not None:
            os.environ[var] = str(getattr(args, flag))
    try:
        ensure_operator_catalog(paths())
        settings = load_settings()
        load_catalog(settings["catalog_path"])
        p = paths()
        print(f"StudioHub: setting up {'system' if system_mode() else 'personal'} hub "
              f"in {p.prefix}", flush=True)
        ensure_dirs(p, settings)
        ensure_state_private(settings)
        if not args.no_start:
            ensure_no_leftovers(settings)
        ensure_hub_env_reachable()
        ensure_command_link()
        ensure_proxy(p)
        ensure_base_env(settings)
        ensure_tensorboard_env()
        password = ensure_password(settings)
        admin_password = ensure_admin_passwords(settings)
    except (CatalogError, SettingsError, StepError) as e:
        for line in str(e).splitlines():  # one per problem of a file
            print(f"error: {line}", file=sys.stderr)
        return 1
    if args.no_start:
        return 0
    print(banner(settings, password, admin_password), flush=True)
    os.chdir(settings["state_dir"])
    # This process becomes the hub (execv keeps the pid): recorded so that the services'
    # parent-death check and the next `up` know it (studiohub.pidrecords).
    pidrecords.write(configurer.run_dir(settings), pidrecords.HUB)
    # Where this hub's API answers, for `studiohub reload` run without its STUDIOHUB_PORT.
    hub_url.record(settings)
    hub = [sys.executable, "-m", "studiohub.hubapp", "-f", str(JUPYTERHUB_CONFIG)]
    os.execv(sys.executable, hub)
    return 0  # not reached
