"""StudioHub's training jobs from Python: ``from studiohub import training``.

A thin client of the jobs service's REST API (docs/training.md), for notebooks, scripts
and the ``studiohub jobs`` command::

    job = training.submit(script="train.py", image="pytorch", size="small", workers=2)
    for line in job.logs():          # streamed until the job ends
        print(line)
    job.wait()                       # -> the job, final
    job.watch()                      # in a notebook: a live progress view (ipywidgets)
    job.delete()                     # once finished: its logs and snapshot go, outputs stay

**Standard library only** (``ipywidgets`` is imported by :func:`watch` alone): this
module, :mod:`studiohub.contract` and :mod:`studiohub.checkpoints` are what every image
environment's kernels and job replicas import, as a small ``studiohub`` package
:func:`studiohub.sdk.install_sdk` copies into each environment's site-packages
(``studiohub env build``); they run on the image's Python, without the hub's packages.

Where the service is: ``url=``, else ``$STUDIOHUB_JOBS_URL`` (set in every user server),
else derived from ``$JUPYTERHUB_API_URL`` (``…/hub/api`` → ``…/services/jobs/``). The
token: ``token=``, else ``$STUDIOHUB_TOKEN``, else ``$JUPYTERHUB_API_TOKEN`` (set in a
user's server and its kernels). Errors are :class:`TrainingError` with the service's
``{status, message}``.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from . import contract

#: Statuses after which a job never changes (the service's ``Status.final``).
FINAL = ("succeeded", "failed", "cancelled")
#: How long a followed log stream may be silent before the client checks for a new
#: attempt (a retried job's next attempt writes a new log).
IDLE_CHECK = 2.0
REQUEST_TIMEOUT = 30.0
#: ``studiohub jobs logs -f`` exits with the job's outcome.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}


class TrainingError(Exception):
    """The service refused (``status`` its HTTP status, ``message`` its words) or could not
    be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"{message} ({status})" if status else message)


def service_url(environ: Mapping[str, str] | None = None, option: str = "url=") -> str:
    """The jobs service's base URL (ending in ``/``), from the environment; ``option``:
    what the caller's user passes instead (the CLI says ``--url``)."""
    env = os.environ if environ is None else environ
    url = env.get(contract.JOBS_URL, "")
    if url:
        return url if url.endswith("/") else url + "/"
    api = env.get("JUPYTERHUB_API_URL", "")
    if not api:
        raise TrainingError(0, f"where is the jobs service? set {contract.JOBS_URL} (or "
                            f"JUPYTERHUB_API_URL), or pass {option} with the hub's URL")
    return jobs_url(api)


def jobs_url(url: str) -> str:
    """The jobs service's URL from a hub's: ``https://hub.example.org/`` or its API
    (``…/hub/api``) → ``…/services/jobs/``; a ``…/services/<name>/`` URL as given."""
    return hub_service_url(url, "jobs")


def hub_service_url(url: str, service: str) -> str:
    """A hub service's URL from the hub's (or its API's); a service URL as given."""
    parts = urllib.parse.urlsplit(url)
    base = parts.path.rstrip("/")
    if "/services/" in base + "/":
        return url if url.endswith("/") else url + "/"
    for tail in ("/hub/api", "/hub"):
        if base.endswith(tail):
            base = base[:-len(tail)]
            break
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc,
                                    f"{base}/services/{service}/", "", ""))


def api_token(environ: Mapping[str, str] | None = None, option: str = "token=") -> str:
    env = os.environ if environ is None else environ
    token = env.get(contract.API_TOKEN) or env.get("JUPYTERHUB_API_TOKEN") or ""
    if not token:
        raise TrainingError(0, f"no API token: set {contract.API_TOKEN} (a token from the "
                            f"hub's Token page) or pass {option}")
    return token


class Client:
    """One jobs service and one user's token (:class:`studiohub.endpoints.Client` is the
    same client for the models service)."""

    #: The service's name in messages.
    service = "jobs"

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = jobs_url(url) if url else service_url()
        self.token = token or api_token()

    # --- HTTP -------------------------------------------------------------------------

    def _open(self, method: str, path: str, params: Mapping[str, Any] | None = None,
              body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items()
                                        if v is not None})
        url = self.url + path + (f"?{query}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise _refusal(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TrainingError(0, f"cannot reach the {self.service} service at {self.url}: "
                                f"{reason}") from None

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Any = None) -> Any:
        """A JSON call; the answer's JSON."""
        with self._open(method, path, params, body) as response:
            raw = response.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise TrainingError(0, f"the {self.service} service answered {path} with "
                                f"something that is not JSON: {raw[:80]!r}") from None

    # --- the API ----------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any], check: bool = False) -> Job | None:
        """Submit a spec (docs/training.md); ``check``: the dry run, None when it would
        be accepted (a refusal raises)."""
        answer = self.request("POST", "api/jobs", {"check": "true" if check else None},
                              dict(spec))
        return None if check else Job(self, answer)

    def get(self, job_id: str) -> Job:
        return Job(self, self.request("GET", f"api/jobs/{_id(job_id)}"))

    def list(self, user: str | None = None) -> builtins.list[Job]:
        answer = self.request("GET", "api/jobs", {"user": user})
        return [Job(self, j) for j in answer.get("jobs", [])]

    def cancel(self, job_id: str) -> Job:
        return Job(self, self.request("POST", f"api/jobs/{_id(job_id)}/cancel"))

    def rerun(self, job_id: str) -> Job:
        return Job(self, self.request("POST", f"api/jobs/{_id(job_id)}/rerun"))

    def delete(self, job_id: str, outputs: bool = False) -> None:
        """Forget a finished job (a running one is refused: cancel it first): its logs
        and code snapshot go; its outputs, checkpoints and TensorBoard files stay in
        ``~/studiohub-jobs/<id>/`` unless ``outputs``."""
        self.request("DELETE", f"api/jobs/{_id(job_id)}",
                     {"outputs": "true" if outputs else None})

    def events(self, job_id: str) -> builtins.list[dict[str, Any]]:
        events: builtins.list[dict[str, Any]] = \
            self.request("GET", f"api/jobs/{_id(job_id)}/events").get("events", [])
        return events

    def metrics(self, job_id: str) -> dict[str, Any]:
        tags: dict[str, Any] = \
            self.request("GET", f"api/jobs/{_id(job_id)}/metrics").get("tags", {})
        return tags

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0) -> Job:
        """Poll until the job ends; :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.final:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:g} s")
            time.sleep(interval if deadline is None else
                       max(0.0, min(interval, deadline - time.monotonic())))

    def log_chunks(self, job_id: str, replica: str | None = None,
                   attempt: int | None = None, follow: bool = True) -> Iterator[bytes]:
        """A replica's output as it arrives. Without ``attempt``, every attempt in turn
        (a retried job's next attempt follows the previous one's end); with ``follow``,
        until the job ends."""
        job = self.get(job_id)
        current = attempt or 1
        while True:
            yield from self._attempt_chunks(job_id, replica, current, follow)
            job = self.get(job_id)
            if attempt is not None or current >= (job.attempt or 1):
                return
            current += 1

    def _attempt_chunks(self, job_id: str, replica: str | None, attempt: int,
                        follow: bool) -> Iterator[bytes]:
        """One attempt's log. A followed stream silent for :data:`IDLE_CHECK` seconds is
        reopened from the same offset, unless the job has moved on to a later attempt
        (then the rest of this one is read and the generator ends)."""
        offset, path = 0, f"api/jobs/{_id(job_id)}/logs"
        while True:
            moved_on = False
            params = {"replica": replica, "attempt": attempt, "offset": offset,
                      "follow": "true" if follow else None}
            try:
                with self._open("GET", path, params,
                                timeout=IDLE_CHECK if follow else REQUEST_TIMEOUT) as resp:
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            return  # the service ended the stream: the job ended
                        offset += len(chunk)
                        yield chunk
            except TimeoutError:  # silent for IDLE_CHECK seconds
                job = self.get(job_id)
                moved_on = (job.attempt or 1) > attempt
            if moved_on:
                follow = False  # read what is left of this attempt, then move on

    def logs(self, job_id: str, replica: str | None = None, attempt: int | None = None,
             follow: bool = True) -> Iterator[str]:
        """A replica's log as lines (without their newline), streamed while it runs."""
        pending = b""
        for chunk in self.log_chunks(job_id, replica, attempt, follow):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")


def _refusal(e: urllib.error.HTTPError) -> TrainingError:
    """The service's ``{status, message}``; a proxy's or hub's page: its status line."""
    try:
        body = json.loads(e.read() or b"{}")
        # {status, message} of the services' APIs; {error} of the prediction protocols.
        message = str(body.get("message") or body.get("error") or e.reason)
    except (ValueError, AttributeError, OSError):
        message = str(e.reason)
    return TrainingError(e.code, message)


def _id(job_id: str) -> str:
    """A job id as a path segment (the service checks it; this only keeps it one)."""
    return urllib.parse.quote(str(job_id), safe="")


class Job:
    """A job as the service last described it; ``refresh()`` asks again."""

    def __init__(self, client: Client, data: Mapping[str, Any]) -> None:
        self.client, self.data = client, dict(data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<Job {self.data.get('id')} {self.data.get('status')}>"

    @property
    def final(self) -> bool:
        return self.data.get("status") in FINAL

    def refresh(self) -> Job:
        self.data = self.client.get(self.data["id"]).data
        return self

    def wait(self, timeout: float | None = None) -> Job:
        self.data = self.client.wait(self.data["id"], timeout).data
        return self

    def logs(self, replica: str | None = None, attempt: int | None = None,
             follow: bool = True) -> Iterator[str]:
        return self.client.logs(self.data["id"], replica, attempt, follow)

    def events(self) -> builtins.list[dict[str, Any]]:
        return self.client.events(self.data["id"])

    def metrics(self) -> dict[str, Any]:
        return self.client.metrics(self.data["id"])

    def cancel(self) -> Job:
        self.data = self.client.cancel(self.data["id"]).data
        return self

    def rerun(self) -> Job:
        return self.client.rerun(self.data["id"])

    def delete(self, outputs: bool = False) -> None:
        """Forget this finished job (see :meth:`Client.delete`)."""
        self.client.delete(self.data["id"], outputs)

    def watch(self, interval: float = 1.0) -> Any:
        return watch(self, interval=interval)


# --- module-level functions on a default client ---------------------------------------

_default: Client | None = None


def client(url: str | None = None, token: str | None = None) -> Client:
    """The default client (from the environment), or one for ``url``/``token``."""
    global _default
    if url or token:
        return Client(url, token)
    if _default is None:
        _default = Client()
    return _default


def submit(spec: Mapping[str, Any] | None = None, **fields: Any) -> Job:
    """Submit a job: a spec mapping and/or its fields as keywords (keywords win)."""
    job = client().submit({**(spec or {}), **fields})
    assert job is not None
    return job


def check(spec: Mapping[str, Any] | None = None, **fields: Any) -> None:
    """The dry run: raises :class:`TrainingError` with the reason a submit would fail."""
    client().submit({**(spec or {}), **fields}, check=True)


def get(job_id: str) -> Job:
    return client().get(job_id)


def list(user: str | None = None) -> builtins.list[Job]:
    return client().list(user)


def wait(job: Job | str, timeout: float | None = None) -> Job:
    return client().wait(_job_id(job), timeout)


def logs(job: Job | str, replica: str | None = None, attempt: int | None = None,
         follow: bool = True) -> Iterator[str]:
    return client().logs(_job_id(job), replica, attempt, follow)


def cancel(job: Job | str) -> Job:
    return client().cancel(_job_id(job))


def rerun(job: Job | str) -> Job:
    return client().rerun(_job_id(job))


def delete(job: Job | str, outputs: bool = False) -> None:
    """Forget a finished job: its logs and snapshot (its outputs too with ``outputs``)."""
    client().delete(_job_id(job), outputs)


def _job_id(job: Job | str) -> str:
    return str(job.data["id"]) if isinstance(job, Job) else str(job)


# --- the notebook view ----------------------------------------------------------------

TAIL_LINES = 20


def watch(job: Job | str, interval: float = 1.0) -> Any:
    """A live view of a job in a notebook (ipywidgets): status, attempt, reason, latest
    metrics and the log's tail, updated every ``interval`` seconds by a thread until the
    job ends. Returns the widget (a cell's last value shows it)."""
    import ipywidgets as widgets  # only here: the module imports without it

    job = job if isinstance(job, Job) else get(job)
    header = widgets.HTML()
    metrics = widgets.HTML()
    tail = widgets.Textarea(layout=widgets.Layout(width="100%", height="18em"),
                            disabled=True)
    box = widgets.VBox([header, metrics, tail])
    view = _View(job, header, metrics, tail)
    view.render()
    box.studiohub_view = view  # for tests and for stop()
    threading.Thread(target=view.run, args=(interval,), daemon=True).start()
    return box


class _View:
    """The widgets' updates: one thread reads the log stream, the other polls the job."""

    def __init__(self, job: Job, header: Any, metrics: Any, tail: Any) -> None:
        self.job, self.header, self.metrics, self.tail = job, header, metrics, tail
        self.lines: builtins.list[str] = []
        self.tags: dict[str, Any] = {}
        self.stopped = threading.Event()

    def render(self) -> None:
        import html
        d = self.job.data
        reason = f" — {html.escape(str(d.get('reason')))}" if d.get("reason") else ""
        queued = f" ({html.escape(str(d.get('queue_reason')))})" \
            if d.get("status") == "queued" and d.get("queue_reason") else ""
        self.header.value = (f"<b>{html.escape(str(d.get('name') or d.get('id')))}</b> "
                             f"{html.escape(str(d.get('status')))}{queued}{reason} · "
                             f"attempt {d.get('attempt') or 0} of "
                             f"{int(d.get('max_retries') or 0) + 1}")
        rows = "".join(f"<tr><td>{html.escape(tag)}</td><td>{v.get('latest')}</td>"
                       f"<td>step {v.get('step')}</td></tr>"
                       for tag, v in sorted(self.tags.items()))
        self.metrics.value = f"<table>{rows}</table>" if rows else ""
        self.tail.value = "\n".join(self.lines[-TAIL_LINES:])

    def _read_logs(self) -> None:
        try:
            for line in self.job.logs(follow=True):
                self.lines = [*self.lines[-TAIL_LINES:], line]
                if self.stopped.is_set():
                    return
        except TrainingError as e:
            self.lines.append(f"[logs: {e}]")

    def run(self, interval: float) -> None:
        reader = threading.Thread(target=self._read_logs, daemon=True)
        reader.start()
        while not self.stopped.is_set():
            try:
                self.job.refresh()
                self.tags = self.job.metrics()
            except TrainingError as e:
                self.lines.append(f"[{e}]")
            if self.job.final:
                reader.join(timeout=5)
                self.render()
                return
            self.render()
            self.stopped.wait(interval)
