"""A real StudioHub with the sharing service, for the sharing tests and benchmarks.

The hub runs StudioHub's own ``jupyterhub_config.py`` (settings → configurer, which calls
:func:`studiohub.sharing.config.update_sharing`), with the test's ``sharing:`` block in
its ``config.yaml``, so the service, its roles and scopes are exactly what production
registers. ``jupyterhub`` is started directly instead of through ``studiohub up`` (which
would also build image environments this needs none of).

Users log in through the hub's form, get API tokens, and are put into domains through
the hub's REST API, as in :mod:`tests.hubtools`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from studiohub.catalog import merge
from studiohub.installer import JUPYTERHUB_CONFIG
from tests import ports
from tests.hubtools import TEST_CATALOG, Hub, User, shut_down

SHARING_CATALOG = merge(TEST_CATALOG, {"domains": {
    "team-a": {"display_name": "Team A"},
    "team-b": {"display_name": "Team B", "images": ["base"], "sizes": ["tiny"]},
}})


@dataclass
class SharingHub(Hub):
    """A :class:`Hub` started from StudioHub's own config, with a ``sharing:`` block."""

    sharing: dict[str, Any] = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/sharing/"

    @property
    def data_dir(self) -> Path:
        return Path(self.sharing.get("data_dir") or self.state_dir / "sharing")

    def start(self, timeout: float = 240) -> None:
        """StudioHub's ``jupyterhub_config.py`` in the state directory; wait for the service."""
        self.settings = {**self.settings,
                         "sharing": {"port": ports.free_port(), **self.sharing}}
        env = {**os.environ, "STUDIOHUB_CONFIG": str(self.write_config())}
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(JUPYTERHUB_CONFIG)], env=env,
                cwd=self.state_dir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._wait_for(f"{self.service_url}static/preview.css", timeout)

    def _wait_for(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited {self.process.returncode}:\n"
                                   + self.log_tail())
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"sharing service not up after {timeout}s:\n{self.log_tail()}")


@contextlib.contextmanager
def running_sharing_hub(workdir: Path, catalog: dict[str, Any] | None = None,
                        **sharing: Any) -> Iterator[SharingHub]:
    """Start a hub with the sharing service; stop it and remove its unix accounts after."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    hub = SharingHub(workdir, catalog=catalog or SHARING_CATALOG, sharing=dict(sharing))
    try:
        hub.start()
        yield hub
    finally:
        shut_down(hub)


# --- the service's API, as the Lab panel or a script uses it --------------------------------


def call(hub: SharingHub, user: User | None, method: str, path: str,
         **kwargs: Any) -> requests.Response:
    """``<service>/api/v1/<path>`` with ``user``'s API token (anonymous when None)."""
    headers = {"Authorization": f"token {user.token}"} if user else {}
    return requests.request(method, f"{hub.service_url}api/v1/{path}", headers=headers,
                            timeout=kwargs.pop("timeout", 60), **kwargs)


def share(hub: SharingHub, user: User, notebook: dict[str, Any], domain: str = "team-a",
          name: str = "analysis.ipynb", **extra: Any) -> dict[str, Any]:
    """Share ``notebook``; fail the test unless the service answered 201."""
    r = call(hub, user, "POST", "shares", json={"domain": domain, "name": name,
                                                "notebook": notebook, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def make_notebook(*cells: dict[str, Any], image: str = "base",
                  size: str = "tiny") -> dict[str, Any]:
    """An nbformat 4.5 notebook as JupyterLab saves it, with StudioHub's environment."""
    return {"nbformat": 4, "nbformat_minor": 5, "cells": list(cells),
            "metadata": {"kernelspec": {"name": f"studiohub-{image}", "language": "python",
                                        "display_name": "Base Python 3.11 · CPU"},
                         "studiohub": {"image": image, "size": size}}}


def code_cell(source: str, *outputs: dict[str, Any], cell_id: str = "",
              **metadata: Any) -> dict[str, Any]:
    return {"cell_type": "code", "id": cell_id or f"c{zlib.crc32(source.encode()):08x}",
            "source": source, "metadata": metadata, "outputs": list(outputs),
            "execution_count": 1 if outputs else None}


def markdown_cell(source: str, cell_id: str = "") -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id or f"m{zlib.crc32(source.encode()):08x}",
            "source": source, "metadata": {}}


def display(data: dict[str, str]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def stream(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


#: Outputs and cells that would run script in a browser that rendered them as is.
EVIL_SVG = ("<svg xmlns='http://www.w3.org/2000/svg' onload='window.pwned=\"svg-onload\"'>"
            "<script>window.pwned='svg'</script><circle r='4'/></svg>")


def malicious_notebook() -> dict[str, Any]:
    """Every way we know for a notebook to carry script into a viewer's browser."""
    return make_notebook(
        markdown_cell("# Innocent title\n<script>window.pwned='markdown'</script>\n"
                      "[click me](javascript:window.pwned='md-link') "
                      "<img src=x onerror=\"window.pwned='md-img'\">", cell_id="md1"),
        code_cell("show()",
                  display({"text/html": "<script>window.pwned='html'</script>"
                                        "<a href=\"javascript:window.pwned='link'\">link</a>"
                                        "<img src=x onerror=\"window.pwned='img'\">"
                                        "<iframe src=\"javascript:window.pwned='iframe'\">"
                                        "</iframe><div onmouseover=\"window.pwned='div'\">"
                                        "hover</div><b>bold survives</b>"}),
                  display({"image/svg+xml": EVIL_SVG}),
                  display({"application/javascript": "window.pwned='js'"}),
                  display({"text/markdown": "[md](javascript:window.pwned='md-output')"}),
                  stream("plain text survives\n"),
                  cell_id="evil", trusted=True))
