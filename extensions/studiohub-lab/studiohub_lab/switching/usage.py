"""Live usage of one kernel: CPU against its size's CPUs, memory against its limit, GPU memory.

Measured on the kernel's process tree with psutil (what jupyter-resource-usage does for
the whole server), so it works for kernels that share the server's size and for placed
ones alike. CPU percent is of the size's CPUs: 100 means the kernel uses all it may.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import psutil


class UsageMeter:
    """Keeps each kernel's processes between calls, so CPU is measured over the interval."""

    def __init__(self) -> None:
        self._procs: dict[str, dict[int, psutil.Process]] = {}

    def measure(self, kernel_id: str, pid: int | None, cpus: float | None,
                memory_limit: int | None, gpu_visible: str = "") -> dict[str, Any]:
        if not pid:
            return {"cpu_percent": None, "memory": None, "memory_limit": memory_limit,
                    "gpu_memory": None}
        known = self._procs.setdefault(kernel_id, {})
        cpu_total, rss = 0.0, 0
        pids = []
        for proc in _tree(pid):
            pids.append(proc.pid)
            proc = known.setdefault(proc.pid, proc)
            try:
                with proc.oneshot():
                    cpu_total += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            except psutil.Error:
                known.pop(proc.pid, None)
        for gone in set(known) - set(pids):
            known.pop(gone, None)
        share = cpu_total / (cpus or psutil.cpu_count() or 1)
        return {"cpu_percent": round(min(share, 100.0 * (psutil.cpu_count() or 1)), 1),
                "memory": rss, "memory_limit": memory_limit,
                "gpu_memory": gpu_memory(pids) if gpu_visible else None,
                "time": time.time()}

    def forget(self, kernel_id: str) -> None:
        self._procs.pop(kernel_id, None)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def gpu_memory(pids: list[int]) -> int | None:
    """Bytes of GPU memory the processes hold (nvidia-smi), None without it."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = 0
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0].isdigit() and int(fields[0]) in pids:
            used += int(float(fields[1]) * 1024 * 1024)
    return used
