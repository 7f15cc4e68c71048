"""Run one TensorBoard on a private unix socket. Started by the user's server as

    <tensorboard env>/bin/python launcher.py --socket PATH --isolation MODE -- <tensorboard flags>

This file runs in the light TensorBoard environment, not in the server's: it imports
only the standard library, ``tensorboard`` and ``werkzeug`` (TensorBoard's own server).

* The socket is created under umask 077 inside a 0700 folder: only its owner (the
  user's server) can connect. TensorBoard opens no TCP port for its web server.
* TensorBoard's fast loader (``tensorboard_data_server``) listens on a loopback TCP
  port that any local user could reach. ``--isolation namespace`` first moves this
  process into a private user + network namespace, whose loopback nobody else sees;
  ``auto`` does the same when the host allows it and otherwise turns the fast loader
  off (``--load_fast=false``: no TCP listener at all); ``none`` changes nothing (for a
  server that already has a network of its own, such as a Kubernetes pod).
* Readiness is one line on stdout, ``READY <isolation>``, written once the socket
  listens and the data loader has started; after it stdout goes to stderr.
* The process exits when its stdin closes, so it never outlives the server that
  started it, even one killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys
import threading

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class NamespaceUnavailable(OSError):
    pass


def enter_private_network() -> None:
    """Move this (single-threaded) process into a new user + network namespace mapped to
    its own uid/gid, and bring that namespace's loopback up."""
    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NamespaceUnavailable(err, f"cannot create a private network namespace: "
                                        f"{os.strerror(err)}")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def exit_when_stdin_closes() -> None:
    def wait() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=wait, name="stdin-watch", daemon=True).start()


def make_server_class(socket_path: str) -> type:
    from tensorboard import program
    from werkzeug import serving

    class QuietHandler(serving.WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TensorBoard's own server does

        def log_request(self, *args: object, **kwargs: object) -> None:
            pass

    class UnixSocketServer(serving.ThreadedWSGIServer, program.TensorBoardServer):
        """TensorBoard's WSGI app served by werkzeug on a unix socket."""

        daemon_threads = True

        def __init__(self, wsgi_app: object, flags: object) -> None:
            serving.ThreadedWSGIServer.__init__(self, "unix://" + socket_path, 0, wsgi_app,
                                                handler=QuietHandler)

        def get_url(self) -> str:
            return "unix:" + socket_path

        def print_serving_message(self) -> None:
            pass

    return UnixSocketServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--isolation", choices=["auto", "namespace", "none", "entered"],
                        default="auto")
    parser.add_argument("tensorboard_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tb_args = [a for a in args.tensorboard_args if a != "--"]

    isolation = args.isolation
    if isolation in ("auto", "namespace"):
        try:
            enter_private_network()
        except (NamespaceUnavailable, OSError) as e:
            if isolation == "namespace":
                print(f"StudioHub: {e}. Set TensorBoardManager.isolation to 'auto' to run "
                      "TensorBoard without its fast loader instead.", file=sys.stderr)
                return 3
            tb_args.append("--load_fast=false")
            isolation = "python-loader"
        else:
            # Start again from a clean exec: capabilities held in the new namespace are
            # dropped, TensorBoard runs with none.
            os.execv(sys.executable, [sys.executable, os.path.abspath(__file__),
                                      "--socket", args.socket, "--isolation", "entered",
                                      "--", *tb_args])
    if isolation == "entered":
        isolation = "namespace"
    elif isolation == "none":
        isolation = "none"

    os.umask(0o077)
    from tensorboard import program

    tensorboard = program.TensorBoard(server_class=make_server_class(args.socket))
    try:
        tensorboard.configure(argv=["tensorboard", *tb_args])
        tensorboard.launch()
    except program.TensorBoardServerException as e:
        print(f"TensorBoard: {e.msg}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"TensorBoard: socket {args.socket} is in use", file=sys.stderr)
            return 1
        raise
    exit_when_stdin_closes()
    print(f"READY {isolation}", flush=True)
    os.dup2(2, 1)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
