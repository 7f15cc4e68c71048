"""Notebook sharing on a 5 MB notebook: create, open, 50 concurrent viewers, vs a baseline.

One StudioHub with the sharing service runs on this machine (its own state directory).
The baseline is the same notebook file served by a user's own Jupyter server through the
same proxy (``/user/NAME/api/contents/...``, what JupyterLab does to open or save it):

- **create**: share the notebook (POST, validated, snapshotted, rendered, stored)
  vs saving it to the author's own server (PUT contents).
- **open**: the preview page (HTML) and the API snapshot (JSON) vs opening the file
  from the author's own server (GET contents).
- **50 concurrent viewers**: 50 members, each logged in through the hub's OAuth, open
  the preview ``--opens`` times at once; vs 50 clients opening the file from the author's
  server with the author's token. p50/p95 latency and requests per second.

Prints medians, p95s and the ratios sharing/baseline.

    sudo /opt/studiohub/hub/bin/python benchmarks/sharing/run.py [--viewers 50] [--opens 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sharinghub import (
    SHARING_CATALOG,
    SharingHub,
    call,
    code_cell,
    display,
    make_notebook,
    markdown_cell,
    running_sharing_hub,
    stream,
)

TARGET_BYTES = 5 * 1024 * 1024
# The author's server gets a size that does not throttle the baseline on a 2-core machine.
CATALOG = {**SHARING_CATALOG, "domains": {**SHARING_CATALOG["domains"], "bench": {
    "display_name": "Benchmark", "images": ["base"], "sizes": ["medium"]}}}


def five_mb_notebook(seed: int = 0) -> dict[str, Any]:
    """≈5 MB like a real one: markdown, code, text outputs and incompressible PNG outputs."""
    rng = random.Random(seed)
    cells: list[dict[str, Any]] = []
    i = 0
    while len(json.dumps(make_notebook(*cells))) < TARGET_BYTES:
        image = base64.b64encode(rng.randbytes(90_000)).decode()
        cells.append(markdown_cell(f"## Step {i}\nWhat this step does, with *some* text.",
                                   cell_id=f"m{i}"))
        cells.append(code_cell(f"result_{i} = train(step={i})\nplot(result_{i})",
                               stream("\n".join(f"epoch {e}: loss {1 / (e + 1):.4f}"
                                                for e in range(40)) + "\n"),
                               display({"image/png": image, "text/plain": "<Figure>"}),
                               cell_id=f"c{i}"))
        i += 1
    return make_notebook(*cells, size="medium")


def timed(action: Callable[[], requests.Response], runs: int) -> list[float]:
    """Seconds per call of ``action``, which must succeed each time."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        r = action()
        times.append(time.perf_counter() - start)
        if r.status_code >= 300:
            raise RuntimeError(f"{r.request.method} {r.url}: {r.status_code} {r.text[:300]}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def crowd(urls_and_headers: list[tuple[str, dict[str, str]]], opens: int
                ) -> tuple[list[float], float]:
    """Every client opens its URL ``opens`` times, all clients at once; latencies and wall."""
    latencies: list[float] = []

    async def client(url: str, headers: dict[str, str]) -> None:
        async with aiohttp.ClientSession(headers=headers) as http:
            for _ in range(opens):
                start = time.perf_counter()
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"GET {url}: {r.status}")
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(u, h) for u, h in urls_and_headers))
    return latencies, time.perf_counter() - start


def cookie_header(session: requests.Session) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies)}


def measure(hub: SharingHub, args: argparse.Namespace) -> dict[str, Any]:
    notebook = five_mb_notebook()
    body = json.dumps({"type": "notebook", "format": "json", "content": notebook})
    author = hub.new_user("author", groups=("bench",))
    author.spawn(image="base", size="medium")
    results: dict[str, Any] = {"bytes": len(json.dumps(notebook))}
    results["create_base"] = timed(lambda: author.server_api(
        "PUT", "/contents/bench.ipynb", data=body, timeout=120), args.runs)
    results["create"] = timed(lambda: call(hub, author, "POST", "shares", timeout=120, json={
        "domain": "bench", "name": "bench.ipynb", "notebook": notebook}), args.runs)
    share = call(hub, author, "POST", "shares", json={
        "domain": "bench", "name": "bench.ipynb", "notebook": notebook}, timeout=120).json()

    viewers = [hub.new_user("viewer", groups=("bench",)) for _ in range(args.viewers)]
    link = hub.url + share["url"]
    for viewer in viewers:  # the hub's OAuth once, as a browser would on first visit
        viewer.session.get(link, timeout=120).raise_for_status()
    reader = viewers[0]
    results["open_base"] = timed(lambda: author.server_api(
        "GET", "/contents/bench.ipynb", timeout=120), args.runs * 2)
    results["open_page"] = timed(lambda: reader.session.get(link, timeout=120), args.runs * 2)
    results["open_api"] = timed(lambda: call(
        hub, reader, "GET", f"shares/{share['id']}/versions/latest"), args.runs * 2)

    base_url = f"{hub.url}/user/{author.name}/api/contents/bench.ipynb"
    results["crowd_base"] = asyncio.run(crowd(
        [(base_url, {"Authorization": f"token {author.token}"})] * args.viewers, args.opens))
    results["crowd"] = asyncio.run(crowd(
        [(link, cookie_header(v.session)) for v in viewers], args.opens))
    return results


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    def line(what: str, base: list[float], ours: list[float], label: str) -> None:
        b, o = statistics.median(base), statistics.median(ours)
        print(f"{what}: baseline {b * 1000:7.1f} ms  {label} {o * 1000:7.1f} ms  "
              f"ratio {o / b:5.2f}   (p95 {p95(base) * 1000:.1f} / {p95(ours) * 1000:.1f} ms)")

    print(f"notebook: {r['bytes'] / 2**20:.2f} MiB; medians of {args.runs} creates and "
          f"{args.runs * 2} opens")
    line("create  (share vs save to own server)   ", r["create_base"], r["create"], "share  ")
    line("open    (preview page vs own server)    ", r["open_base"], r["open_page"], "preview")
    line("open    (API snapshot vs own server)    ", r["open_base"], r["open_api"], "API    ")
    (base, base_wall), (ours, ours_wall) = r["crowd_base"], r["crowd"]
    total = args.viewers * args.opens
    print(f"{args.viewers} concurrent viewers x {args.opens} opens ({total} requests):")
    for name, lat, wall in (("baseline", base, base_wall), ("preview ", ours, ours_wall)):
        print(f"  {name}: p50 {statistics.median(lat) * 1000:7.1f} ms  p95 "
              f"{p95(lat) * 1000:7.1f} ms  {total / wall:6.1f} req/s  wall {wall:.1f} s")
    print(f"  ratio preview/baseline: p95 {p95(ours) / p95(base):.2f}  "
          f"throughput {base_wall / ours_wall:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50, help="concurrent viewers")
    parser.add_argument("--opens", type=int, default=4, help="opens per viewer")
    parser.add_argument("--runs", type=int, default=5, help="sequential creates (opens: 2x)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: StudioHub creates a unix user per login")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        with running_sharing_hub(Path(tmp) / "hub", catalog=CATALOG,
                                 max_shares_per_user=args.runs + 5) as hub:
            results = measure(hub, args)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
