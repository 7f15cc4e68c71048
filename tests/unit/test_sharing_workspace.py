"""Copies into a workspace, against a stand-in of a Jupyter server's contents API.

The stand-in answers like jupyter_server's: ``GET`` 404 for a missing file, ``PUT``
writes (replacing any file of that name) after a short delay, as a real save takes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from studiohub.sharing.workspace import Workspace


class Contents(web.RequestHandler):
    files: dict[str, bytes]

    def initialize(self, files: dict[str, bytes]) -> None:
        self.files = files

    def get(self, path: str) -> None:
        if path not in self.files:
            raise web.HTTPError(404)
        self.finish({"name": path})

    async def put(self, path: str) -> None:
        await asyncio.sleep(0.05)
        self.files[path] = self.request.body
        self.set_status(201)
        self.finish({"name": path})


async def copies(count: int, files: dict[str, bytes]) -> list[str]:
    """``count`` concurrent copies of one notebook into a stand-in server."""
    app = web.Application([(r"/user/ada/api/contents/(.*)", Contents, {"files": files})])
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    workspace = Workspace(f"http://127.0.0.1:{port}", "/", "ada", "token")
    notebook: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    try:
        return list(await asyncio.gather(*(workspace.save_copy("race.ipynb", notebook)
                                           for _ in range(count))))
    finally:
        server.stop()


def test_concurrent_copies_take_distinct_names() -> None:
    files = {"race.ipynb": b"the user's own"}
    names = asyncio.run(copies(5, files))
    assert sorted(names) == ["race-2.ipynb", "race-3.ipynb", "race-4.ipynb", "race-5.ipynb",
                             "race-6.ipynb"]
    assert files["race.ipynb"] == b"the user's own"  # never overwritten
    assert len(files) == 6
