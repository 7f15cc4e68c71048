"""The gateway's kept-alive client to HAProxy's socket, against a real unix server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from studiohub.serving.unixhttp import UnixHTTP, UnixHTTPError


class Server:
    """Answers ``/chunked`` in chunks, ``/close`` then closes, anything else with its
    path and the connection's number (so reuse is visible)."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        while True:
            line = await reader.readline()
            if not line:
                break
            target = line.split()[1].decode()
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            body = await reader.readexactly(length)
            if target == "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            else:
                text = f"{target} {number} {body.decode()}".encode()
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
            await writer.drain()
            if target == "/close":
                break
        writer.close()


def test_connections_are_kept_reopened_when_closed_and_answers_read_whole(
        tmp_path: Path) -> None:
    async def run() -> None:
        served = Server()
        path = str(tmp_path / "s.sock")
        server = await asyncio.start_unix_server(served.handle, path)
        client = UnixHTTP(path)
        for i in range(5):
            answer = await client.request("POST", f"/p{i}", {}, b"x", 5)
            assert (answer.status, answer.body) == (201, f"/p{i} 1 x".encode())
            assert answer.headers["content-type"] == "text/plain"
        assert served.connections == 1  # one connection, kept
        await client.request("GET", "/close", {}, None, 5)  # the server closes it after
        answer = await client.request("GET", "/again", {}, None, 5)
        assert answer.body == b"/again 2 " and served.connections == 2
        assert (await client.request("GET", "/chunked", {}, None, 5)).body == b"abcde"
        client.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(UnixHTTPError):
            await UnixHTTP(str(tmp_path / "gone.sock")).request("GET", "/", {}, None, 5)

    asyncio.run(run())
