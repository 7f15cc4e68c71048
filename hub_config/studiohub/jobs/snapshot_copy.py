"""The snapshot's copy, done as the user by a small root fork server (standard library only).

Why a server: the copy used to be a new ``python -I -S -c`` interpreter, started as the
user by the service for every submit; that start was most of the submit's 0.4–0.6 s on a
loaded host. Now one *copy server* is started once (``python -I -S`` of this file, from
``server()``): a fresh interpreter with the standard library and nothing of the service's
memory or environment (no hub token, no database), single-threaded. For each request it
forks a child which, before it touches any path, closes the server's socket (a child can
never ask for another copy), points stdin, stdout and stderr at /dev/null, and becomes
the user for good: ``setgroups`` (the account's groups from ``getgrouplist``),
``setgid``, ``setuid`` (real, effective and saved ids: no way back), umask 077, ``HOME``;
an alarm ends it at its time limit. Only then does it probe the home and copy, exactly
as the interpreter did (``copy()``), and it answers on the socket that came with the
request: ``{}`` or ``{"error": message}``. So every access to the user's files is still
the user's own, never root's; a failed copy ends only its child.

Not root (a personal hub): the server and its children already are the user; there is
nothing to drop (``snapshot.py`` refuses to copy as anyone else).

Run as a script, this file is the server: ``python -I -S snapshot_copy.py FD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any


class Refused(Exception):
    """The copy cannot be made; the message says why, to the user, as is."""


# --- the copy, as the user (in a server's child) --------------------------------------------


def copy(job: str, source: str, kind: str, max_bytes: int, max_files: int,
         entry: str = "") -> None:
    """Make the home-relative job folder and copy ``source`` (of ``kind``: folder, file,
    package, git, none or measure) into its ``code/``. The working folder is the home.
    ``entry``: the notebook or script a folder is copied for, which must be a readable
    file in it. An empty ``job`` is the dry run's: the same probes and bounds, and
    nothing is made."""
    if kind == "measure":
        _measure(job, max_bytes, max_files)
        return
    if kind == "package":  # pkg.mod: the folder ~/pkg, else the file ~/pkg.py
        if _readable(source, True):
            kind = "folder"
        elif _readable(source + ".py", False):
            source, kind = source + ".py", "file"
        else:
            _no_such(f"{source} (or {source}.py)", "folder or file")
    if kind == "folder":
        if not _readable(source, True):
            _no_such(source, "folder")
        if entry and not _readable(entry, False):
            _no_such(entry, "file")
        _measure(source, max_bytes, max_files)
    elif kind == "file" and not _readable(source, False):
        _no_such(source, "file")
    if not job:
        return
    os.makedirs(os.path.dirname(job), mode=0o700, exist_ok=True)
    os.mkdir(job, 0o700)
    for sub in ("outputs", "checkpoints", "tensorboard"):
        os.mkdir(os.path.join(job, sub), 0o700)
    if kind == "git":
        return  # git clones into code/ itself
    code = os.path.join(job, "code")
    os.mkdir(code, 0o700)
    try:
        if kind == "file":
            shutil.copy2(source, os.path.join(code, os.path.basename(source)))
        elif kind == "folder":
            for path in _walk(source):
                target = os.path.join(code, os.path.relpath(path, source))
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                if os.path.islink(path):
                    os.symlink(os.readlink(path), target)
                else:
                    shutil.copy2(path, target)
    except OSError as e:
        shutil.rmtree(job, ignore_errors=True)
        raise Refused(f"could not copy {e.filename}: {e.strerror}") from None


def _unreadable(error: OSError) -> None:
    raise error


def _walk(top: str) -> Iterator[str]:
    """What a folder's snapshot holds: no hidden files or folders, no ``studiohub-jobs``;
    a link (to a folder too) is one entry, copied as a link."""
    for root, dirs, files in os.walk(top, onerror=_unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                         not (root == top and d == "studiohub-jobs"))
        for name in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            dirs.remove(name)
            yield os.path.join(root, name)
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)


def _measure(top: str, max_bytes: int, max_files: int) -> None:
    count = size = 0
    try:
        for path in _walk(top):
            count += 1
            size += os.lstat(path).st_size
            if count > max_files or size > max_bytes:
                what = (f"more than {max_files} files" if count > max_files else
                        f"more than {max_bytes / 2**20:g} MiB")
                raise Refused(
                    f"{top} holds {what} (hidden files not counted; a job copies at most "
                    f"{max_files} files and {max_bytes / 2**20:g} MiB): move the notebook "
                    "or script into a folder with only what it needs, or run it from Git")
    except OSError as e:
        raise Refused(f"cannot read {os.path.relpath(e.filename or top)} in {top}: "
                      f"{e.strerror}") from None


def _readable(path: str, folder: bool) -> bool:
    """Whether this account may list the folder or open the file: a missing path, one it
    may not read and one of the other kind all answer False alike."""
    try:
        if folder:
            os.listdir(path)
            return os.path.isdir(path)
        with open(path, "rb"):
            return os.path.isfile(path)
    except OSError:
        return False


def _no_such(source: str, what: str) -> None:
    raise Refused(f"{source} is not a {what} you can read in your home (it is missing, or "
                  "your account may not read it)")


# --- the server ------------------------------------------------------------------------------


def serve(control: socket.socket) -> None:
    """Fork a child per request until the service's end of ``control`` closes."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        if not message and not fds:
            return  # the service is gone
        if not fds:
            continue
        with socket.socket(fileno=fds[0]) as answer:
            try:
                pid = os.fork()
            except OSError as e:
                _answer(answer, f"cannot start the copy: {e.strerror}")
                continue
            if pid == 0:
                code = 1
                try:
                    control.close()
                    _child(message, answer)
                    code = 0
                finally:
                    os._exit(code)


def _child(message: bytes, answer: socket.socket) -> None:
    """Become the user, copy, answer."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        request = json.loads(message)
        account = pwd.getpwnam(request["user"])
        _become(account)
        signal.alarm(max(1, int(request["timeout"]) + 1))
        copy(*request["args"])
        error = None
    except Refused as e:
        error = str(e)
    except Exception as e:  # what the interpreter's traceback ended with
        error = "".join(traceback.format_exception_only(e)).strip()
    _answer(answer, error)


def _become(account: pwd.struct_passwd) -> None:
    if os.geteuid() == 0:
        os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    if os.getuid() != account.pw_uid or os.geteuid() != account.pw_uid:
        raise Refused(f"cannot copy files as {account.pw_name}")
    os.umask(0o077)
    os.environ.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    os.chdir(account.pw_dir)


def _answer(answer: socket.socket, error: str | None) -> None:
    with contextlib.suppress(OSError):  # OSError: the service stopped waiting
        answer.sendall(json.dumps({} if error is None else {"error": error}).encode())


# --- the service's side ----------------------------------------------------------------------


class CopyServer:
    """The service's handle on its copy server: started on first use (or ``start()``),
    and again if it ever died. Safe from any thread and any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def _ensure(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._control:
            return self._control
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, cwd="/", start_new_session=True,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
        ours.setblocking(False)
        self._control = ours
        return ours

    def _send(self, message: bytes, fd: int) -> bool:
        """Hand the request to the server: False when its queue is full (try again)."""
        with self._lock:
            for attempt in (1, 2):
                control = self._ensure()
                try:
                    socket.send_fds(control, [message], [fd])
                    return True
                except BlockingIOError:
                    return False
                except OSError:  # the server died: a new one, once
                    if attempt == 2:
                        raise
                    if self._proc is not None:
                        self._proc.kill()
                        self._proc.wait()
        return False

    async def copy(self, user: str, args: list[Any], timeout: float) -> None:
        """``copy(*args)`` as ``user``, in a child of the server; ``Refused`` says why not."""
        message = json.dumps({"user": user, "args": args, "timeout": timeout}).encode()
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            with theirs:
                while not self._send(message, theirs.fileno()):
                    await asyncio.sleep(0.01)
            ours.setblocking(False)
            reply = await asyncio.wait_for(_read_all(loop, ours), timeout + 2)
        except TimeoutError:
            raise Refused(f"copying the code took longer than {timeout:.0f} s") from None
        finally:
            ours.close()
        if not reply:
            raise Refused(f"copying the code took longer than {timeout:.0f} s, or stopped")
        error = json.loads(reply).get("error")
        if error is not None:
            raise Refused(error)


async def _read_all(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    chunks = []
    while chunk := await loop.sock_recv(sock, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


#: The process's one copy server.
SERVER = CopyServer()


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
