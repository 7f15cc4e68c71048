"""Start ipykernel with its IOPub pipe on a unix socket instead of a localhost TCP port.

ipykernel (6.x and 7.x) lets forked children of a kernel (``os.fork``, multiprocessing's
fork start method) send their output to the notebook through a PULL socket that
``IOPubThread._setup_pipe_in`` binds on ``tcp://127.0.0.1:<random>``: any local account
can connect to it and flood the kernel's output and its server's log. StudioHub's
kernels already talk over unix sockets in the account's 0700 directory; this launcher
puts that pipe there too (``ipc://<the kernel's socket base>-iopub-pipe``), so a kernel
started by StudioHub listens on no TCP port at all.

This file runs in the image's environment, which has ipykernel but not StudioHub: it
imports only the standard library, zmq and ipykernel, and the provisioner passes its
source text to that environment's interpreter (``python -c <source> -f <connection
file>``, see :func:`launcher_command`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

PIPE_SUFFIX = "-iopub-pipe"


def launcher_command(cmd: list[str]) -> list[str]:
    """``[python, -m, ipykernel_launcher, ...]`` as ``[python, -c, <this file>, ...]``;
    any other kernel command is returned unchanged."""
    if len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"]:
        return [cmd[0], "-c", Path(__file__).read_text(), *cmd[3:]]
    return list(cmd)


def pipe_address(connection_file: str) -> str | None:
    """The pipe's address beside the kernel's own unix sockets (None for TCP kernels)."""
    with open(connection_file) as f:
        info = json.load(f)
    if info.get("transport") != "ipc":
        return None
    return f"ipc://{info['ip']}{PIPE_SUFFIX}"


def patch_iopub_pipe(address: str) -> None:
    """Make ipykernel's IOPubThread bind and connect its pipe at ``address``."""
    import warnings

    import zmq
    from ipykernel import iostream

    def setup_pipe_in(self: Any) -> None:
        self._pipe_uuid = os.urandom(16)
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        try:
            pipe_in.bind(address)
        except zmq.ZMQError as e:
            warnings.warn(f"Couldn't bind IOPub pipe to {address}: {e}\n"
                          "subprocess output will be unavailable.", stacklevel=2)
            self._pipe_flag = False
            pipe_in.close()
            return
        self._pipe_port = 0  # no port: the address is the socket's path
        self._pipe_in = iostream.ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def setup_pipe_out(self: Any) -> tuple[Any, Any]:
        ctx = zmq.Context()  # a new context after fork, as ipykernel's own
        pipe_out = ctx.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return ctx, pipe_out

    thread_class: Any = iostream.IOPubThread
    thread_class._setup_pipe_in = setup_pipe_in
    thread_class._setup_pipe_out = setup_pipe_out


def remove_socket(path: str, owner: int) -> None:
    """At the kernel's exit (not a forked child's), its pipe's socket file goes too."""
    if os.getpid() == owner:
        with contextlib.suppress(OSError):
            os.unlink(path)


def main() -> None:
    """What ``python -m ipykernel_launcher`` does, with the pipe patched first."""
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # as ipykernel_launcher: the kernel adds the cwd back itself
    argv = sys.argv[1:]
    if "-f" in argv[:-1]:
        address = pipe_address(argv[argv.index("-f") + 1])
        if address is not None:
            patch_iopub_pipe(address)
            import atexit

            atexit.register(remove_socket, address.removeprefix("ipc://"), os.getpid())
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
