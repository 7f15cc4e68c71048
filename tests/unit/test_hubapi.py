"""The hub API without a hub: placement bookkeeping (GPUs taken over by a switch), bodies."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import yaml
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from studiohub import placement
from studiohub.catalog import load_catalog
from studiohub.gpus import GpuAllocator, NoGpuFree, gpus_from_ids
from studiohub.hubapi import (
    MAX_BODY,
    PENDING_WORDS,
    PREFIX,
    KernelHandler,
    KernelsHandler,
    parse_body,
    parse_check,
)
from studiohub.placement import Placement, PlacementBook, Refused, release, service
from studiohub.placement.capacity import Host

GIB = 1024**3


def placed(kernel_id: str, gpu_ids: list[str]) -> Placement:
    return Placement("alice", kernel_id, "", "pytorch-gpu", "gpu-medium", 4, 16 * GIB,
                     tuple(gpu_ids))


def test_a_taken_over_gpu_goes_back_when_the_new_kernel_goes_first(tmp_path: Path) -> None:
    allocator = GpuAllocator(gpus_from_ids(["GPU-a", "GPU-b"]))
    spawner = SimpleNamespace(allocator=allocator)
    book = PlacementBook(tmp_path / "placements.json")
    old = placed("k1", [g.id for g in allocator.allocate("alice/kernel/k1", 1)])
    book.add(old)
    allocator.allocate("bob", 1)
    taken = allocator.allocate("alice/kernel/k2", 1, takeover=[old.gpu_holder])
    new = placed("k2", [g.id for g in taken])
    book.add(new)
    assert new.gpus == old.gpus == ("GPU-a",)

    release(spawner, book, new)  # the switch failed, or k2 stopped while k1 runs
    assert [g.id for g in allocator.held_by(old.gpu_holder)] == ["GPU-a"]
    with pytest.raises(NoGpuFree):  # never free for someone else while k1 uses it
        allocator.allocate("carol", 1)

    release(spawner, book, old)
    assert [g.id for g in allocator.free_gpus()] == ["GPU-a"]
    assert book.all() == []


def test_the_replaced_kernel_going_first_leaves_the_gpu_with_the_new_one(tmp_path: Path
                                                                          ) -> None:
    allocator = GpuAllocator(gpus_from_ids(["GPU-a"]))
    spawner = SimpleNamespace(allocator=allocator)
    book = PlacementBook(tmp_path / "placements.json")
    old = placed("k1", [g.id for g in allocator.allocate("alice/kernel/k1", 1)])
    book.add(old)
    new = placed("k2", [g.id for g in allocator.allocate("alice/kernel/k2", 1,
                                                         takeover=[old.gpu_holder])])
    book.add(new)
    release(spawner, book, old)  # the usual order: the old kernel is shut down
    assert [g.id for g in allocator.held_by(new.gpu_holder)] == ["GPU-a"]


# --- request bodies ---------------------------------------------------------------------


def test_a_body_nested_too_deeply_is_a_400_not_a_500() -> None:
    for raw in (b"[" * 100_000, b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        with pytest.raises(Refused) as refused:
            parse_body(raw, {"image"}, limit=1_000_000)
        assert refused.value.status == 400
        assert refused.value.message in ("request body is nested too deeply: send a flat "
                                         "JSON object", "request body must be a JSON object")
    with pytest.raises(Refused, match="nested too deeply"):
        parse_body(b"[" * 100_000, {"image"}, limit=1_000_000)


def test_a_body_past_the_bound_is_a_413_before_it_is_read() -> None:
    body = json.dumps({"image": "x" * MAX_BODY}).encode()
    with pytest.raises(Refused) as refused:
        parse_body(body, {"image"})
    assert refused.value.status == 413
    assert refused.value.message == (f"request body of {len(body)} bytes is too large: at "
                                     f"most {MAX_BODY} bytes")


def test_bad_bodies_are_named_and_quoted_short() -> None:
    with pytest.raises(Refused, match="not valid JSON"):
        parse_body(b"{", {"image"})
    with pytest.raises(Refused, match="must be a JSON object"):
        parse_body(b"[]", {"image"})
    with pytest.raises(Refused) as refused:
        parse_body(json.dumps({"y" * 5000: 1}).encode(), {"image", "size"})
    assert refused.value.message.startswith("unknown field(s) 'yyyy")
    assert len(refused.value.message) < 160
    assert parse_body(b"", {"image"}) == {}
    assert parse_body(b'{"image": "base"}', {"image"}) == {"image": "base"}


def test_check_must_be_a_boolean() -> None:
    assert parse_check({"check": True}) is True and parse_check({}) is False
    with pytest.raises(Refused, match=r"check: true .* or false, not 'yes'"):
        parse_check({"check": "yes"})


def test_a_pending_server_is_named_in_words() -> None:
    assert PENDING_WORDS["stop"] == "stopping" and PENDING_WORDS["spawn"] == "starting"


# --- the handlers, on a tornado app without a hub ---------------------------------------------
# Authentication and scopes are the hub's (tested with real tokens in
# tests/integration/test_switching.py); here the handlers' own steps run for real:
# parse, the placement owner's verdict, the answer and its status.


class NoAuth:
    """Handler mixin for tests: the user named in the path, as the hub would find them."""

    settings: dict[str, Any]

    async def prepare(self) -> None:
        return None

    def owner(self, user_name: str) -> Any:
        user = self.settings["users"].get(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        return user


class KernelsUnderTest(NoAuth, KernelsHandler):
    pass


class KernelUnderTest(NoAuth, KernelHandler):
    pass


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop
async def hubapi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.unit.test_placement_service import CATALOG, make_spawner

    monkeypatch.setattr(service, "kernel_registered", lambda image_id: True)
    monkeypatch.setattr(service, "host_of", lambda spawner: Host(8, 32 * GIB, 0))
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(CATALOG))
    catalog = load_catalog(catalog_file)
    users = {name: SimpleNamespace(name=name, spawners={"": make_spawner(catalog, name)})
             for name in ("ada", "eve")}
    book_path = str(tmp_path / "placements.json")
    kw = {"book_path": book_path}
    app = web.Application([
        (rf"/hub{PREFIX}/kernels", KernelsUnderTest, kw),
        (rf"/hub{PREFIX}/kernels/(?P<kernel_id>[^/]+)", KernelUnderTest, kw)],
        users=users, db=SimpleNamespace(dirty=False), hub=SimpleNamespace(base_url="/hub/"))
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    client = AsyncHTTPClient()

    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        r = await client.fetch(f"http://127.0.0.1:{port}/hub/api/studiohub/users/{path}",
                               method=method, body=data, raise_error=False,
                               allow_nonstandard_methods=True)
        return r.code, json.loads(r.body) if r.body else None

    call.book = placement.placer(book_path).book  # type: ignore[attr-defined]
    yield call
    placement.placer(book_path).book.remove_user("ada")
    placement.placer(book_path).book.remove_user("eve")
    server.stop()


KID = "0d3c0000-0000-4000-8000-000000000000"


async def test_place_then_release_a_kernel_through_the_handlers(hubapi: Any) -> None:
    status, placed = await hubapi("POST", "ada/kernels", {"kernel_id": KID, "image": "base",
                                                          "size": "half"})
    assert status == 201, placed
    assert (placed["kernel_id"], placed["size"], placed["limits"]["memory"]) == (KID, "half",
                                                                                  GIB)
    assert placed["env"]["STUDIOHUB_KERNEL_SIZE"] == "half" and placed["procs"] == []
    again = await hubapi("POST", "ada/kernels", {"kernel_id": KID, "image": "base",
                                                 "size": "half"})
    assert again[0] == 200  # a restart: the same placement
    assert await hubapi("DELETE", f"ada/kernels/{KID}") == (204, None)
    assert hubapi.book.all() == []


async def test_the_dry_run_answers_what_would_be_placed_and_places_nothing(hubapi: Any
                                                                           ) -> None:
    status, answer = await hubapi("POST", "ada/kernels", {"image": "base", "size": "half",
                                                          "check": True})
    assert (status, answer) == (200, {"image": "base", "size": "half",
                                      "image_label": "Base Python 3.11 · CPU",
                                      "size_label": "0.5 vCPU + 1 GiB",
                                      "kernel_name": "studiohub-base"})
    status, answer = await hubapi("POST", "ada/kernels", {"image": "nope", "size": "half",
                                                          "check": True})
    assert (status, answer["message"]) == (400, "unknown image 'nope': allowed values are "
                                                "base")
    assert hubapi.book.all() == []


async def test_refusals_are_short_4xx_answers(hubapi: Any) -> None:
    assert (await hubapi("POST", "ada/kernels", b"[" * 60_000))[1] == {
        "status": 400, "message": "request body is nested too deeply: send a flat JSON object"}
    status, answer = await hubapi("POST", "ada/kernels", {"image": "x" * 20_000_000})
    assert status == 413 and len(json.dumps(answer)) < 200
    status, answer = await hubapi("POST", "ada/kernels", {"kernel_id": "x" * 30_000,
                                                          "image": "base", "size": "half"})
    assert (status, answer["message"]) == (400, "kernel_id: a kernel's UUID is required")
    await hubapi("POST", "ada/kernels", {"kernel_id": KID, "image": "base", "size": "half"})
    theirs = await hubapi("POST", "eve/kernels", {"kernel_id": KID, "image": "base",
                                                  "size": "half"})
    assert theirs == (404, {"status": 404, "message": f"no placed kernel '{KID}' of eve"})
    gone = await hubapi("DELETE", f"eve/kernels/{KID}")
    assert gone == (404, {"status": 404, "message": f"no placed kernel '{KID}' of eve"})
    assert [p.user for p in hubapi.book.all()] == ["ada"]
