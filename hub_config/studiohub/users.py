"""Unix accounts for hub users (system mode): created on first use, with private homes.

Each hub user ``alice`` runs as the unix account ``jupyter-alice`` (the prefix The
Littlest JupyterHub uses), named by :func:`studiohub.slugs.unix_name`. The prefix means a
hub user can never become an existing system account (``root`` → ``jupyter-root``), and
``jupyter-*`` accounts are easy to list and remove. Homes are ``/home/jupyter-<name>``,
mode 0700, so no other user can read them.

Accounts are created at login (:func:`create_on_login`, the authenticator's
``post_auth_hook``, as The Littlest JupyterHub does) and again, if missing, when a
server starts, which covers users added through the REST API. ``ensure_user`` is
idempotent and safe to run twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
import re
import stat
import subprocess
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado import web

from .slugs import DEFAULT_UNIX_PREFIX, unix_name

HOME_MODE = 0o700
USERADD_NAME_IN_USE = 9
_creating = threading.Lock()  # spawns run this in threads; useradd locks /etc/passwd


class UserError(RuntimeError):
    """An account that could not be created; the message says what to check."""


class AccountTaken(UserError):
    """The hub name maps to an account StudioHub made for another hub name."""


def ensure_user(name: str, prefix: str = DEFAULT_UNIX_PREFIX,
                run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
                ) -> pwd.struct_passwd:
    """The unix account of hub user ``name``, created (with a 0700 home) if missing."""
    account = unix_name(name, prefix)
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        with _creating:
            entry = _create(account, name, run)
    check_owner(entry, name)
    ensure_private_home(entry)
    return entry


def check_owner(entry: pwd.struct_passwd, name: str) -> None:
    """Refuse an account StudioHub made for another hub user.

    Names that are not already safe become ``<cleaned>--<8 hex digits>`` (studiohub.slugs):
    another name with the same cleaned form and the same 32-bit hash would be handed this
    account and its home. The account's comment says whose it is.
    """
    owner = entry.pw_gecos.removeprefix(GECOS_PREFIX) \
        if entry.pw_gecos.startswith(GECOS_PREFIX) else None
    if owner is not None and owner != _gecos(name):
        raise AccountTaken(f"unix account {entry.pw_name} belongs to another hub user: "
                        f"{name[:60]!r} cannot use it; log in with another user name")


#: The comment of every account StudioHub creates: ``StudioHub user <hub name>``.
GECOS_PREFIX = "StudioHub user "


def _create(account: str, hub_name: str,
            run: Callable[..., subprocess.CompletedProcess[str]]) -> pwd.struct_passwd:
    cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "-K", f"HOME_MODE=0{HOME_MODE:o}",
           "--comment", f"{GECOS_PREFIX}{_gecos(hub_name)}", account]
    result = run(cmd, capture_output=True, text=True, check=False)
    if result.returncode not in (0, USERADD_NAME_IN_USE):
        raise UserError(f"could not create unix account {account} for hub user {hub_name!r}: "
                        f"useradd exited {result.returncode}: {result.stderr.strip()}")
    try:
        return pwd.getpwnam(account)
    except KeyError:
        raise UserError(f"useradd reported success but {account} does not exist") from None


def _gecos(text: str) -> str:
    """The comment field cannot hold ``:``, ``,``, ``=`` or control characters."""
    return re.sub(r"[:,=\x00-\x1f\x7f]", "_", text)[:64]


def ensure_private_home(entry: pwd.struct_passwd) -> None:
    """Home directory owned by the account and readable by nobody else (repairs older ones)."""
    home = entry.pw_dir
    try:
        st = os.stat(home)
    except FileNotFoundError:
        os.makedirs(home, mode=HOME_MODE)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        return
    if st.st_uid == entry.pw_uid and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(home, stat.S_IMODE(st.st_mode) & ~0o077)


def lookalike_reason(name: str) -> str | None:
    """Why ``name`` could pass for another user's, or None.

    ``"boss\u200b"`` (a zero-width space) and ``"ｂｏｓｓ"`` (full-width letters) show as
    "boss" wherever a name is rendered (shares, lists); invisible characters and forms
    that Unicode's compatibility normalisation (NFKC) changes are refused.
    """
    invisible = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                 or (unicodedata.category(c) == "Zs" and c != " ")]
    if invisible or name != name.strip() or unicodedata.normalize("NFKC", name) != name:
        return ("user names may not hold invisible or look-alike characters (such as "
                "zero-width spaces or full-width letters): log in with plain letters")
    return None


async def create_on_login(authenticator: Any, handler: Any,
                          authentication: dict[str, Any] | None) -> dict[str, Any] | None:
    """``Authenticator.post_auth_hook``: the account exists from the first login, like
    The Littlest JupyterHub's, whatever authenticator let the user in."""
    if authentication:
        why = lookalike_reason(authentication["name"])
        if why:
            raise web.HTTPError(403, why)
        config = getattr(authenticator, "config", None)
        spawner = config.get("StudioSpawner", {}) if config is not None else {}
        prefix = spawner.get("unix_user_prefix", DEFAULT_UNIX_PREFIX)
        try:
            await asyncio.to_thread(ensure_user, authentication["name"], prefix)
        except AccountTaken as e:
            raise web.HTTPError(403, str(e)) from None
        except UserError as e:
            raise web.HTTPError(500, str(e)) from None
    return authentication


SOCKETS_ROOT = "/run/studiohub"


def ensure_sockets_root(root: str = SOCKETS_ROOT) -> None:
    """``/run/studiohub``: root's, 0755 whatever the umask of whoever made it first."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)


def ensure_socket_dir(entry: pwd.struct_passwd, root: str = SOCKETS_ROOT) -> str:
    """``/run/studiohub/<uid>``: where the account's kernels listen (unix sockets), 0700.

    Its parent belongs to root, so no other user can create it first; the path is short
    enough for a socket name (108 bytes), which a home directory may not be.
    """
    ensure_sockets_root(root)
    path = os.path.join(root, str(entry.pw_uid))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{path} is not a directory: remove it")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o700)
    return path


#: The account's own temporary directory, in its home: ``$TMPDIR`` of its server.
TMP_DIR = ".tmp"


def ensure_tmp_dir(entry: pwd.struct_passwd, name: str = TMP_DIR) -> str:
    """``<home>/.tmp``, 0700 and the account's: its processes' ``TMPDIR``.

    Nothing of a user's is written where other accounts can write (``/tmp``: TensorBoard's
    notebook integration writes ``$TMPDIR/.tensorboard-info`` there otherwise, following
    links another account planted). In the home, not in ``/run/studiohub/<uid>``: ``/run``
    is often a small tmpfs the whole system shares, which a large temporary file (a pip
    build) would fill. Made without following a link the account may have put there
    (the hub runs as root): a link or a file in its place is refused.
    """
    home = os.open(entry.pw_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=home)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=home)
        except OSError:
            raise RuntimeError(f"{entry.pw_dir}/{name} is not a directory: remove it") from None
    finally:
        os.close(home)
    try:
        if os.fstat(fd).st_uid != entry.pw_uid:
            os.fchown(fd, entry.pw_uid, entry.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return os.path.join(entry.pw_dir, name)


def ensure_private_dir(path: Path) -> str:
    """A directory only this process's account may enter (0700), for a personal hub's
    kernel sockets; refused if another account owns it."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(parents=True, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise RuntimeError(f"{path} is not a directory of this account: remove it")
    os.chmod(path, 0o700)
    return str(path)


#: Room a directory leaves for a kernel's socket names (<8 hex>-<n>) within the 107 bytes
#: a unix socket's path may have.
MAX_SOCKET_DIR = 90


def personal_socket_dir() -> Path:
    """``<prefix>/run``, or ``/tmp/studiohub-<uid>`` when that path is too long for sockets."""
    from .paths import paths

    path = paths().prefix / "run"
    if len(str(path)) <= MAX_SOCKET_DIR:
        return path
    return Path("/tmp", "studiohub-" + str(os.geteuid()))  # a path, not a kernel name


def current_user() -> pwd.struct_passwd:
    """The account a personal hub (not root) runs everything as."""
    return pwd.getpwnam(getpass.getuser())
