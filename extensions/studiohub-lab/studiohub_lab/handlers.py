"""HTTP handlers: one route table, thin handlers over plain modules.

Every handler is ``@tornado.web.authenticated``; errors are JSON ``{status, message}``
(see :class:`LabHandlerMixin`), never a traceback, and user input never yields a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.auth import User
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from . import hub
from ._version import __version__
from .choices import BOOK, KernelChoice, check_choice, kernel_report
from .errors import LabError
from .info import make_info
from .tensorboard import proxy
from .tensorboard.magic import TOKEN_HEADER

if TYPE_CHECKING:
    from .app import StudioHubLab
    from .tensorboard.manager import TensorBoardManager

API = "studiohub/api/v1"
TB_ID = r"(?P<tb_id>[0-9]{1,10})"
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def make_handlers(app: StudioHubLab) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The route table (paths are relative to the server's ``base_url``)."""
    from . import sharing  # its handlers build on LabAPIHandler, defined below

    kw = {"lab": app}
    return [
        (rf"{API}/info", InfoHandler, kw),
        (rf"{API}/kernels/(?P<kernel_id>[0-9a-f-]{{36}})", KernelHandler, kw),
        (rf"{API}/kernel-options", KernelOptionsHandler, kw),
        (rf"{API}/kernel-choices", KernelChoicesHandler, kw),
        (rf"{API}/server-restart", ServerRestartHandler, kw),
        (rf"{API}/tensorboards", TensorBoardsHandler, kw),
        (rf"{API}/tensorboards/{TB_ID}", TensorBoardHandler, kw),
        (rf"{API}/tensorboards/{TB_ID}/restart", TensorBoardRestartHandler, kw),
        (rf"studiohub/tensorboard/{TB_ID}(?P<path>/.*)?", TensorBoardProxyHandler, kw),
        # Notebook sharing: forwarded to the hub's sharing service (see sharing.py).
        (rf"{API}/sharing/domains", sharing.DomainsHandler, kw),
        (rf"{API}/sharing/shares", sharing.SharesHandler, kw),
        (rf"{API}/sharing/shares/{sharing.SHARE_ID}", sharing.ShareHandler, kw),
        (rf"{API}/sharing/shares/{sharing.SHARE_ID}/versions", sharing.VersionsHandler, kw),
        (rf"{API}/sharing/shares/{sharing.SHARE_ID}/copy", sharing.CopyHandler, kw),
        (rf"{API}/sharing/recent", sharing.RecentHandler, kw),
    ]


class LabHandlerMixin:
    """Errors as JSON ``{status, message}``: :class:`LabError` keeps its status and
    message, ``HTTPError`` its message, anything else is a 500 that names no internals."""

    lab: StudioHubLab

    def initialize(self, lab: StudioHubLab) -> None:
        self.lab = lab

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler = cast(JupyterHandler, self)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabError):
            status_code, message = exc.status, exc.message
            handler.set_status(status_code)
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "internal error in the StudioHub server extension: see the server log"
        else:
            message = HTTPStatus(status_code).phrase
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"status": status_code, "message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, LabError):
            cast(JupyterHandler, self).log.warning("%s %s: %s", cast(JupyterHandler, self)
                                                   .request.method, value.status, value.message)
        else:
            super().log_exception(typ, value, tb)  # type: ignore[misc]


class LabAPIHandler(LabHandlerMixin, APIHandler):
    def get_json_body(self) -> dict[str, Any]:
        """The body as a JSON object, parsed once; 400 naming the problem otherwise."""
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as e:
            raise LabError(f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise LabError("request body must be a JSON object")
        return body

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))


class InfoHandler(LabAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(make_info(os.environ, __version__))


class KernelHandler(LabAPIHandler):
    """One kernel: where it runs, its live usage, why it last died.

    ``{id, choice: {image, size, image_label, size_label, limits, placed},
    usage: {cpu_percent, memory, memory_limit, gpu_memory}, last_exit, fallback}``
    """

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        report = self.lab.kernel_exits.report(kernel_id)
        if report is None:
            raise LabError(f"no kernel {kernel_id} on this server", 404)
        assert self.lab.serverapp is not None
        kernel = self.lab.serverapp.kernel_manager.get_kernel(kernel_id)
        report.update(kernel_report(kernel_id, getattr(kernel, "kernel_name", ""),
                                    os.environ))
        provisioner = getattr(kernel, "provisioner", None)
        limits = report["choice"]["limits"]
        # A walk of the process tree (and nvidia-smi on GPU hosts), every 2 s per open
        # notebook: off the server's event loop.
        visible = BOOK.placed[kernel_id].get("cuda_visible_devices", "") \
            if report["choice"]["placed"] else os.environ.get("CUDA_VISIBLE_DEVICES", "")
        report["usage"] = await asyncio.to_thread(
            self.lab.usage.measure, kernel_id, getattr(provisioner, "pid", None),
            limits.get("cpus"), limits.get("memory"), visible)
        self.write_json(report)


class KernelOptionsHandler(LabAPIHandler):
    """The hub's images and sizes for this user, what is unavailable and why."""

    @web.authenticated
    async def get(self) -> None:
        replacing = self.get_query_argument("replacing", "")
        query = f"?replacing={replacing}" if KERNEL_ID.match(replacing) else ""
        self.write_json(await hub.call("GET", f"kernel-options{query}"))


class KernelChoicesHandler(LabAPIHandler):
    """Record a notebook's new image and size before the front end restarts its kernel.

    ``{path, image, size, replaces?}`` → ``{kernel_name, image, size, ...}``; 400 for a
    choice the catalog does not allow this user, 409 with the reason when this machine
    cannot run it now. Nothing changes until the kernel restarts.
    """

    @web.authenticated
    async def post(self) -> None:
        body = self.get_json_body()
        unknown = sorted(set(body) - {"path", "image", "size", "replaces"})
        if unknown:
            raise LabError(f"unknown field(s) {', '.join(unknown)}: send path, image, size")
        path, image, size = (body.get(k) for k in ("path", "image", "size"))
        replaces = str(body.get("replaces") or "")
        if not isinstance(path, str) or not path.endswith(".ipynb"):
            raise LabError("path: the notebook's path (ending in .ipynb) is required")
        query = f"?replacing={replaces}" if KERNEL_ID.match(replaces) else ""
        options = await hub.call("GET", f"kernel-options{query}")
        verdict = check_choice(options, image, size)
        BOOK.record(path, KernelChoice(verdict["image"], verdict["size"],
                                       replaces if KERNEL_ID.match(replaces) else ""))
        self.write_json(verdict)


class ServerRestartHandler(LabAPIHandler):
    """Restart this whole server on another image and size (every kernel stops).

    The hub checks the choice first, and the browser gets its answer (202, or why not)
    before the hub is asked to restart: the restart stops this very server, which could
    then no longer answer.
    """

    @web.authenticated
    async def post(self) -> None:
        body = self.get_json_body()
        choice = {"image": body.get("image"), "size": body.get("size")}
        accepted = await hub.call("POST", "server-restart", {**choice, "check": True})
        self.set_status(202)
        await self.finish(json.dumps(accepted))
        try:
            await hub.call("POST", "server-restart", choice)
        except LabError as e:  # the room went since the check: the server stays as it is
            self.log.warning("StudioHub: the hub refused the server restart: %s", e)


class KernelTokenMixin:
    """Also accept the per-server secret that ``%tensorboard`` sends from the user's kernels
    (see :mod:`.tensorboard.magic`); everything else goes through the server's own auth."""

    lab: StudioHubLab

    async def prepare(self) -> None:
        handler = cast(JupyterHandler, self)
        sent = handler.request.headers.get(TOKEN_HEADER)
        if sent is None:
            await super().prepare()  # type: ignore[misc]
            return
        if not hmac.compare_digest(sent.encode(), self.lab.kernel_token.encode()):
            raise web.HTTPError(403, "invalid StudioHub kernel token")
        user = User(username=os.environ.get("JUPYTERHUB_USER") or "kernel")
        handler.current_user = handler._jupyter_current_user = user

    def check_xsrf_cookie(self) -> None:
        if cast(JupyterHandler, self).request.headers.get(TOKEN_HEADER) is None:
            super().check_xsrf_cookie()  # type: ignore[misc]


class TensorBoardAPIHandler(KernelTokenMixin, LabAPIHandler):  # type: ignore[misc]
    @property
    def manager(self) -> TensorBoardManager:
        return self.lab.tensorboards

    def model(self, instance: Any) -> dict[str, Any]:
        return cast(dict[str, Any], instance.model(self.manager.home))

    async def wait(self, instance: Any) -> Any:
        """``?wait=ready``: answer once started (or failed); ``?wait=stopped``: once it
        stopped (used by ``%tensorboard`` to live as long as its TensorBoard)."""
        until = self.get_query_argument("wait", None)
        if until == "ready":
            with contextlib.suppress(TimeoutError):
                await self.manager.wait_ready(instance)
        elif until == "stopped":
            await instance.exited.wait()
        elif until is not None:
            raise LabError(f"wait={until!r}: use wait=ready or wait=stopped")
        return instance


class TensorBoardsHandler(TensorBoardAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json({"tensorboards": [self.model(i) for i in self.manager.all()]})

    @web.authenticated
    async def post(self) -> None:
        body = self.get_json_body()
        unknown = sorted(set(body) - {"folders"})
        if unknown:
            raise LabError(f"unknown field(s) {', '.join(unknown)}: send {{\"folders\": [...]}}")
        if "folders" not in body:
            raise LabError('folders: required, e.g. {"folders": ["runs/mnist"]}')
        instance = await self.wait(await self.manager.open(body["folders"]))
        self.write_json(self.model(instance), 200 if instance.status == "running" else 202)


class TensorBoardHandler(TensorBoardAPIHandler):
    @web.authenticated
    async def get(self, tb_id: str) -> None:
        instance = await self.wait(self.manager.get(tb_id))
        self.write_json(self.model(instance))

    @web.authenticated
    async def delete(self, tb_id: str) -> None:
        self.write_json(self.model(await self.manager.stop(tb_id)))


class TensorBoardRestartHandler(TensorBoardAPIHandler):
    @web.authenticated
    async def post(self, tb_id: str) -> None:
        instance = await self.wait(await self.manager.restart(tb_id))
        self.write_json(self.model(instance), 200 if instance.status == "running" else 202)


class TensorBoardProxyHandler(LabHandlerMixin, JupyterHandler):
    """``<base_url>studiohub/tensorboard/<id>/…``: the board itself, through this server.

    A stopped TensorBoard is started again on the first request (the page waits for it);
    TensorBoard's HTTP API is read-only, so its POSTs are not asked for Jupyter's XSRF
    token (its own frontend does not send one).
    """

    def check_xsrf_cookie(self) -> None:
        return

    @property
    def manager(self) -> TensorBoardManager:
        return self.lab.tensorboards

    @web.authenticated
    async def get(self, tb_id: str, path: str | None) -> None:
        await self.forward(tb_id, path)

    @web.authenticated
    async def head(self, tb_id: str, path: str | None) -> None:
        await self.forward(tb_id, path)

    @web.authenticated
    async def post(self, tb_id: str, path: str | None) -> None:
        await self.forward(tb_id, path)

    async def forward(self, tb_id: str, path: str | None) -> None:
        if path is None:
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(f"{self.request.path}/{query}", permanent=False)
            return
        instance = await self.manager.ensure_running(tb_id)
        if instance.status == "starting":
            await self.manager.wait_ready(instance)
        if instance.status != "running":
            raise LabError(f"TensorBoard {tb_id} {instance.status}: {instance.error or ''}"
                           .strip(), status=502)
        instance.touch()
        try:
            response = await proxy.forward(str(instance.socket), self.request.method or "GET",
                                           self.request.uri or "/",
                                           self.request.headers.get_all(), self.request.body)
        except OSError as e:
            raise LabError(f"TensorBoard {tb_id} is not answering ({e}): use Reload in the "
                           "TensorBoard panel", status=502) from None
        self.clear()
        self.set_status(response.code, response.reason)
        seen: set[str] = set()
        for name, value in proxy.response_headers(response.headers.get_all()):
            # TensorBoard's own headers (its CSP included) replace the defaults.
            (self.add_header if name.lower() in seen else self.set_header)(name, value)
            seen.add(name.lower())
        if response.body and self.request.method != "HEAD" and response.code not in (204, 304):
            self.write(response.body)
        await self.finish()
