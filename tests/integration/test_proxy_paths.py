"""The proxy in front of everything answers a URL path that is not valid UTF-8 with a 400.

configurable-http-proxy 5.x decodes the path with ``decodeURIComponent``, which throws on
``%ED%A0%80`` (a lone surrogate), and answered its own 500 page before the hub or a
service saw the request. StudioHub preloads ``proxyfix.js`` into it
(``configurer.make_proxy_command``); this runs the real proxy with the real command.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from studiohub.configurer import make_proxy_command, proxy_command
from tests import ports


class Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached the target")

    def log_message(self, *args: object) -> None:
        pass


#: The running proxy's routes API.
API: dict[str, str] = {}


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    node = shutil.which("node")
    command = proxy_command()
    if not node or not os.path.exists(command):
        pytest.skip("configurable-http-proxy is installed by `studiohub up` (make test does)")
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    port, api_port = ports.free_port(), ports.free_port()
    process = subprocess.Popen(
        [*make_proxy_command(command, node), "--ip", "127.0.0.1", "--port", str(port),
         "--api-ip", "127.0.0.1", "--api-port", str(api_port),
         "--default-target", f"http://127.0.0.1:{target.server_address[1]}"],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "test"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    API["routes"] = f"http://127.0.0.1:{api_port}/api/routes"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        target.shutdown()


@pytest.mark.parametrize("path", ["/services/sharing/api/shares/%ED%A0%80",
                                  "/hub/api/studiohub/users/a/kernels/%ED%A0%80", "/%FF"])
def test_a_path_that_is_not_utf8_is_a_400_naming_the_problem(proxy: str, path: str) -> None:
    answer = requests.get(proxy + path, timeout=10)
    assert answer.status_code == 400
    assert answer.json() == {"status": 400, "message": "the URL path is not valid "
                             "percent-encoded UTF-8: check the link or the request"}


def test_every_other_path_reaches_its_target(proxy: str) -> None:
    answer = requests.get(proxy + "/user/alice/lab%20files/%C3%A9t%C3%A9", timeout=10)
    assert (answer.status_code, answer.text) == (200, "reached the target")


def test_an_endpoint_call_the_proxy_cannot_deliver_is_a_json_503(proxy: str) -> None:
    """HAProxy's fast lane restarting: its route's socket refuses for a few seconds."""
    dead = f"http://127.0.0.1:{ports.free_port()}"
    for prefix in ("/services/models/iris", "/services/other"):
        added = requests.post(f"{API['routes']}{prefix}", json={"target": dead}, timeout=10,
                              headers={"Authorization": "token test"})
        assert added.status_code == 201, added.text
    answer = requests.post(proxy + "/services/models/iris/v1/models/iris:predict",
                           json={"instances": [[1]]}, timeout=10)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert "try again in a few seconds" in answer.json()["error"]
    # Anything else the proxy cannot deliver keeps the proxy's own answer.
    other = requests.get(proxy + "/services/other/page", timeout=10)
    assert other.status_code == 503 and "application/json" not in \
        other.headers.get("Content-Type", "")
