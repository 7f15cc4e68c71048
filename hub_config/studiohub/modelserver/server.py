"""The replica program: one model, one unix socket, both protocols, never dying on a
request.

::

    <env python> -m studiohub.modelserver --model PATH --format FMT --name ENDPOINT \\
        --version N --socket /path/to.sock [--max-body-bytes 33554432] [--batch-max 0]

``--port N`` instead of ``--socket`` listens on TCP, all addresses (a Kubernetes pod,
where the pod's network is the boundary).

Order of a start: the socket is bound first (a stale one removed, mode 0660), so
``/v2/health/live`` answers at once and ``/v2/health/ready`` answers 503 while the model
loads on the inference thread; then one warm-up call on zeros of the inputs' shapes
(models that record no shapes, TorchScript and MXNet, are warmed by their first
request); then ready. A model that cannot load (or whose warm-up fails) ends the process
with status 2 and one line on stderr: ``studiohub.modelserver: cannot load PATH as FMT:
<why>``.

Requests: tornado's HTTP/1.1 server with keep-alive. Bodies are streamed, so one over
``--max-body-bytes`` is answered 413 without being kept (its bytes are read and dropped
up to :data:`DRAIN_MAX`, so the client reads the answer; beyond, the connection closes).
Parsing, checks and the framework's call run on one inference thread, so health checks
answer during a long prediction (the answer's JSON is encoded on the event loop); except
a prediction of a quick model (see :meth:`Replica.inline`), which runs on the event
loop itself, as a hand-written server does: handing it to the thread and back cost two
thread wake-ups, 0.1-0.3 ms of its latency (docs/benchmarks.md). Bad input is a 4xx, an
exception of the framework a 400 when it is about the input and a 500 otherwise.

Request batching exists and is off by default: ``--batch-max N`` (N > 1) joins up to N
requests that queued while the model was busy into one framework call, without a timer
(:mod:`.batching`); a batched answer may differ from a lone one in the last bits of a
float, as any framework's batch does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import batching, formats
from .protocols import (
    ModelInfo,
    ProtocolError,
    Route,
    check_model,
    error_body,
    parse_json,
    route,
    v1_answer,
    v1_metadata,
    v1_request,
    v1_status,
    v2_answer,
    v2_metadata,
    v2_request,
    v2_server,
)
from .tensors import BadInput

PROG = "studiohub.modelserver"
DEFAULT_MAX_BODY = 32 * 1024 * 1024
#: The most bytes of a too-large body read and dropped so that the client reads its 413.
DRAIN_MAX = 256 * 1024 * 1024
#: A prediction runs on the event loop when its body is at most this large and the
#: model's recent framework calls took at most INLINE_MAX_S (see Replica.inline).
INLINE_MAX_BODY = 64 * 1024
INLINE_MAX_S = 0.02
#: A call on the event loop that took longer keeps predictions on the inference thread
#: for INLINE_OFF_S: a caller who finds a slow input stalls the loop once, not again.
INLINE_STRIKE_S = 0.1
INLINE_OFF_S = 600.0
log = logging.getLogger(PROG)


class Replica:
    """The served model and its state; a framework call goes through ``pool``, or runs
    on the event loop when :meth:`inline` says it is quick."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self.runtime: Any = None
        self.model = ModelInfo(args.name, args.version, args.format, (), ())
        self.ready = False
        self.in_flight = 0
        self.queue: list[tuple[Route, bytes, asyncio.Future[tuple[int, dict[str, Any]]]]] = []
        self.busy = False
        self.pooled = 0  # predictions on the inference thread now
        self.call_s = float("inf")  # recent framework calls' duration (see _timed)
        self.calling = threading.Lock()  # one framework call at a time, whichever thread
        self.loop_thread: threading.Thread | None = None
        self.loop_adopted = False
        self.inline_off_until = 0.0

    def load(self) -> None:
        """On the inference thread: detect, load, warm up (raises LoadError/FormatError)."""
        from .runtimes import LoadError, cpu_limit, load, one_line

        fmt = formats.detect(self.args.model)
        if fmt.name != self.args.format:
            raise LoadError(f"the model is {fmt.name}, not {self.args.format}")
        threads = cpu_limit()
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
        runtime = load(fmt, threads)
        zeros = runtime.warmup_inputs()
        if zeros is not None:
            started = time.perf_counter()
            try:
                runtime.predict(zeros)
            except Exception as e:  # any framework error ends the start
                raise LoadError(f"the warm-up call on zeros failed: {one_line(e)}") from None
            self.call_s = time.perf_counter() - started
        self.runtime = runtime
        self.model = self._info()

    def _info(self) -> ModelInfo:
        r = self.runtime
        return ModelInfo(self.args.name, self.args.version, self.args.format, r.inputs,
                         r.outputs, r.default_float, r.signature)

    def answer(self, r: Route, body: bytes) -> tuple[int, dict[str, Any]]:
        """A prediction's status and JSON answer."""
        return self.answer_many([(r, body)])[0]

    def inline(self, body: bytes) -> bool:
        """Whether this prediction runs on the event loop: the runtime allows calls from
        another thread, no framework call is on the inference thread, the body is small,
        the model's recent framework calls were quick (:attr:`call_s`), and no call on
        the loop was slow in the last :data:`INLINE_OFF_S`. A health check then waits for
        this one call, which a slow input can make long once (:meth:`_timed`). Never with
        ``--batch-max`` > 1."""
        if not (self.runtime.any_thread and self.pooled == 0 and not self.calling.locked()
                and len(body) <= INLINE_MAX_BODY and self.call_s <= INLINE_MAX_S
                and time.monotonic() >= self.inline_off_until):
            return False
        if not self.loop_adopted:
            self.runtime.adopt_thread()
            self.loop_adopted = True
        return True

    def answer_many(self, items: list[tuple[Route, bytes]]) -> list[tuple[int, dict[str, Any]]]:
        """The answers of several predictions, in one framework
        call where they can join (:mod:`.batching`), else one call each."""
        answers: list[tuple[int, dict[str, Any]] | None] = [None] * len(items)
        parsed: list[tuple[int, Route, Any]] = []
        for k, (r, body) in enumerate(items):
            try:
                data = parse_json(body)
                request = v1_request(data, self.model) if r.protocol == "v1" else \
                    v2_request(data, self.model)
                parsed.append((k, r, request))
            except Exception as e:  # a replica never dies on a request
                answers[k] = self._error(e)
        inputs = [request.inputs for _, _, request in parsed]
        outputs: list[list[Any]] | None = None
        if batching.joinable(inputs, self.model.inputs):
            try:
                rows = [batching.rows_of(i, self.model.inputs) or 0 for i in inputs]
                outputs = batching.split(self._predict(batching.join(inputs)), rows)
            except Exception:  # retried one by one: each request gets its own answer
                outputs = None
        for n, (k, r, request) in enumerate(parsed):
            try:
                out = outputs[n] if outputs is not None else self._predict(request.inputs)
                answers[k] = (200, v1_answer(request, out) if r.protocol == "v1"
                              else v2_answer(self.model, request, out))
            except Exception as e:  # a replica never dies on a request
                answers[k] = self._error(e)
        return [a if a is not None else (500, error_body("no answer")) for a in answers]

    def _error(self, e: Exception) -> tuple[int, dict[str, Any]]:
        from .runtimes import one_line

        if isinstance(e, ProtocolError):
            return e.status, error_body(e.message)
        if isinstance(e, BadInput):
            return 400, error_body(str(e))
        if self.runtime is not None and isinstance(e, self.runtime.input_errors):
            return 400, error_body(f"the model refused the input: {one_line(e)}")
        log.error("prediction failed", exc_info=e)
        return 500, error_body(f"the model failed: {one_line(e)}")

    def _predict(self, inputs: list[Any]) -> list[Any]:
        outputs = self._timed(inputs)
        if self.runtime.outputs != self.model.outputs:
            self.model = self._info()
        return outputs

    def _timed(self, inputs: list[Any]) -> list[Any]:
        """The framework's call, timed into :attr:`call_s`: a slower call counts at once,
        quicker ones pull it down slowly (refused requests never reach here, so they
        cannot make a model look quick); a slow call on the event loop turns inlining off
        for :data:`INLINE_OFF_S`."""
        started = time.perf_counter()
        try:
            with self.calling:
                return self.runtime.predict(inputs)
        finally:
            took = time.perf_counter() - started
            c = self.call_s
            self.call_s = took if c == float("inf") or took > c else 0.9 * c + 0.1 * took
            if took > INLINE_STRIKE_S and threading.current_thread() is self.loop_thread:
                self.inline_off_until = time.monotonic() + INLINE_OFF_S
                log.warning("a prediction took %.2f s on the event loop: predictions stay "
                            "on the inference thread for %.0f s", took, INLINE_OFF_S)

    async def submit(self, r: Route, body: bytes) -> tuple[int, dict[str, Any]]:
        """A prediction's answer: run alone, or (``--batch-max`` > 1) queued behind the
        call in progress and run with the others that queued meanwhile."""
        loop = asyncio.get_running_loop()
        if self.args.batch_max <= 1:
            if self.inline(body):
                return self.answer(r, body)
            self.pooled += 1
            try:
                return await loop.run_in_executor(self.pool, self.answer, r, body)
            finally:
                self.pooled -= 1
        future: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()
        self.queue.append((r, body, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        if self.busy or not self.queue:
            return
        taken = self.queue[:self.args.batch_max]
        del self.queue[:len(taken)]
        self.busy = True
        call = asyncio.get_running_loop().run_in_executor(
            self.pool, self.answer_many, [(r, body) for r, body, _ in taken])

        def done(f: asyncio.Future[list[tuple[int, dict[str, Any]]]]) -> None:
            self.busy = False
            try:
                results = f.result()
            except Exception as e:  # the pool itself failed (shutting down)
                results = [(500, error_body(f"the model failed: {e}"))] * len(taken)
            for (_, _, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)
            self._pump()

        call.add_done_callback(done)


def make_app(replica: Replica) -> Any:
    import tornado.web

    @tornado.web.stream_request_body
    class Handler(tornado.web.RequestHandler):
        """Every route: the path is dispatched by :func:`protocols.route`."""

        def initialize(self) -> None:
            self.chunks: list[bytes] = []
            self.received = 0
            self.too_large = False
            self.route: Route | None = None
            self.error: ProtocolError | None = None

        def prepare(self) -> None:
            try:
                self.route = route(self.request.method or "", self.request.path)
            except ProtocolError as e:
                self.error = e
            length = self.request.headers.get("Content-Length")
            limit = replica.args.max_body_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                self.too_large = True
                if int(length) > DRAIN_MAX:
                    self._send(413, error_body(self._too_large_message()))
                    return

        def data_received(self, chunk: bytes) -> None:
            self.received += len(chunk)
            if self.received > replica.args.max_body_bytes:
                self.too_large = True
                self.chunks = []
            if not self.too_large:
                self.chunks.append(chunk)

        def _too_large_message(self) -> str:
            return (f"the body is larger than this endpoint's limit of "
                    f"{replica.args.max_body_bytes} bytes")

        def _send(self, status: int, body: dict[str, Any]) -> None:
            # A "not ready yet" to the health checks (every 0.5 s while the model loads)
            # is not worth a line of the replica's log.
            if status >= 400 and not (status == 503 and "health" in self.request.path):
                log.warning("%s %s: %d %s", self.request.method, self.request.path,
                            status, body.get("error", ""))
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body).encode())

        async def get(self, *_: str) -> None:
            await self._serve()

        async def post(self, *_: str) -> None:
            await self._serve()

        async def put(self, *_: str) -> None:
            await self._serve()

        async def delete(self, *_: str) -> None:
            await self._serve()

        async def _serve(self) -> None:
            if self._finished:
                return
            if self.too_large:
                return self._send(413, error_body(self._too_large_message()))
            try:
                if self.error is not None:
                    raise self.error
                assert self.route is not None
                status, body = await self._answer(self.route)
            except ProtocolError as e:
                status, body = e.status, error_body(e.message)
            self._send(status, body)

        async def _answer(self, r: Route) -> tuple[int, dict[str, Any]]:
            model = replica.model
            if r.action == "live":
                return 200, {"live": True}
            if r.action == "ready":
                return (200 if replica.ready else 503), {"ready": replica.ready}
            if r.action == "server":
                return 200, v2_server()
            check_model(r, model)
            if r.action == "status":
                return 200, v1_status(model, replica.ready)
            if not replica.ready:
                raise ProtocolError(503, f"model {model.name!r} version {model.version} "
                                         "is loading")
            if r.action == "model_ready":
                return 200, {"name": model.name, "ready": True}
            if r.action == "metadata":
                return 200, (v1_metadata(model) if r.protocol == "v1" else v2_metadata(model))
            body = b"".join(self.chunks)
            self.chunks = []
            replica.in_flight += 1
            try:
                return await replica.submit(r, body)
            finally:
                replica.in_flight -= 1

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error_body(self._reason)).encode())

        def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
            if isinstance(value, tornado.web.HTTPError):
                return
            super().log_exception(typ, value, tb)

    return tornado.web.Application([(r".*", Handler)], log_function=lambda _h: None)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}",
                                     description="Serve one model version on a unix socket.")
    parser.add_argument("--model", required=True, help="the model folder or file")
    parser.add_argument("--format", required=True, choices=formats.FORMATS)
    parser.add_argument("--name", required=True, help="the endpoint's (model's) name")
    parser.add_argument("--version", required=True, type=int)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the unix socket to listen on")
    where.add_argument("--port", type=int, help="a TCP port to listen on (Kubernetes pods)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument("--batch-max", type=int, default=0,
                        help="join up to N queued requests into one framework call "
                             "(0 or 1: off, the default)")
    args = parser.parse_args(argv)
    if args.batch_max < 0:
        parser.error("--batch-max must be 0 (off) or more")
    if args.max_body_bytes < 1:
        parser.error("--max-body-bytes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {PROG} %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    import tornado.httpserver
    import tornado.netutil

    replica = Replica(args)
    replica.loop_thread = threading.current_thread()
    where = args.socket or f"port {args.port}"
    try:
        if args.socket:
            socks = [tornado.netutil.bind_unix_socket(args.socket, mode=0o660, backlog=1024)]
        else:
            socks = tornado.netutil.bind_sockets(args.port, backlog=1024)
    except (OSError, ValueError) as e:
        print(f"{PROG}: cannot listen on {where}: {e}", file=sys.stderr, flush=True)
        return 1
    inode = os.stat(args.socket).st_ino if args.socket else 0
    server = tornado.httpserver.HTTPServer(make_app(replica), max_body_size=DRAIN_MAX,
                                          idle_connection_timeout=300)
    server.add_sockets(socks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        started = time.monotonic()
        try:
            await loop.run_in_executor(replica.pool, replica.load)
        except Exception as e:  # every load failure is the one line
            from .runtimes import one_line

            why = str(e) if isinstance(e, formats.FormatError) or \
                type(e).__name__ == "LoadError" else one_line(e)
            print(f"{PROG}: cannot load {args.model} as {args.format}: {why}",
                  file=sys.stderr, flush=True)
            return 2
        replica.ready = True
        m = replica.model
        log.info("serving %s version %d (%s) on %s, ready in %.1f s; inputs: %s; outputs: %s",
                 m.name, m.version, m.format, where, time.monotonic() - started,
                 ", ".join(s.describe() for s in m.inputs),
                 ", ".join(s.describe() for s in m.outputs))
        await stop.wait()
        log.info("stopping: no new connections, waiting for requests in flight")
        server.stop()
        deadline = time.monotonic() + 10
        while replica.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return 0
    finally:
        server.stop()
        if args.socket:
            _remove_socket(args.socket, inode)
        replica.pool.shutdown(wait=False, cancel_futures=True)


def _remove_socket(path: str, inode: int) -> None:
    """Remove our socket file, not one a newer replica bound at the same path since."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
