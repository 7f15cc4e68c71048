"""``StudioSpawner``: a local JupyterLab per user, inside the catalog size they chose.

Lifecycle (``LocalProcessSpawner`` plus what StudioHub needs):

- ``user_options`` (``{image, size}`` from the spawn form or the REST API) are checked
  against the catalog for the user's domains (their JupyterHub groups) by
  :meth:`Catalog.choose`; anything else is an HTTP 400 naming the allowed values.
- ``start`` creates the unix account (system mode), takes GPUs from the hub-wide
  allocator, creates the server's cgroup with the size's limits, starts
  ``jupyterhub-singleuser`` as the user inside it, and returns only once the server's
  port accepts connections (so the hub's back-off never waits on a server already up).
- ``get_state`` keeps the pid (and its start time), the cgroup and the GPUs, so after a
  hub restart the running server is found again and its GPUs stay reserved.
- ``stop`` stops the server, removes the cgroup (killing leftovers, e.g. kernels) and
  frees the GPUs.

The command, arguments, environment and the options form are pure ``make_*`` functions
below, tested against literal values.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from subprocess import STDOUT, Popen
from typing import Any

import psutil
from jupyterhub.spawner import LocalProcessSpawner, SpawnException, set_user_setuid
from jupyterhub.utils import random_port
from traitlets import Bool, Float, Integer, List, Unicode, default

from .. import cgroups, contract, envs, gpus, labdefaults, placement, users
from ..catalog import Choice, Size
from ..catalog_choice import CatalogChoice
from ..paths import paths, system_mode
from ..slugs import DEFAULT_UNIX_PREFIX, cgroup_name, unix_name
from . import serverlog
from .form import form_to_options, make_options_form

# How the server starts, measured with ``python -X importtime`` (docs/limits.md):
# - jsonschema builds an RFC 3987 grammar at import time when ``rfc3987_syntax`` is
#   installed (0.7 s here), only to check the ``iri`` string format, which no Jupyter
#   server schema uses: hiding the module halves the server's start-up time;
# - ~10,000 objects are created while importing: no cyclic GC until the server's big
#   imports are done, then ``gc.freeze()`` keeps those objects out of later collections
#   (about 0.1 s of CPU per start; the server is already up when the hub sees it).
FAST_SINGLEUSER = """\
import gc, sys
gc.disable()
sys.modules["rfc3987_syntax"] = None
from jupyterhub.singleuser import main
try:
    import jupyterlab.labapp
except ImportError:
    pass
gc.freeze()
gc.enable()
sys.exit(main())
"""
#: Tries on another random port when the one chosen was taken before the server bound it.
PORT_TRIES = 3
#: What jupyter_server logs before it exits on a taken port (the hub sets port_retries=0).
PORT_TAKEN = "port {port} is not available"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- pure builders ---------------------------------------------------------------------


def make_cmd(python: str, fast: bool = True) -> list[str]:
    """The single-user server command, run with the hub environment's own Python."""
    if fast:
        return [python, "-c", FAST_SINGLEUSER]
    return [python, "-m", "jupyterhub.singleuser"]


def make_cull_args(idle_timeout: int, interval: int, busy: bool, connected: bool) -> list[str]:
    """jupyter_server's own idle-kernel culling; nothing when ``idle_timeout`` is 0."""
    if idle_timeout <= 0:
        return []
    return [f"--MappingKernelManager.cull_idle_timeout={idle_timeout}",
            f"--MappingKernelManager.cull_interval={interval}",
            f"--MappingKernelManager.cull_busy={busy}",
            f"--MappingKernelManager.cull_connected={connected}"]


def make_args(default_kernel: str | None, cull: Sequence[str] = (),
              kernels: Sequence[str] = ()) -> list[str]:
    """Server arguments: the chosen image's kernel as default (if registered), culling,
    and only the kernels of the images the user's domains allow (one Launcher card each,
    once built: the names of images not built yet are allowed too, so that a build
    while the server runs shows there without a restart)."""
    args = list(cull)
    if default_kernel:
        args.append(f"--MappingKernelManager.default_kernel_name={default_kernel}")
    args += [f"--KernelSpecManager.allowed_kernelspecs={name}" for name in kernels]
    return args


def make_env(choice: Choice, *, gpu_ids: Sequence[str], caps: cgroups.Capabilities,
             cgroup: str, jupyter_data: str, hub_bin: str, path: str = "",
             jupyter_path: str = "", kernel_sockets: str = "", tmpdir: str = "",
             jupyter_news: bool = False) -> dict[str, str]:
    """Variables StudioHub adds for a server: GPUs, kernels' path, the operator's JupyterLab
    defaults, the size for the Lab UI (the contract's ``STUDIOHUB_*``), and its account's
    private ``TMPDIR``."""
    size, image = choice.size, choice.image
    enforced = [n for n in ("memory", "cpu", "pids") if getattr(caps, n)] if cgroup else []
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "JUPYTER_PATH": os.pathsep.join(p for p in (jupyter_data, jupyter_path) if p),
        "JUPYTER_CONFIG_PATH": str(labdefaults.config_dir(jupyter_news)),
        "PATH": os.pathsep.join((hub_bin, path or SYSTEM_PATH)),
    }
    # The hub places this server's kernels per notebook (the Lab extension asks it).
    env.update(contract.make_server_env(
        image_id=image.id, image_label=image.label, size_id=size.id,
        size_label=size.display_name, cpus=size.cpus, memory=size.memory, gpus=size.gpus,
        limits=",".join(enforced), limits_summary=caps.summary,
        switching=contract.SWITCH_NOTEBOOK, cgroup=cgroup, kernel_sockets=kernel_sockets))
    if tmpdir:
        env["TMPDIR"] = tmpdir
    return env


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells a reused pid from our server."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or one it started) listens on TCP ``port``.

    That the port answers is not enough: another local account's process may listen on
    it (a chosen port is free when chosen, not necessarily when the server binds it),
    and the hub would route the user's requests, tokens included, to that process.
    """
    try:
        server = psutil.Process(pid)
        sockets = [s for p in (server, *server.children(recursive=True))
                   for s in p.net_connections("inet")]
    except psutil.AccessDenied:  # the hub runs as root or as the server's account
        return True
    except psutil.Error:  # gone
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr and s.laddr.port == port
               for s in sockets)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@functools.lru_cache(maxsize=8)
def detect_caps(root: str) -> cgroups.Capabilities:
    """Detected once per hub process: cgroup mounts do not change under a running hub."""
    return cgroups.detect(root=root)


def _options_form(spawner: StudioSpawner) -> str:
    return spawner.render_options_form()


def _apply_options(spawner: StudioSpawner, user_options: dict[str, Any]) -> None:
    spawner.apply_choice(user_options)


# --- the spawner -----------------------------------------------------------------------


class StudioSpawner(CatalogChoice, LocalProcessSpawner):
    """Local JupyterLab servers as the users' own unix accounts, inside catalog sizes."""

    catalog_path = Unicode(
        "",
        help="""Operator catalog file merged into the built-in one (images, sizes, domains).

        Empty: the built-in catalog only. Reloaded when the file changes.
        Set by StudioHub's configurer from ``catalog_path`` in config.yaml.""",
    ).tag(config=True)

    cgroup_root = Unicode(
        "studiohub",
        help="""Parent cgroup of all user servers, under the root of each hierarchy.

        Each server gets ``<root>/jupyter-<user>`` (v2: /sys/fs/cgroup/studiohub/...; v1:
        /sys/fs/cgroup/memory/studiohub/... and the same under cpu and pids).""",
    ).tag(config=True)

    use_cgroups = Bool(
        True,
        help="""Put each server in a cgroup with its size's memory, CPU and process limits.

        Only where the host allows (see ``studiohub doctor``); set False to run servers
        without limits even where they could be enforced.""",
    ).tag(config=True)

    pids_limit = Integer(
        cgroups.DEFAULT_PIDS_MAX,
        help="""Most processes and threads one server (with its kernels) may run; 0 = no limit.

        Enforced by the pids cgroup controller; stops fork bombs from taking the host.""",
    ).tag(config=True)

    unix_user_prefix = Unicode(
        DEFAULT_UNIX_PREFIX,
        help="""Prefix of the unix accounts created for hub users (system mode only).

        Hub user ``alice`` runs as ``jupyter-alice``; see studiohub.slugs for the rules.""",
    ).tag(config=True)

    gpu_ids = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="""GPUs the hub hands out, by UUID or index. None: discovered with nvidia-smi.

        Each GPU goes to at most one server at a time, as CUDA_VISIBLE_DEVICES.""",
    ).tag(config=True)

    fast_start = Bool(
        True,
        help="""Start jupyterhub-singleuser without building jsonschema's RFC 3987 grammar.

        Saves about a second per spawn; False runs ``python -m jupyterhub.singleuser``.""",
    ).tag(config=True)

    ready_poll_interval = Float(
        0.025,
        help="""Seconds between checks that a starting server's port accepts connections.""",
    ).tag(config=True)

    server_log_dir = Unicode(
        help="""Directory of each server's log (``<cgroup name>.log``), readable by the hub only.

        Default: ``<prefix>/state/servers``. The last lines are shown when a start fails.""",
    ).tag(config=True)

    kernel_cull_idle_timeout = Integer(
        0,
        help="""Shut down kernels idle longer than this many seconds (0: never).

        Passed to the server as --MappingKernelManager.cull_idle_timeout.""",
    ).tag(config=True)

    kernel_cull_interval = Integer(
        120, help="""Seconds between idle-kernel checks (MappingKernelManager.cull_interval)."""
    ).tag(config=True)

    kernel_cull_busy = Bool(
        False, help="""Cull kernels that are busy running code (MappingKernelManager.cull_busy)."""
    ).tag(config=True)

    kernel_cull_connected = Bool(
        False,
        help="""Cull idle kernels that still have a browser connected (cull_connected).""",
    ).tag(config=True)

    jupyter_news = Bool(
        False,
        help="""Whether users' JupyterLab fetches Jupyter news and checks for updates
        (``lab.jupyter_news`` in config.yaml). Either way no user is asked: the server's
        ``JUPYTER_CONFIG_PATH`` carries the operator's choice (``studiohub.labdefaults``).""",
    ).tag(config=True)

    placements_file = Unicode(
        help="""Where the hub keeps the kernels placed on sizes of their own (JSON); set by
        StudioHub's configuration. Their GPUs and cgroup leaves go with the server.""",
    ).tag(config=True)

    max_placed_kernels = Integer(
        16,
        help="""Most kernels one user may run on sizes of their own at once (each holds its
        size's memory, and GPUs, while it runs). One more is refused with a message.""",
    ).tag(config=True)

    max_placed_memory = Integer(
        0,
        help="""Most memory (bytes) one user's kernels on sizes of their own may hold at once.

        0 (default): twice the largest size the user's domains allow, but at most half of
        this machine's memory (times ``memory_overcommit``), and never less than that
        largest size. So no user can reserve the machine for kernels of their own.""",
    ).tag(config=True)

    placement_pending_timeout = Float(
        10.0,
        help="""Seconds a placed kernel may take to start in its cgroup leaf (or, without
        limits, to run as the user) before the hub gives its size back. A placement whose
        kernel never starts holds nothing longer than this.""",
    ).tag(config=True)

    log_max_bytes = Integer(
        serverlog.MAX_BYTES,
        help="""Size (bytes) at which a server's log is rotated, while it runs: the log and
        its one older copy (``.log.1``) hold at most twice this. Default 10 MiB.""",
    ).tag(config=True)

    memory_overcommit = Float(
        1.0,
        help="""How many times over this machine's memory the sizes of running servers and
        placed kernels may add up to. 1.0: a kernel is placed only where its size's memory
        is free; more lets more users share a machine whose users rarely fill their sizes.""",
    ).tag(config=True)

    socket_dir = ""  # the account's private directory for kernel sockets
    tmp_dir = ""  # the account's private TMPDIR
    _log_writer: Popen[bytes] | None = None  # drains the server's output into its log
    choice: Choice | None = None  # the validated {image, size} of the current start
    cgroup = Unicode(help="Name of this server's cgroup; empty when none was made.")
    pid_started = Integer(0, help="Start time of ``pid`` in clock ticks (pid reuse check).")
    held_gpus = List(Unicode(), help="IDs of the GPUs this server holds.")

    @default("server_log_dir")
    def _default_log_dir(self) -> str:
        return str(paths().state / "servers")

    @default("options_form")
    def _default_options_form(self) -> Callable[[StudioSpawner], str]:
        return _options_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Callable[[StudioSpawner, dict[str, Any]], None]:
        return _apply_options

    # --- choices -------------------------------------------------------------------------

    @property
    def caps(self) -> cgroups.Capabilities:
        if not self.use_cgroups:
            return cgroups.Capabilities("none", reason="cgroups are turned off "
                                                       "(StudioSpawner.use_cgroups)")
        return detect_caps(self.cgroup_root)

    @property
    def allocator(self) -> gpus.GpuAllocator:
        ids = self.gpu_ids
        return gpus.shared_allocator(None if ids is None else gpus.gpus_from_ids(ids))

    @property
    def gpu_holder(self) -> str:
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    def render_options_form(self) -> str:
        saved = dict(getattr(self.orm_spawner, "user_options", None) or {})
        return make_options_form(self.catalog, self.groups, saved, self.caps,
                                 len(self.allocator.gpus), self.image_built, self.too_big)

    def too_big(self, size: Size) -> str | None:
        """Why this machine can never hold ``size`` (its CPUs or memory), or None."""
        host = placement.Host.detect(len(self.allocator.gpus))
        return placement.host_reason(size, host, self.memory_overcommit)

    def choice_note(self, kind: str, item: str) -> str | None:
        """Images not built here and sizes this machine can never hold, as refusals'
        lists of allowed values mark them (choosing one would be a 409)."""
        if kind == "image":
            return None if self.image_built(item) else "not built here"
        size = self.catalog.sizes.get(item)
        return "too big for this machine" if size and self.too_big(size) else None

    def image_built(self, image_id: str) -> bool:
        """Whether the image's environment is built here (its kernel is registered)."""
        return envs.kernel_registered(image_id)

    def options_from_form(self, formdata: Mapping[str, Any]) -> dict[str, str]:
        """Form fields to ``{image, size}``, refused here (HTTP 400) when not allowed."""
        return self.choose(form_to_options(formdata)).as_options()

    def check_choice(self, user_options: Mapping[str, Any]) -> Choice:
        """The choice of ``user_options`` if a server can start on it here, else a
        SpawnException (400 not allowed, 409 too big or not built).

        The server API asks it before JupyterHub starts anything
        (``serverapi.StudioServerAPIHandler``): JupyterHub logs a refusal raised in its
        ``apply_user_options`` hook as an error with a traceback.
        """
        choice = self.choose(user_options)
        too_big = self.too_big(choice.size)
        if too_big:
            raise SpawnException(f"{choice.size.display_name} cannot run here: {too_big}; "
                                 "choose a smaller size", reason="size", status_code=409)
        if not self.image_built(choice.image.id):
            raise SpawnException(
                f"{choice.image.label} is not built on this machine: choose another "
                f"image, or ask an administrator to run `studiohub env build "
                f"{choice.image.id}`", reason="image", status_code=409)
        return choice

    def apply_choice(self, user_options: Mapping[str, Any]) -> Choice:
        """Validate user_options and size the server (the default ``apply_user_options``).

        Options the hub saved for next time are dropped when refused, so a bad REST
        request does not become this user's default.
        """
        try:
            choice = self.check_choice(user_options)
        except SpawnException:
            if self.orm_spawner is not None:
                self.orm_spawner.user_options = {}
            raise
        self.choice = choice
        self.mem_limit, self.cpu_limit = choice.size.memory, choice.size.cpus
        return choice

    # --- start ---------------------------------------------------------------------------

    @property
    def account(self) -> pwd.struct_passwd:
        """The unix account the server runs as: the user's own, or the hub's (personal)."""
        if not system_mode():
            return users.current_user()
        return pwd.getpwnam(unix_name(self.user.name, self.unix_user_prefix))

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["USER"], env["HOME"] = self.account.pw_name, self.account.pw_dir
        env["SHELL"] = self.account.pw_shell or "/bin/bash"
        return env

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        assert self.choice is not None
        kernels = paths().kernels
        env.update(make_env(self.choice, gpu_ids=self.held_gpus, caps=self.caps,
                            cgroup=self.cgroup, jupyter_data=str(kernels.parent),
                            hub_bin=str(Path(sys.executable).parent),
                            path="" if system_mode() else env.get("PATH", ""),
                            jupyter_path=os.environ.get("JUPYTER_PATH", ""),
                            # Kernels listen on unix sockets there, not on TCP ports
                            # others could reach.
                            kernel_sockets=self.socket_dir, tmpdir=self.tmp_dir,
                            jupyter_news=self.jupyter_news))
        # jupyter-resource-usage would measure every kernel of the server, placed ones
        # (with limits of their own) included, against the server's size and show a false
        # "over the limit": its status bar shows the total, the toolbar each kernel's limit.
        env.pop("MEM_LIMIT", None)
        return env

    def get_args(self) -> list[str]:
        assert self.choice is not None
        image = self.choice.image.id
        # Every image the domains allow, built or not: one built while this server runs
        # then shows in it (jupyter_server reads kernel specs from disk on each request;
        # an unbuilt image has none, so it shows nowhere until it is built).
        kernels = [envs.kernel_name(i.id) for i in self.catalog.allowed_images(self.groups)]
        cull = make_cull_args(self.kernel_cull_idle_timeout, self.kernel_cull_interval,
                              self.kernel_cull_busy, self.kernel_cull_connected)
        default = envs.kernel_name(image) if envs.kernel_registered(image) else None
        return make_args(default, cull, kernels) + list(super().get_args())

    async def start(self) -> tuple[str, int]:
        """Start the server inside its size; return once its port accepts connections."""
        choice = self.apply_choice(self.user_options)
        if system_mode():
            await asyncio.to_thread(users.ensure_user, self.user.name, self.unix_user_prefix)
            self.socket_dir = await asyncio.to_thread(users.ensure_socket_dir, self.account)
        else:  # a personal hub: other local accounts must not reach its kernels either
            self.socket_dir = await asyncio.to_thread(users.ensure_private_dir,
                                                      users.personal_socket_dir())
        # Temporary files (TensorBoard's .tensorboard-info among them) never in /tmp.
        self.tmp_dir = await asyncio.to_thread(users.ensure_tmp_dir, self.account)
        self._take_gpus(choice.size.gpus)
        try:
            await asyncio.to_thread(self._make_cgroup, choice)
            await self._run_server()
        except BaseException:
            await self._kill_and_release()
            raise
        return (self.ip or "127.0.0.1", self.port)

    async def _run_server(self) -> None:
        """Start the server process and wait until it listens.

        A port StudioHub chose (``random_port``, like JupyterHub's) is free when chosen
        but can be taken before the server binds it; the server then exits, and another
        port is tried. A port the operator set is not changed.
        """
        chosen = not getattr(self, "port", 0)  # getattr: mypy cannot type the hub's trait
        for attempt in range(1, PORT_TRIES + 1):
            if chosen:
                self.port = random_port()
            self._popen()
            try:
                await self._wait_ready()
                return
            except SpawnException as e:
                if not (chosen and e.reason == "port_taken" and attempt < PORT_TRIES):
                    raise
                self.log.warning("Port %s was taken before the server of %s could listen "
                                 "on it; trying another", self.port, self.user.name)

    def _take_gpus(self, count: int) -> None:
        try:
            self.held_gpus = [g.id for g in self.allocator.allocate(self.gpu_holder, count)]
        except gpus.NoGpuFree as e:
            raise SpawnException(str(e), reason="gpu", status_code=409) from None

    def _make_cgroup(self, choice: Choice) -> None:
        caps = self.caps
        if not caps.enforced:
            self.log.warning("Server of %s runs without limits: %s", self.user.name,
                             caps.summary)
            return
        name = cgroup_name(self.user.name, self.name)
        tree = cgroups.Cgroups(caps, self.cgroup_root)
        settings = cgroups.make_settings(caps, choice.size.cpus, choice.size.memory,
                                         self.pids_limit)
        tree.ensure_cgroup(name, settings)
        self.cgroup = name
        if system_mode():
            tree.delegate(name, self.account.pw_uid, self.account.pw_gid)

    @property
    def log_path(self) -> Path:
        return Path(self.server_log_dir) / f"{cgroup_name(self.user.name, self.name)}.log"

    def _popen(self) -> None:
        cmd = make_cmd(sys.executable, self.fast_start) + self.get_args()
        env = self.get_env()
        self.log.info("Spawning %s for %s in cgroup %s", " ".join(cmd[:2]), self.user.name,
                      self.cgroup or "(none)")
        with serverlog.start_writer(self.log_path, self.log_max_bytes) as (log, writer):
            self._log_writer = writer
            self.proc = Popen(cmd, env=env, cwd=self.account.pw_dir, stdout=log, stderr=STDOUT,
                              preexec_fn=self._preexec(), start_new_session=True,
                              **self.popen_kwargs)
        self.pid = self.proc.pid
        self.pid_started = process_start_ticks(self.pid) or 0

    def _preexec(self) -> Callable[[], None]:
        """Join the cgroup (as root, before exec), then become the user.

        Joining in the child rather than attaching after ``Popen`` means no instruction of
        the server, and no process it forks, ever runs outside its limits.
        """
        steps = []
        if self.cgroup:
            procs = cgroups.Cgroups(self.caps, self.cgroup_root).procs_files(self.cgroup)
            steps.append(cgroups.make_join(procs))
        if system_mode():
            steps.append(set_user_setuid(self.account.pw_name))

        def preexec() -> None:
            for step in steps:
                step()

        return preexec

    async def _wait_ready(self) -> None:
        """Poll the port every ``ready_poll_interval`` until the server listens on it, or
        the process dies."""
        ip = self.ip if self.ip not in ("", "0.0.0.0") else "127.0.0.1"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._exited(self.proc.returncode)
            try:
                _, writer = await asyncio.open_connection(ip, self.port)
            except OSError:
                await asyncio.sleep(self.ready_poll_interval)
                continue
            writer.close()
            if self.proc is None or listens_on(self.proc.pid, self.port):
                return
            # Another process holds the port: the server cannot bind it and exits, and
            # that exit (port_taken) sends the spawn to another port.
            await asyncio.sleep(self.ready_poll_interval)

    def _exited(self, status: int) -> SpawnException:
        serverlog.wait_written(self._log_writer)
        tail = log_tail(self.log_path)
        last = tail.splitlines()[-1] if tail else "no output"
        taken = PORT_TAKEN.format(port=self.port) in tail
        return SpawnException(
            f"Your server exited while starting (status {status}): {last}",
            reason="port_taken" if taken else "exited", status_code=500,
            log_message=f"server of {self.user.name} exited with {status}; log "
                        f"{self.log_path}:\n{tail}")

    # --- state, poll, stop -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """pid (LocalProcessSpawner) plus its start time, the cgroup and the GPUs held."""
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state.update(pid_started=self.pid_started, cgroup=self.cgroup,
                         gpus=list(self.held_gpus))
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Find a running server again after a hub restart; re-reserve its GPUs.

        The GPUs of the server's placed kernels are reserved too (the placement book
        outlives the hub), so no other size can be handed one of them meanwhile.
        """
        super().load_state(state)
        self.pid_started = int(state.get("pid_started", 0))
        self.cgroup = state.get("cgroup", "")
        if state.get("gpus"):
            self.held_gpus = [g.id for g in self._reserve(self.gpu_holder, state["gpus"])]
        if self.pid and self.placements_file and not self.name:
            for placed in placement.book(self.placements_file).of_user(self.user.name):
                self._reserve(placed.gpu_holder, placed.gpus)

    def _reserve(self, holder: str, ids: list[str] | tuple[str, ...]) -> list[gpus.Gpu]:
        reserved, problems = self.allocator.reserve(holder, ids)
        for problem in problems:
            self.log.error("Restoring GPUs of %s: %s", holder, problem)
        return reserved

    def clear_state(self) -> None:
        """Forget the server, releasing its cgroup (killing leftovers) and GPUs."""
        super().clear_state()
        if self.cgroup:
            cgroups.Cgroups(self.caps, self.cgroup_root).remove(self.cgroup)
        if self.held_gpus or self.allocator.held_by(self.gpu_holder):
            self.allocator.free(self.gpu_holder)
        if self.placements_file and not self.name:
            # Placed kernels lived in this server's cgroup, removed above.
            for placed in placement.book(self.placements_file).remove_user(self.user.name):
                self.allocator.free(placed.gpu_holder)
        self.cgroup, self.held_gpus, self.pid_started = "", [], 0

    def _pid_reused(self) -> bool:
        started = process_start_ticks(self.pid)
        return bool(self.pid_started) and started is not None and started != self.pid_started

    async def poll(self) -> int | None:
        """None while the server runs; exit status (0 if unknown) once it is gone.

        After a hub restart only the pid is known: a pid now used by another process
        (different start time) counts as exited, and is never signalled.
        """
        if self.proc is None and self.pid and self._pid_reused():
            self.log.warning("pid %s of %s now belongs to another process", self.pid,
                             self.gpu_holder)
            self.pid = 0
            await asyncio.to_thread(self.clear_state)
            return 0
        status: int | None = await super().poll()
        return status

    async def stop(self, now: bool = False) -> None:
        """Stop the server (SIGTERM, then SIGKILL), then what is left in its cgroup.

        No SIGINT first, as LocalProcessSpawner sends: off a terminal jupyter_server has
        no handler for it, so it becomes a KeyboardInterrupt wherever the server is. One
        raised inside a request handler is logged and swallowed, and the server ran on
        until ``interrupt_timeout`` (30 s). SIGTERM is what jupyter_server handles: it
        shuts its kernels down and exits.
        """
        if self.pid:
            await super().stop(now=True)
            if self.proc is not None and self.proc.returncode == -signal.SIGKILL:
                self.log.warning("The server of %s did not shut down within %s s of SIGTERM "
                                 "(stop_timeout); it was killed", self.user.name,
                                 self.term_timeout)
        await self._kill_and_release()

    async def _kill_and_release(self) -> None:
        if self.pid and not self._pid_reused():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.proc is not None:
                await asyncio.to_thread(self.proc.wait)
        await asyncio.to_thread(self.clear_state)


__all__ = ["StudioSpawner", "form_to_options", "make_args", "make_cmd", "make_cull_args",
           "make_env", "make_options_form"]
