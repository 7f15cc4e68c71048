"""``studiohub doctor``: what this host can and cannot enforce, said plainly.

Each check returns a line marked OK, WARN (works, but something is not enforced)
or FAIL (StudioHub cannot run as configured); the exit status is 1 on any FAIL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import configurer
from .catalog import Catalog, CatalogError, load_catalog
from .paths import paths, system_mode
from .settings import SettingsError, load_settings


@dataclass(frozen=True)
class Finding:
    level: str  # "OK", "WARN" or "FAIL"
    topic: str
    text: str


def check_mode() -> Finding:
    if system_mode():
        return Finding("OK", "mode", "system hub: each user's server runs as their own unix "
                                     "account, created on first login")
    return Finding("WARN", "mode", "personal hub (not root): only this account can log in and "
                                   "servers run as it; run as root for a multi-user hub")


def check_login(settings: dict[str, Any] | None = None) -> Finding:
    """Whether the login protects each user's identity (docs/security.md)."""
    try:
        settings = settings or load_settings()
    except SettingsError as e:
        return Finding("FAIL", "login", str(e))
    kind = settings["auth"]["type"]
    if kind == "shared-password" and system_mode():
        return Finding("WARN", "login", "shared password: anyone who has it can log in as any "
                                        "non-admin user; auth.type: firstuse gives each user "
                                        "their own")
    if kind == "firstuse":
        return Finding("OK", "login", "first-use passwords: each user sets theirs at first "
                                      "login, admins use state/admin-password")
    return Finding("OK", "login", f"auth.type {kind}")


def check_limits() -> Finding:
    from .cgroups import detect

    caps = detect()
    return Finding("OK" if caps.enforced else "WARN", "limits", caps.summary)


def check_gpus() -> Finding:
    from .gpus import discover_gpus

    gpus = discover_gpus()
    if not gpus:
        return Finding("WARN", "gpus", "no NVIDIA GPU seen: GPU sizes cannot be started here")
    return Finding("OK", "gpus", f"{len(gpus)} GPU(s): {', '.join(map(str, gpus))}")


def check_proxy() -> Finding:
    command = configurer.proxy_command()
    if not (Path(command).exists() or shutil.which(command)):
        return Finding("FAIL", "proxy", "configurable-http-proxy not installed: run studiohub up")
    node = shutil.which("node")
    if not node:
        return Finding("FAIL", "proxy", "node not found: install Node.js (apt-get install nodejs)")
    version = subprocess.run([command, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return Finding("OK", "proxy", f"configurable-http-proxy {version} at {command}")


def check_balancer(haproxy: str | None = None) -> Finding:
    """Model endpoints need HAProxy, the balancer (Debian's ``haproxy``: ``make up``);
    ``haproxy``: look only there."""
    candidates = [haproxy] if haproxy else ["/usr/sbin/haproxy", shutil.which("haproxy")]
    found = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if not found:
        return Finding("WARN", "balancer", "HAProxy not installed: model endpoints cannot "
                                           "serve (apt-get install haproxy, or make up)")
    words = subprocess.run([found, "-v"], capture_output=True, text=True, check=False
                           ).stdout.split()
    version = words[2] if len(words) > 2 else "?"
    return Finding("OK", "balancer", f"HAProxy {version} at {found} (model endpoints)")


def check_command(path_env: str | None = None) -> Finding:
    """Whether ``studiohub`` in a new shell is this installation's (``studiohub up`` links it)."""
    ours = Path(sys.prefix) / "bin" / "studiohub"
    found = shutil.which("studiohub", path=path_env)
    if found is None:
        return Finding("WARN", "command", f"studiohub is not on PATH: studiohub up links it "
                                          f"(or run {ours})")
    if Path(found).resolve() != ours.resolve():
        return Finding("WARN", "command", f"studiohub on PATH is {found}, not this "
                                          f"installation's {ours}")
    return Finding("OK", "command", f"studiohub on PATH: {found} → {ours}")


def check_envs(catalog: Catalog) -> list[Finding]:
    from .envs import env_status

    findings = []
    for image in catalog.images.values():
        built, detail = env_status(image)
        if built:
            findings.append(Finding("OK", f"env {image.id}", detail))
        elif image.gpu:
            findings.append(Finding("WARN", f"env {image.id}",
                                    f"{detail}; GPU images build on GPU hosts"))
        else:
            findings.append(Finding("WARN", f"env {image.id}",
                                    f"not built: run `studiohub env build {image.id}`"))
    return findings


def run_checks(catalog_path: str | None) -> list[Finding]:
    try:
        catalog = load_catalog(catalog_path)
    except CatalogError as e:
        return [Finding("FAIL", "catalog", str(e))]
    findings = [Finding("OK", "catalog", f"{catalog.source}: {len(catalog.images)} images, "
                                         f"{len(catalog.sizes)} sizes, "
                                         f"{len(catalog.domains)} domains")]
    checks: list[Callable[[], Finding]] = [check_mode, check_login, check_limits, check_gpus,
                                           check_proxy, check_balancer, check_command]
    findings += [check() for check in checks]
    findings += check_envs(catalog)
    return findings


def doctor_command(catalog_path: str | None = None) -> int:
    print(f"StudioHub doctor ({paths().prefix})")
    findings = run_checks(catalog_path)
    width = max((len(f.topic) for f in findings), default=0)
    for f in findings:
        print(f"  {f.level:<4}  {f.topic:<{width}}  {f.text}")
    return 1 if any(f.level == "FAIL" for f in findings) else 0
