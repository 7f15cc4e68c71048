"""HTTP/1.1 to one unix socket over kept-alive connections: the gateway → HAProxy hop.

Why not tornado's client: its simple client opens a connection per request (it sends
``Connection: close``) and costs about a millisecond of Python a request; the gateway's
requests go to one local socket (HAProxy's), always with a length, so a pool of open
connections and a small reader of the answer do. A kept connection that the other side
closed meanwhile (HAProxy's keep-alive timeout, a reload) fails before any byte of an
answer: the request is sent again once on a new connection (a prediction is a pure
function of its input). Answers are bounded (``max_body``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

#: Kept idle connections (more concurrent requests open more, then close them).
POOL_SIZE = 64


class UnixHTTPError(Exception):
    """No answer (the socket is gone, the connection broke, the answer is malformed)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UnixHTTP:
    def __init__(self, path: str, max_body: int = 256 * 1024 * 1024,
                 pool_size: int = POOL_SIZE) -> None:
        self.path, self.max_body, self.pool_size = path, max_body, pool_size
        self._idle: list[Connection] = []
        #: The caller's mark of what the kept connections belong to (it closes them when
        #: the other side's configuration changed).
        self.generation = 0

    async def request(self, method: str, target: str, headers: dict[str, str],
                      body: bytes | None, timeout: float) -> Answer:
        """One request; :class:`UnixHTTPError` when there is no answer."""
        head = [f"{method} {target} HTTP/1.1", "Host: localhost",
                f"Content-Length: {len(body or b'')}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        for attempt in (1, 2):
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._open()
            try:
                answer, keep = await asyncio.wait_for(self._exchange(conn, data), timeout)
            except _StaleConnection:
                _close(conn)
                if reused and attempt == 1:
                    continue  # a kept connection the other side had closed: once more
                raise UnixHTTPError("the connection closed before an answer") from None
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as e:
                _close(conn)
                raise UnixHTTPError(str(e) or type(e).__name__) from None
            if keep and len(self._idle) < self.pool_size:
                self._idle.append(conn)
            else:
                _close(conn)
            return answer
        raise UnixHTTPError("no answer")  # not reached

    async def _open(self) -> Connection:
        try:
            return await asyncio.open_unix_connection(self.path, limit=1024 * 1024)
        except OSError as e:
            raise UnixHTTPError(str(e)) from None

    async def _exchange(self, conn: Connection, data: bytes) -> tuple[Answer, bool]:
        reader, writer = conn
        try:
            writer.write(data)
            await writer.drain()
            status_line = await reader.readline()
        except (ConnectionError, BrokenPipeError):
            raise _StaleConnection() from None
        if not status_line:
            raise _StaleConnection()
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"not an HTTP status line: {status_line[:80]!r}")
        answer = Answer(int(parts[1]))
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            answer.headers[name.strip().lower()] = value.strip()
        keep = answer.headers.get("connection", "").lower() != "close"
        if "chunked" in answer.headers.get("transfer-encoding", "").lower():
            answer.body = await self._chunks(reader)
        elif "content-length" in answer.headers:
            length = int(answer.headers["content-length"])
            if length > self.max_body:
                raise ValueError(f"an answer of {length} bytes")
            answer.body = await reader.readexactly(length)
        else:
            answer.body, keep = await reader.read(self.max_body), False
        return answer, keep

    async def _chunks(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > self.max_body:
                raise ValueError("an answer over the bound")
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())


class _StaleConnection(Exception):
    pass


def _close(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn[1].close()
