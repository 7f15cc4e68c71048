"""A job attempt's own network namespace: loopback for its replicas, outbound through
slirp4netns, no way in.

Used by the attempt's keeper (:mod:`studiohub.jobs.keeper`), which runs as root and moves
itself into a new network namespace before it starts any replica, so every replica is
born inside it (no ``setns`` race, no replica ever on the host's network):

- inside, ``lo`` is up: replicas reach each other on ``127.0.0.1`` (gloo's store, TF's
  gRPC servers, ps-lite), and no other account's process, on the host's network, can
  connect to those ports (TensorFlow's gRPC server runs whatever graph it is sent; gloo and
  ps-lite have no authentication);
- outbound, ``slirp4netns`` (Debian package) gives the namespace a ``tap0`` with a default
  route through user-mode NAT, as a rootless container gets: the job reads data from
  wherever the host can. Nothing is forwarded into the namespace. slirp4netns parses
  every packet the job sends, so it runs hardened (:func:`slirp_command`):
  ``--disable-host-loopback`` (the host's own ``127.0.0.1`` services, the hub's API and
  other users' servers, stay out of reach through its gateway ``10.0.2.2``),
  ``--enable-seccomp`` (a syscall filter) and, as root, ``--enable-sandbox`` (a mount
  namespace of its own with only ``/etc`` and ``/run`` and every capability dropped but
  ``CAP_NET_BIND_SERVICE``).

Standard library only: the keeper imports nothing heavy before its replicas start.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import shutil
import signal
import socket
import struct

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SLIRP = "slirp4netns"
#: slirp4netns's default addresses (``--configure``): the job's own, and its DNS.
SLIRP_ADDRESS, SLIRP_DNS = "10.0.2.100", "10.0.2.3"


class NamespaceError(OSError):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def unshare_network() -> None:
    """Move the calling process into a new, empty network namespace.

    As root (a system hub), a network namespace only. Otherwise (a personal hub, where
    every replica runs as the hub's own account) a user namespace too, mapping the
    account to itself (as TensorBoard's launcher does), which is what lets an
    unprivileged process own a network namespace.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"cannot create a network namespace: {os.strerror(err)}")
    if uid != 0:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    loopback_up()


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """``prctl(PR_SET_PDEATHSIG)``: this process gets ``sig`` when its parent ends."""
    if _libc().prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def slirp_command(target_pid: int, ready_fd: int, exit_fd: int, *, root: bool = True
                  ) -> list[str]:
    """slirp4netns for ``target_pid``'s namespace: tap0 configured, NAT out, no way in,
    the host's loopback refused, a seccomp filter, and (as root) its own sandbox.

    Unprivileged (a personal hub), ``--enable-sandbox`` would need a user namespace of
    slirp4netns's own to make its mount namespace in; it runs as the hub's account then,
    with no capability to drop, and keeps the other two."""
    return [shutil.which(SLIRP) or SLIRP, "--configure", "--mtu=65520",
            "--disable-host-loopback", "--enable-seccomp",
            *(["--enable-sandbox"] if root else []),
            f"--ready-fd={ready_fd}", f"--exit-fd={exit_fd}", str(target_pid), "tap0"]


def isolate(outbound: bool, timeout: float = 10.0) -> tuple[str, int | None]:
    """Put the calling process in a namespace of its own; with ``outbound``, connect it
    out through slirp4netns (started from the host's namespace before the move).

    Returns (what the namespace reaches, slirp4netns's pid or None). slirp4netns ends when
    the caller exits (its exit pipe closes, and it dies with its parent).
    """
    if not outbound or not shutil.which(SLIRP):
        unshare_network()
        return ("loopback only" + ("" if not outbound else f": {SLIRP} is not installed"),
                None)
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    me = os.getpid()
    pid = os.fork()
    if pid == 0:  # stays in the host's namespace: slirp4netns must start from there
        try:
            for fd in (go_w, ready_r, exit_w):
                os.close(fd)
            die_with_parent()
            os.read(go_r, 1)  # the parent is in its namespace now
            os.set_inheritable(ready_w, True)
            os.set_inheritable(exit_r, True)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            command = slirp_command(me, ready_w, exit_r, root=os.getuid() == 0)
            os.execv(command[0], command)
        finally:
            os._exit(127)
    for fd in (go_r, ready_w, exit_r):
        os.close(fd)
    try:
        unshare_network()
    finally:
        os.write(go_w, b"1")
        os.close(go_w)
    # exit_w stays open (not inheritable) for this process's life: slirp4netns exits when
    # it closes.
    readable, _, _ = select.select([ready_r], [], [], timeout)
    ready = bool(readable) and os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return (f"loopback only: {SLIRP} did not start", None)
    return (f"outbound through {SLIRP}", pid)
