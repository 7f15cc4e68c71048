"""The hub process ``studiohub up`` runs: JupyterHub, stopping within seconds.

JupyterHub stops its managed services one after the other, each with SIGINT, then
polls with an exponential back-off (0.1, 0.2 … 3.2 s) up to ``interrupt_timeout``
(10 s) before SIGTERM, and the interpreter's teardown after that took seconds more:
``Ctrl-C`` on ``studiohub up`` took 10–60 s on a loaded machine. Here every managed
service gets SIGTERM at once and is polled every 50 ms (SIGKILL after
:data:`SERVICE_GRACE`), so JupyterHub's own cleanup then finds them gone; and once the
cleanup is done (database committed, proxy stopped, logs flushed) the process exits
without the teardown. Users' servers are left running, as ``cleanup_servers=False`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jupyterhub.app import JupyterHub
from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado import web

from . import pidrecords

#: Seconds a managed service has to exit on SIGTERM before SIGKILL.
SERVICE_GRACE = 5.0


async def stop_process(pid: int, proc: Any, grace: float = SERVICE_GRACE) -> None:
    """SIGTERM ``pid``'s process group (its own session), SIGKILL it after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


#: Error lines JupyterHub's parts write for a user's mistake (FirstUseAuthenticator's
#: refused first password): warnings, as a 4xx is.
USER_MISTAKES = ("Password too short",)


class RefusalsWithoutTraceback(logging.Filter):
    """A refusal JupyterHub's own code logs with its traceback (a 4xx ``HTTPError`` such as
    a spawn form's bad choice, a body that is not JSON) becomes one warning line with the
    reason: the client's mistake, not the hub's. Errors (5xx, anything else) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(USER_MISTAKES):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, web.HTTPError) and error.status_code < 500:
            reason = f"{error.status_code} {_said(error)}"
        elif isinstance(error, ValueError) and record.msg == "Couldn't parse JSON":
            reason = f"400 {error}"
        else:
            return True
        record.msg, record.args = f"{record.getMessage()}: {reason.strip()}", None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: Warnings JupyterHub prints on every StudioHub start about StudioHub's own deliberate
#: configuration (docs/architecture.md says why each is so): info lines, not warnings.
EXPECTED_AT_START = (
    "JupyterHub.extra_handlers is deprecated",  # the hub's StudioHub API (hubapi.py)
    "to complete OAuth without confirmation",  # StudioHub's own services, trusted
    "Adding missing route for",  # a fresh proxy has no routes yet
)


class ExpectedNotes(logging.Filter):
    """:data:`EXPECTED_AT_START` as info lines: a start with nothing wrong is quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(
                note in str(record.msg) for note in EXPECTED_AT_START):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _said(error: web.HTTPError) -> str:
    """What an ``HTTPError`` says (its message with its arguments, as tornado logs it)."""
    message = error.log_message or error.reason or ""
    try:
        return message % error.args if error.args else message
    except (TypeError, ValueError):
        return message


class StudioHubApp(JupyterHub):
    """JupyterHub whose shutdown stops its managed services at once, and whose log keeps
    tracebacks for errors (:class:`RefusalsWithoutTraceback`)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> None:
        # Before the config is loaded: a deprecation note is logged while it is.
        self.log.addFilter(RefusalsWithoutTraceback())
        self.log.addFilter(ExpectedNotes())
        await super().initialize(*args, **kwargs)

    async def cleanup(self) -> None:
        running = [s for s in self._service_map.values()
                   if s.managed and s.spawner is not None and s.proc is not None]
        for service in running:
            service.spawner.stop_polling()  # a stopped service is not restarted
        if running:
            self.log.info("Stopping %i services at once", len(running))
            await asyncio.gather(*(stop_process(s.proc.pid, s.proc) for s in running))
        await super().cleanup()


class StudioProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy whose pid file, in ``state/``, is the hub's alone (0600),
    recorded with its start time as well (``state/run/proxy.pid``), so that the next
    ``studiohub up`` after a crash stops this very process and no other."""

    def _write_pid_file(self) -> None:
        fd = os.open(self.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(str(self.proxy_process.pid))
        with contextlib.suppress(ProcessLookupError):
            pidrecords.write(Path(self.pid_file).parent / "run", "proxy",
                             self.proxy_process.pid)


def main() -> None:
    StudioHubApp.launch_instance()
    # Cleanup is done: flush the logs and skip the interpreter's slow teardown.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
