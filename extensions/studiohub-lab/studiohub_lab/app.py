"""The server extension: configuration, routes, and the lifecycle of what it runs."""

from __future__ import annotations

import os

from jupyter_client.provisioning import KernelProvisionerFactory
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Instance, Integer, Unicode, default

from ._version import __version__
from .auth_cache import limit_auth_cache
from .handlers import make_handlers
from .switching.choices import ChoiceBook, attach
from .switching.kernels import KernelExits, forget_failed_starts
from .switching.sessions import session_handlers
from .switching.usage import UsageMeter
from .tensorboard import magic
from .tensorboard.manager import TensorBoardManager


class StudioHubLab(ExtensionApp):
    """StudioHub inside each user's Jupyter server (``c.StudioHubLab.<trait>``).

    Its HTTP API lives under ``<base_url>studiohub/api/v1/``; TensorBoards are served
    under ``<base_url>studiohub/tensorboard/<id>/``. TensorBoard settings are on
    :class:`~studiohub_lab.tensorboard.manager.TensorBoardManager`.
    """

    name = "studiohub_lab"
    version = __version__
    description = __doc__
    load_other_extensions = True

    tensorboard_magic = Bool(
        True,
        help="""Make `%load_ext tensorboard` + `%tensorboard --logdir X` in the user's
        kernels open the folder in the user's managed TensorBoard (sets
        TENSORBOARD_BINARY, TENSORBOARD_PROXY_URL, STUDIOHUB_LAB_URL and
        STUDIOHUB_KERNEL_TOKEN in the server's environment, which kernels inherit).
        Variables already set by the operator are kept.""",
    ).tag(config=True)

    place_kernels = Bool(
        True,
        help="""Start kernels through StudioHub's provisioner, so a notebook that chose an
        image and size runs on them (placed by the hub). Only replaces jupyter_client's
        default provisioner, never one the operator configured.""",
    ).tag(config=True)

    auth_cache_seconds = Integer(
        10,
        help="""Seconds this server trusts the hub's answer about a token or a login
        (JupyterHub's HubOAuth.cache_max_age, 300 by default): a token deleted on the hub
        is refused here within this time. Costs one hub API call per token or browser
        session in use per this many seconds. Only ever lowers HubOAuth.cache_max_age.""",
    ).tag(config=True)

    kernel_token = Unicode(
        help="""Secret with which the user's kernels call this extension (for
        %tensorboard). Default: random per server start. Never logged.""",
    )

    tensorboards = Instance(TensorBoardManager)

    @default("kernel_token")
    def _kernel_token_default(self) -> str:
        return magic.new_kernel_token()

    @default("tensorboards")
    def _tensorboards_default(self) -> TensorBoardManager:
        assert self.serverapp is not None
        return TensorBoardManager(parent=self, root_dir=self.serverapp.root_dir,
                                  base_url=self.serverapp.base_url)

    book = Instance(ChoiceBook, help="This server's notebook choices and placed kernels.")
    kernel_exits = Instance(KernelExits)
    usage = Instance(UsageMeter, args=())

    @default("book")
    def _book_default(self) -> ChoiceBook:
        assert self.serverapp is not None
        return ChoiceBook(root_dir=self.serverapp.root_dir)

    @default("kernel_exits")
    def _kernel_exits_default(self) -> KernelExits:
        assert self.serverapp is not None
        return KernelExits(self.serverapp.kernel_manager, book=self.book)

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        if limit_auth_cache(self.serverapp.identity_provider, self.auth_cache_seconds):
            self.log.info("Hub answers about tokens are trusted for %d s",
                          self.auth_cache_seconds)
        # The provisioners of this server's kernels find the book through their manager.
        attach(self.serverapp.kernel_manager, self.book)
        if self.place_kernels:
            factory = KernelProvisionerFactory.instance(parent=self.serverapp.kernel_manager)
            if factory.default_provisioner_name == "local-provisioner":
                factory.default_provisioner_name = "studiohub-provisioner"
        # Kernels started since the last tick get a restart callback that records why
        # they died (memory limit or not); one cheap list per second.
        self._kernel_watch = PeriodicCallback(self.kernel_exits.watch_new_kernels, 1000)
        self._kernel_watch.start()
        self.log.info("StudioHub server extension %s: TensorBoard from %s", __version__,
                      self.tensorboards.python)
        if self.tensorboard_magic:
            self._set_kernel_environment()

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_handlers(self))
        if self.place_kernels:
            self.handlers.extend(session_handlers())

    def _set_kernel_environment(self) -> None:
        assert self.serverapp is not None
        if self.serverapp.sock:
            self.log.info("Server on a unix socket: %tensorboard integration is off")
            return
        shim = magic.write_shim(self.tensorboards.runtime_dir)
        env = magic.kernel_environment(self.serverapp.base_url,
                                       self.serverapp.connection_url, self.kernel_token, shim)
        for key, value in env.items():
            if key in ("TENSORBOARD_BINARY", "TENSORBOARD_PROXY_URL"):
                os.environ.setdefault(key, value)
            else:
                os.environ[key] = value

    async def stop_extension(self) -> None:
        """The server is stopping: stop every TensorBoard it started, and forget the
        kernels that never started, so that the server's own kernel shutdown (next)
        does not fail on them and leave it running."""
        assert self.serverapp is not None
        forgotten = forget_failed_starts(self.serverapp.kernel_manager)
        if forgotten:
            self.log.info("Forgot %d kernel(s) whose start had failed", len(forgotten))
        await self.tensorboards.stop_all()
