"""The user's running TensorBoards: start, reuse, stop when idle, stop with the server.

Lifecycle of one :class:`Instance` (one per set of folders, see :mod:`.folders`)::

    starting --READY--> running --stop/idle--> stopped
        \\--exit/timeout--> failed          (error: TensorBoard's own stderr)

Starting never blocks: :meth:`TensorBoardManager.start` spawns the launcher and
returns at once; a watcher task flips the status when the launcher prints ``READY``.
Every TensorBoard runs in its own process group with its stdin a pipe from this
server, so it is stopped with the server, and exits by itself if the server dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Enum, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from studiohub import contract

from ..errors import Conflict, LabError, NotFound, Unavailable
from .folders import display_path, instance_id, resolve_folders, run_names

LAUNCHER = Path(__file__).with_name("launcher.py")

# Variables that TensorBoard has no use for and should not see.
_PRIVATE_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTER_TOKEN",
                contract.LAB_KERNEL_TOKEN)


@dataclass
class Instance:
    id: str
    folders: list[Path]
    runs: list[tuple[str, Path]]
    url: str
    status: str = "starting"
    error: str | None = None
    isolation: str | None = None
    started: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.monotonic)
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    directory: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def socket(self) -> Path:
        assert self.directory is not None
        return self.directory / "tb.sock"

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def model(self, home: Path) -> dict[str, Any]:
        now = time.time()
        return {
            "id": self.id,
            "folders": [display_path(f, home) for f in self.folders],
            "runs": [{"name": n, "folder": display_path(f, home)} for n, f in self.runs],
            "status": self.status,
            "error": self.error,
            "url": self.url,
            "pid": self.pid if self.status in ("starting", "running") else None,
            "isolation": self.isolation,
            "started": self.started,
            "uptime": max(0.0, now - self.started) if self.status == "running" else 0.0,
            "idle": round(time.monotonic() - self.last_activity, 1),
        }


class TensorBoardManager(LoggingConfigurable):
    """Runs the user's TensorBoards (configure as ``c.TensorBoardManager.<trait>``)."""

    python = Unicode(
        help="""Interpreter of the light TensorBoard environment (TensorBoard without
        TensorFlow, from images/tensorboard/requirements.txt). Default:
        $STUDIOHUB_TENSORBOARD_PYTHON, else <prefix>/envs/tensorboard/bin/python where
        <prefix> is $STUDIOHUB_PREFIX or the folder holding the server's own environment
        (/opt/studiohub for a system install).""",
    ).tag(config=True)

    idle_timeout = Integer(
        3600,
        help="""Seconds without any request through the proxy after which a TensorBoard
        is stopped (its memory freed); 0 keeps it until the server stops. An open
        TensorBoard tab reloads its data every 30 s, so only TensorBoards nobody looks
        at count as idle. Reopening a stopped one starts it again.""",
    ).tag(config=True)

    cull_interval = Integer(
        60, help="Seconds between two checks for idle TensorBoards.",
    ).tag(config=True)

    startup_timeout = Float(
        60.0,
        help="""Seconds a TensorBoard may take to start listening before it is stopped
        and reported as failed.""",
    ).tag(config=True)

    max_instances = Integer(
        8,
        help="""Most TensorBoards one user's server runs at once (each takes ~75 MB of
        the server's memory limit plus what its event files need). Starting one more is
        refused with a message asking to stop one.""",
    ).tag(config=True)

    isolation = Enum(
        ["auto", "namespace", "private-network"],
        default_value="auto",
        help="""How TensorBoard's fast loader (tensorboard_data_server, which listens on a
        loopback TCP port) is kept from other local users.
        'auto': a private user + network namespace when the host allows unprivileged
        user namespaces, else the fast loader is turned off (--load_fast=false: no TCP
        port at all; large folders load slower).
        'namespace': always the namespace; starting fails where the host forbids it.
        'private-network': no namespace, fast loader on; only for servers that already
        have a network of their own (a Kubernetes pod, a container).""",
    ).tag(config=True)

    extra_args = List(
        Unicode(),
        help="""Extra TensorBoard flags for every instance, e.g.
        ["--samples_per_plugin=images=100", "--reload_interval=10"].""",
    ).tag(config=True)

    allowed_root = Unicode(
        help="""Only folders inside this one can be opened. Default: the user's home.""",
    ).tag(config=True)

    @default("python")
    def _python_default(self) -> str:
        if os.environ.get(contract.TENSORBOARD_PYTHON):
            return os.environ[contract.TENSORBOARD_PYTHON]
        prefix = Path(os.environ.get(contract.PREFIX) or Path(sys.prefix).parent)
        return str(prefix / "envs" / "tensorboard" / "bin" / "python")

    @default("allowed_root")
    def _allowed_root_default(self) -> str:
        return str(Path.home())

    def __init__(self, root_dir: str, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root_dir = Path(root_dir).expanduser()
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.instances: dict[str, Instance] = {}
        self._runtime: Path | None = None
        self._cull_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def home(self) -> Path:
        return Path(os.path.realpath(self.allowed_root))

    @property
    def runtime_dir(self) -> Path:
        """A private (0700) folder for sockets, run links and logs; short enough for a
        unix socket path."""
        if self._runtime is None or not self._runtime.exists():
            base = os.environ.get("XDG_RUNTIME_DIR")
            if not base or not os.access(base, os.W_OK):
                base = tempfile.gettempdir()
            self._runtime = Path(tempfile.mkdtemp(prefix="studiohub-tb-", dir=base))
        return self._runtime

    def url_for(self, tb_id: str) -> str:
        return f"{self.base_url}studiohub/tensorboard/{tb_id}/"

    # --- queries -------------------------------------------------------------------------

    def get(self, tb_id: str) -> Instance:
        try:
            return self.instances[tb_id]
        except KeyError:
            raise NotFound(f"no TensorBoard {tb_id}: open its folders again") from None

    def all(self) -> list[Instance]:
        return sorted(self.instances.values(), key=lambda i: i.started, reverse=True)

    def running(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.status in ("starting", "running")]

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self, folders: list[Any]) -> Instance:
        """Start a TensorBoard for ``folders``, or return the one already serving them."""
        resolved = resolve_folders(folders, self.root_dir, self.home)
        tb_id = instance_id(resolved)
        instance = self.instances.get(tb_id)
        if instance and instance.status in ("starting", "running"):
            instance.touch()
            return instance
        instance = Instance(tb_id, resolved, run_names(resolved) if len(resolved) > 1 else
                            [(resolved[0].name or "root", resolved[0])], self.url_for(tb_id))
        self.instances[tb_id] = instance
        await self._spawn(instance)
        return instance

    async def ensure_running(self, tb_id: str) -> Instance:
        """The instance, started again (same folders) if it was stopped or had failed."""
        instance = self.get(tb_id)
        if instance.status not in ("starting", "running"):
            instance = await self.open([str(f) for f in instance.folders])
        return instance

    async def wait_ready(self, instance: Instance, timeout: float | None = None) -> Instance:
        await asyncio.wait_for(instance.ready.wait(), timeout or self.startup_timeout + 5)
        return instance

    async def restart(self, tb_id: str) -> Instance:
        instance = self.get(tb_id)
        await self.stop(tb_id)
        return await self.open([str(f) for f in instance.folders])

    async def stop(self, tb_id: str) -> Instance:
        instance = self.get(tb_id)
        await self._terminate(instance)
        instance.status = "stopped"
        return instance

    async def stop_all(self) -> None:
        """Stop every TensorBoard (the server is stopping) and remove the runtime folder."""
        if self._cull_task:
            self._cull_task.cancel()
        await asyncio.gather(*(self.stop(i.id) for i in self.running()),
                             return_exceptions=True)
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)

    async def cull_idle(self) -> list[str]:
        """Stop the TensorBoards idle for more than ``idle_timeout``; their ids."""
        if self.idle_timeout <= 0:
            return []
        now = time.monotonic()
        idle = [i.id for i in self.running()
                if i.status == "running" and now - i.last_activity > self.idle_timeout]
        for tb_id in idle:
            self.log.info("Stopping TensorBoard %s: idle for more than %ss", tb_id,
                          self.idle_timeout)
            await self.stop(tb_id)
        return idle

    # --- processes -----------------------------------------------------------------------

    def command(self, instance: Instance, logdir: Path) -> list[str]:
        isolation = {"auto": "auto", "namespace": "namespace",
                     "private-network": "none"}[self.isolation]
        return [self.python, str(LAUNCHER), "--socket", str(instance.socket),
                "--isolation", isolation, "--",
                "--logdir", str(logdir),
                "--path_prefix", self.url_for(instance.id).rstrip("/"),
                "--window_title", "TensorBoard · " + ", ".join(n for n, _ in instance.runs),
                *self.extra_args]

    def _logdir(self, instance: Instance) -> Path:
        """One folder: itself. Several: a private folder of links named after them."""
        if len(instance.folders) == 1:
            return instance.folders[0]
        assert instance.directory is not None
        links = instance.directory / "runs"
        shutil.rmtree(links, ignore_errors=True)
        for name, folder in instance.runs:
            link = links / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)
        return links

    async def _spawn(self, instance: Instance) -> None:
        if len(self.running()) >= self.max_instances:
            self.instances.pop(instance.id, None)
            raise Conflict(f"{self.max_instances} TensorBoards are already running: stop one "
                           "in the TensorBoard panel first")
        if not Path(self.python).exists():
            self.instances.pop(instance.id, None)
            raise Unavailable(f"TensorBoard's environment is missing ({self.python}): ask "
                              "your operator to run `studiohub up` again, which builds it")
        instance.directory = self.runtime_dir / instance.id
        instance.directory.mkdir(mode=0o700, exist_ok=True)
        log_path = instance.directory / "tensorboard.log"
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        try:
            with log_path.open("wb") as log:
                instance.process = await asyncio.create_subprocess_exec(
                    *self.command(instance, self._logdir(instance)),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                    start_new_session=True, cwd=str(self.home), env=env)
        except OSError as e:
            self.instances.pop(instance.id, None)
            raise Unavailable(f"cannot start TensorBoard with {self.python}: {e}") from None
        instance.status, instance.error = "starting", None
        instance.started = time.time()
        instance.ready = asyncio.Event()
        instance.touch()
        self.log.info("Starting TensorBoard %s (pid %s) for %s", instance.id,
                      instance.pid, ", ".join(str(f) for f in instance.folders))
        task = asyncio.create_task(self._watch(instance, instance.process, log_path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._start_culling()

    async def _watch(self, instance: Instance, process: asyncio.subprocess.Process,
                     log_path: Path) -> None:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.startup_timeout)
        except TimeoutError:
            line = b""
            if process.returncode is None:
                instance.error = (f"TensorBoard did not start within {self.startup_timeout:g}"
                                  f" s.\n{_tail(log_path)}")
                await self._terminate(instance)
                instance.status = "failed"
        if line.startswith(b"READY") and instance.process is process:
            instance.status = "running"
            instance.isolation = line.decode().split()[1] if len(line.split()) > 1 else None
            instance.touch()
            self.log.info("TensorBoard %s ready (%s)", instance.id, instance.isolation)
            instance.ready.set()
        returncode = await process.wait()
        if instance.status in ("starting", "running"):
            instance.status = "failed"
            instance.error = instance.error or (
                f"TensorBoard exited with status {returncode}.\n{_tail(log_path)}".strip())
            self.log.warning("TensorBoard %s failed: %s", instance.id, instance.error)
        instance.ready.set()
        instance.exited.set()

    async def _terminate(self, instance: Instance) -> None:
        process = instance.process
        if process is None or process.returncode is not None:
            return
        instance.status = "stopping"
        if process.stdin:
            process.stdin.close()
        _killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            _killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # The data server is in the same group; make sure nothing of it is left.
        _killpg(process.pid, signal.SIGKILL)
        self.log.info("Stopped TensorBoard %s", instance.id)

    def _start_culling(self) -> None:
        if self._cull_task is None or self._cull_task.done():
            self._cull_task = asyncio.create_task(self._cull_loop())

    async def _cull_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1, self.cull_interval))
            try:
                await self.cull_idle()
            except LabError as e:  # pragma: no cover - stop() of a vanished instance
                self.log.warning("culling TensorBoards: %s", e.message)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _tail(path: Path, lines: int = 30) -> str:
    """The end of TensorBoard's stderr, without its advisory about the fast loader."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines()
            if line.strip() and "fast data loading" not in line
            and "--load_fast=false" not in line and "issues/4784" not in line]
    return "\n".join(kept[-lines:])
