"""``%tensorboard`` in a notebook, served by the user's managed TensorBoards.

``tensorboard.notebook`` (what ``%load_ext tensorboard`` loads) runs
``$TENSORBOARD_BINARY <args>`` and waits for that program to write a TensorBoardInfo
file into ``<tmp>/.tensorboard-info/``; then it shows an iframe at
``$TENSORBOARD_PROXY_URL`` with ``%PORT%`` replaced by the info file's ``port``.

The server extension sets, for every kernel it starts (through the server's environment):

* ``TENSORBOARD_BINARY``: a small executable (written at server start) running
  :func:`main` below, which asks this server to open the folders (the same managed,
  socket-bound TensorBoard as the file browser's), then writes the info file with the
  TensorBoard's id as its "port" and stays alive while that TensorBoard runs (so
  ``!kill <pid>``, which the magic suggests, stops it);
* ``TENSORBOARD_PROXY_URL``: ``<base_url>studiohub/tensorboard/%PORT%/``;
* ``STUDIOHUB_LAB_URL`` and ``STUDIOHUB_KERNEL_TOKEN``: where this server is, and a
  per-server secret that authenticates the kernel's requests (only the user's own
  processes can read a process's environment).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from studiohub import contract

TOKEN_HEADER = "X-StudioHub-Kernel-Token"


def new_kernel_token() -> str:
    return secrets.token_urlsafe(32)


def write_shim(directory: Path) -> Path:
    """An executable ``tensorboard`` for kernels, running :func:`main` with this server's
    interpreter (kernels run from other environments)."""
    path = directory / "tensorboard"
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    "from studiohub_lab.tensorboard.magic import main\n"
                    "sys.exit(main())\n")
    path.chmod(0o700)
    return path


def kernel_environment(base_url: str, server_url: str, token: str, shim: Path) -> dict[str, str]:
    return {
        "TENSORBOARD_BINARY": str(shim),
        "TENSORBOARD_PROXY_URL": f"{base_url.rstrip('/')}/studiohub/tensorboard/%PORT%/",
        contract.LAB_URL: server_url,
        contract.LAB_KERNEL_TOKEN: token,
    }


# --- TensorBoard's info-file format (tensorboard/manager.py), kept to the fields it checks.

def cache_key(working_directory: str, arguments: list[str]) -> str:
    datum = {"working_directory": working_directory, "arguments": arguments,
             "configure_kwargs": {}}
    raw = json.dumps(datum, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode("ascii")


INFO_DIR = ".tensorboard-info"


class UnsafeInfoDir(OSError):
    """TensorBoard's info folder could be written by other accounts: nothing is written."""


def info_dir() -> Path:
    """``<tmp>/.tensorboard-info``, private (0700) to this account, or an error.

    TensorBoard's notebook integration reads the info file there, in the temporary
    folder of the kernel (``$TMPDIR``: a private one on StudioHub's servers), and makes
    that folder 0777 when it creates it. A folder of ours is made private (0700) before
    anything is written in it; one that is a link or belongs to another account is
    refused: another account could plant a link there to any file of the user's, which
    writing the info file would overwrite.
    """
    path = Path(tempfile.gettempdir()) / INFO_DIR
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:  # a link (ELOOP), or not a folder
        raise UnsafeInfoDir(f"{path} is not a folder of yours ({e.strerror}): remove it, or "
                            "set TMPDIR to a folder only you can write") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise UnsafeInfoDir(
                f"{path} belongs to another account (uid {st.st_uid}): it could make "
                "TensorBoard's info file overwrite your files. Set TMPDIR to a folder only "
                "you can write (StudioHub's servers give each kernel one: restart your "
                "server)")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o700)  # ours, but others could add links: not any more
    finally:
        os.close(fd)
    return path


def info_file() -> Path:
    return info_dir() / f"pid-{os.getpid()}.info"


def write_info(port: int, logdir: str, arguments: list[str], version: str) -> Path:
    """Write TensorBoard's info file for this process: in a private folder only, a new
    file (a stale one of ours is replaced), never through a link."""
    info = {"version": version, "start_time": int(time.time()), "pid": os.getpid(),
            "port": port, "path_prefix": "", "logdir": logdir, "db": "",
            "cache_key": cache_key(os.getcwd(), arguments)}
    path = info_file()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info, sort_keys=True, indent=4) + "\n")
    return path


# --- the program kernels run as `tensorboard` ---------------------------------------------

def parse_folders(argv: list[str]) -> list[str]:
    parser = argparse.ArgumentParser(
        prog="tensorboard", description="StudioHub's %tensorboard: opens folders in the "
        "user's managed TensorBoard. Only --logdir and --logdir_spec are used; --port, "
        "--host and --bind_all are ignored (TensorBoard is served through your server).")
    parser.add_argument("--logdir", default=None)
    parser.add_argument("--logdir_spec", default=None)
    for ignored in ("--port", "--host", "--reload_interval", "--path_prefix"):
        parser.add_argument(ignored, default=None)
    parser.add_argument("--bind_all", action="store_true")
    args = parser.parse_args(argv)
    if args.logdir:
        return [args.logdir]
    if args.logdir_spec:
        # name:path,name:path (names are ours: the folders' own names are shown)
        return [part.split(":", 1)[-1] for part in args.logdir_spec.split(",") if part]
    parser.error("give --logdir FOLDER")
    return []  # pragma: no cover


def _request(method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float | None = 90) -> dict[str, Any]:
    url = os.environ[contract.LAB_URL].rstrip("/") + "/studiohub/api/v1/" + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        TOKEN_HEADER: os.environ.get(contract.LAB_KERNEL_TOKEN, ""),
        "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folders = parse_folders(argv)
    if contract.LAB_URL not in os.environ:
        print("StudioHub: this kernel was not started by a StudioHub server "
              f"({contract.LAB_URL} is not set)", file=sys.stderr)
        return 2
    folders = [str(Path(f).expanduser().resolve()) for f in folders]
    try:
        info_dir()  # before anything starts: a refused folder changes nothing
    except OSError as e:
        print(f"StudioHub: {e}", file=sys.stderr)
        return 1
    try:
        board = _request("POST", "tensorboards?wait=ready", {"folders": folders})
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["message"]
        except (ValueError, KeyError):
            message = str(e)
        print(f"StudioHub: {message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"StudioHub: cannot reach your Jupyter server: {e}", file=sys.stderr)
        return 1
    if board["status"] != "running":
        print(board.get("error") or f"TensorBoard is {board['status']}", file=sys.stderr)
        return 1
    try:
        path = write_info(int(board["id"]), ", ".join(folders), argv, "studiohub")
    except OSError as e:
        print(f"StudioHub: cannot write TensorBoard's info file: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        path.unlink(missing_ok=True)
        try:
            _request("DELETE", f"tensorboards/{board['id']}", timeout=10)
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Returns when the TensorBoard stops (idle, Stop, the server stopping).
        _request("GET", f"tensorboards/{board['id']}?wait=stopped", timeout=None)
    except OSError:
        pass
    finally:
        path.unlink(missing_ok=True)
    return 0
