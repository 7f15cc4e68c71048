"""ipykernel started through StudioHub's launcher listens on no TCP port (its IOPub pipe
is a unix socket beside the kernel's own), and forked children's output still arrives.

A real kernel from this environment's ipykernel (7.x here; the image environments' 6.x
is covered by tests/integration/test_switching.py), started by jupyter_client over ipc.
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client.manager import KernelManager

from studiohub_lab.switching.kernel_launcher import PIPE_SUFFIX, launcher_command

PLAIN = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
FORK = textwrap.dedent("""
    import os, time
    child = os.fork()
    if child == 0:
        print("printed by a forked child", flush=True)
        os._exit(0)
    os.waitpid(child, 0)
    time.sleep(1)
""")


@pytest.fixture
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[KernelManager]:
    """A kernel over unix sockets in a private folder, started with ``request.param``."""
    with tempfile.TemporaryDirectory(prefix="k-") as sockets:  # short: socket paths
        spec = Path(sockets) / "kernels" / "launched"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": request.param, "display_name": "t", "language": "python"}))
        monkeypatch.setenv("JUPYTER_PATH", sockets)
        manager = KernelManager(kernel_name="launched", transport="ipc",
                                ip=str(Path(sockets) / "k"))
        manager.start_kernel()
        try:
            yield manager
        finally:
            manager.shutdown_kernel(now=True)


def run(manager: KernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out: list[str] = []
        client.execute_interactive(code, timeout=60, output_hook=lambda msg: out.append(
            msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        return "".join(out)
    finally:
        client.stop_channels()


def inet_sockets(manager: KernelManager) -> list[Any]:
    process = psutil.Process(manager.provisioner.pid)  # type: ignore[union-attr]
    return [c for p in (process, *process.children(recursive=True))
            for c in p.net_connections(kind="inet")]


@pytest.mark.parametrize("kernel", [launcher_command(PLAIN)], indirect=True)
def test_the_launched_kernel_has_no_tcp_socket_and_forked_output_arrives(
        kernel: KernelManager) -> None:
    assert "printed by a forked child" in run(kernel, FORK)
    assert inet_sockets(kernel) == []
    assert Path(f"{kernel.ip}{PIPE_SUFFIX}").is_socket()


@pytest.mark.parametrize("kernel", [PLAIN], indirect=True)
def test_without_the_launcher_ipykernel_listens_on_localhost(kernel: KernelManager) -> None:
    """What the launcher is for: the check above sees the stock pipe's TCP port."""
    assert "printed by a forked child" in run(kernel, FORK)
    listening = [c for c in inet_sockets(kernel) if c.status == psutil.CONN_LISTEN]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]


def test_other_kernel_commands_are_left_alone() -> None:
    assert launcher_command(["/usr/bin/R", "--slave", "-f", "x"]) == \
        ["/usr/bin/R", "--slave", "-f", "x"]
    launched = launcher_command(PLAIN)
    assert launched[:2] == [sys.executable, "-c"] and launched[3:] == PLAIN[3:]
