"""Forward one HTTP request to a TensorBoard listening on a unix socket.

Why not jupyter-server-proxy: its handlers are built for servers declared in config
(``c.ServerProxy.servers``) or for ``/proxy/<port>``; our TensorBoards come and go at
run time, one per set of folders, each on its own socket. Reusing it would mean
subclassing its ``ProxyHandler``, whose method signatures changed between major
versions, and would add its ``/proxy/<port>`` route to every user's server. TensorBoard
needs only plain HTTP (no websockets), which this module does with tornado's own client.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterable
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

# Hop-by-hop headers (RFC 9110 §7.6.1) and what the front server sets itself.
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
    "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"))
# The user's credentials for the hub and the server stay out of TensorBoard.
_REQUEST_DROP = _HOP_BY_HOP | {"host", "cookie", "authorization", "content-length",
                               "x-xsrftoken", "x-studiohub-kernel-token"}
_RESPONSE_DROP = _HOP_BY_HOP | {"content-length", "server", "date"}


class UnixSocketResolver(Resolver):
    """Resolve every host name to one unix socket."""

    def initialize(self, socket_path: str) -> None:
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
                      ) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.socket_path)]


def request_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in _REQUEST_DROP}


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _RESPONSE_DROP]


async def forward(socket_path: str, method: str, uri: str, headers: Iterable[tuple[str, str]],
                  body: bytes | None, timeout: float = 300) -> HTTPResponse:
    """Send the request to the socket; return TensorBoard's response, whatever its status.

    Raises ``OSError`` (or ``tornado`` ``HTTPClientError`` 599) when nothing answers.
    """
    client = SimpleAsyncHTTPClient(force_instance=True,
                                   resolver=UnixSocketResolver(socket_path=socket_path))
    try:
        request = HTTPRequest(
            "http://tensorboard" + uri, method=method, headers=request_headers(headers),
            body=body if method in ("POST", "PUT", "PATCH") else None,
            follow_redirects=False, decompress_response=False,
            connect_timeout=10, request_timeout=timeout, allow_nonstandard_methods=True)
        try:
            return await client.fetch(request, raise_error=False)
        except HTTPClientError as e:  # pragma: no cover - raise_error=False returns these
            if e.response is not None:
                return e.response
            raise
    finally:
        client.close()


# TensorBoard's index.html inlines its Roboto @font-face rules with URLs at the site root
# (``url(/font-roboto/…)``), which ``--path_prefix`` does not change; it serves the files
# under the prefix, so the page names them there.
_ROOT_FONTS = b"url(/font-roboto/"


def prefix_font_urls(headers: HTTPHeaders, body: bytes, prefix: str) -> bytes:
    """``body`` with TensorBoard's root font URLs moved under ``prefix`` (the board's
    ``--path_prefix``), for an HTML page, gzipped or not; any other body unchanged.

    Without it each open of a board asks the hub for ``/font-roboto/*.woff2`` (a redirect
    to a 404) and the board shows fallback fonts.
    """
    if not headers.get("Content-Type", "").startswith("text/html"):
        return body
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        return body
    text = gzip.decompress(body) if encoding == "gzip" else body
    if _ROOT_FONTS not in text:
        return body
    text = text.replace(_ROOT_FONTS, b"url(" + prefix.rstrip("/").encode() + b"/font-roboto/")
    return gzip.compress(text) if encoding == "gzip" else text
