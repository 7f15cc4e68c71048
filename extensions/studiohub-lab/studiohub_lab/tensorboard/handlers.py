"""Routes of the user's TensorBoards: list, open, stop, restart, and the board itself.

Every handler checks all of its input (body, ``?wait=``) before it starts or stops
anything: a refused request changes nothing.
"""

from __future__ import annotations

import contextlib
import hmac
import os
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.auth import User
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..base import LabAPIHandler, LabHandlerMixin, Route, quoted
from ..errors import LabError
from . import proxy
from .magic import TOKEN_HEADER

if TYPE_CHECKING:
    from .manager import Instance, TensorBoardManager

TB_ID = r"(?P<tb_id>[0-9]{1,10})"
WAITS = ("ready", "stopped")


def routes(api: str, kw: dict[str, Any]) -> list[Route]:
    return [
        (rf"{api}/tensorboards", TensorBoardsHandler, kw),
        (rf"{api}/tensorboards/{TB_ID}", TensorBoardHandler, kw),
        (rf"{api}/tensorboards/{TB_ID}/restart", TensorBoardRestartHandler, kw),
        (rf"studiohub/tensorboard/{TB_ID}(?P<path>/.*)?", TensorBoardProxyHandler, kw),
    ]


class KernelTokenMixin:
    """Also accept the per-server secret that ``%tensorboard`` sends from the user's kernels
    (see :mod:`.magic`); everything else goes through the server's own auth."""

    lab: Any

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
    max_body = 256 * 1024  # up to 32 folders of up to 4096 characters

    @property
    def manager(self) -> TensorBoardManager:
        return cast("TensorBoardManager", self.lab.tensorboards)

    def model(self, instance: Any) -> dict[str, Any]:
        return cast(dict[str, Any], instance.model(self.manager.home))

    def wait_for(self) -> str | None:
        """``?wait=``, checked before anything is done: ``ready``, ``stopped`` or none."""
        until = self.get_query_argument("wait", None)
        if until is not None and until not in WAITS:
            raise LabError(f"wait={quoted(until)}: use wait=ready or wait=stopped")
        return until

    async def wait(self, instance: Instance, until: str | None) -> Instance:
        """``ready``: answer once started (or failed); ``stopped``: once it stopped (used
        by ``%tensorboard`` to live as long as its TensorBoard)."""
        if until == "ready":
            with contextlib.suppress(TimeoutError):
                await self.manager.wait_ready(instance)
        elif until == "stopped":
            await instance.exited.wait()
        return instance


class TensorBoardsHandler(TensorBoardAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json({"tensorboards": [self.model(i) for i in self.manager.all()]})

    @web.authenticated
    async def post(self) -> None:
        until = self.wait_for()
        body = self.body({"folders": object}, required=("folders",))  # resolve_folders checks
        instance = await self.wait(await self.manager.open(body["folders"]), until)
        self.write_json(self.model(instance), 200 if instance.status == "running" else 202)


class TensorBoardHandler(TensorBoardAPIHandler):
    @web.authenticated
    async def get(self, tb_id: str) -> None:
        until = self.wait_for()
        self.write_json(self.model(await self.wait(self.manager.get(tb_id), until)))

    @web.authenticated
    async def delete(self, tb_id: str) -> None:
        self.write_json(self.model(await self.manager.stop(tb_id)))


class TensorBoardRestartHandler(TensorBoardAPIHandler):
    @web.authenticated
    async def post(self, tb_id: str) -> None:
        until = self.wait_for()
        instance = await self.wait(await self.manager.restart(tb_id), until)
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
        return cast("TensorBoardManager", self.lab.tensorboards)

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
            self.write(proxy.prefix_font_urls(response.headers, response.body,
                                              self.manager.url_for(tb_id)))
        await self.finish()
