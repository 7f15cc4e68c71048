"""The bad-input corpus: every StudioHub endpoint × the inputs that broke one of them.

Issue 12 found 16 inputs answered with a 500 and others echoed megabytes back. Each
endpoint here is listed once, with where its input goes (a JSON body, a query argument,
a path part); each input is built for that place. :func:`cases` crosses them, so each
(endpoint, input) pair is one test id, and ``tests/integration/test_bad_input.py`` runs
them against one real hub. Every case is a request that must be refused: a 4xx
``{status, message}`` with a short message, and nothing changed.

Endpoints are written with placeholders filled by the test's fixtures: ``{user}`` (a
user with a running server), ``{idle}`` (a user without one), ``{share}`` (a share of
``{user}``'s), ``{kernel}`` (a kernel id that was never placed), ``{tb}`` (a TensorBoard
id that does not exist), ``{job}`` (a training job of ``{user}``'s that has ended).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Where a request goes: the hub's API, the user's server (Lab extension), the service.
HUB, LAB, SHARING = "/hub/api", "/user/{user}/studiohub/api/v1", "/services/sharing/api/v1"
JOBS = "/services/jobs/api"
MODELS = "/services/models/api"
#: An endpoint name of the service's form that names no endpoint.
MISSING_ENDPOINT = "corpus-missing"
#: A deploy spec, spoiled at ``model`` (the notebook is no model either way: refused).
ENDPOINT_SPEC = {"name": "corpus", "model": "nb.ipynb"}
TWENTY_MB = 20 * 1024 * 1024
LONG_PATH = "a/" * 2499 + "x"  # 4,999 characters, as a path
MISSING_KERNEL = "00000000-0000-4000-8000-000000000000"
#: A notebook name in the user's home linking into a directory the user cannot read.
UNREADABLE_LINK = "secret-link.ipynb"
#: A job id of the service's form that names no job.
MISSING_JOB = "000000000000"
#: A valid training job spec (a notebook the corpus's user has), spoiled at ``notebook``.
JOB_SPEC = {"image": "base", "size": "tiny", "notebook": "nb.ipynb"}


@dataclass(frozen=True)
class Endpoint:
    """One route and method, and where its input goes.

    ``body``: a valid body (apart from what an input spoils), or None when the endpoint
    reads no body; ``key``: the key inputs spoil; ``query``: query arguments it reads;
    ``path``: whether its last path part is an id worth spoiling; ``big``: whether the
    20 MB inputs are sent here too (a few endpoints, to keep the run short)."""

    id: str
    method: str
    url: str
    body: dict[str, Any] | None = None
    key: str = ""
    query: tuple[str, ...] = ()
    path: bool = False
    big: bool = False
    notebook: bool = False  # the body carries a notebook (nested metadata goes there)
    empty_ok: bool = False  # an empty body is a valid request here (copy the latest)
    missing: bool = False  # the URL as written names something that does not exist
    restarts: bool = False  # an accepted request would restart the server: run these last
    deletes: bool = False  # an accepted request would delete the corpus's job: these last


@dataclass(frozen=True)
class Input:
    """A bad input: how it makes the request's URL and body from the endpoint's."""

    id: str
    applies: Callable[[Endpoint], bool]
    url: Callable[[Endpoint], str] = lambda e: e.url
    body: Callable[[Endpoint], bytes | None] = lambda e: None
    big: bool = False


@dataclass(frozen=True)
class Case:
    endpoint: Endpoint
    input: Input
    marks: tuple[Any, ...] = field(default=())

    @property
    def id(self) -> str:
        return f"{self.endpoint.id}-{self.input.id}"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate travels as \ud800


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def spoiled(e: Endpoint, value: Any) -> bytes:
    """The endpoint's valid body with its key set to ``value`` (in a list where the
    valid value is a list, e.g. TensorBoard ``folders``)."""
    body = e.body or {}
    return _json({**body, e.key: [value] if isinstance(body.get(e.key), list) else value})


def huge_number(e: Endpoint) -> bytes:
    """A 5,000-digit number (past ``int()``'s 4,300 digits), where the key's value goes."""
    return spoiled(e, "__number__").replace(b'"__number__"', b"9" * 5000)


def deep_metadata(e: Endpoint) -> bytes:
    """A notebook whose metadata nests 900 levels (issue 12.4)."""
    body = dict(e.body or {})
    body["notebook"] = {**body["notebook"], "metadata": nested(900)}
    return _json(body)


def with_query(e: Endpoint, name: str, value: str) -> str:
    return f"{e.url}{'&' if '?' in e.url else '?'}{name}={value}"


def last_part(e: Endpoint, value: str) -> str:
    return e.url.rsplit("/", 1)[0] + "/" + value


def _body(e: Endpoint) -> bool:
    return e.body is not None


#: The inputs, each built for the place it goes.
INPUTS: list[Input] = [
    # --- JSON bodies -------------------------------------------------------------------------
    Input("deep-array", _body, body=lambda e: b"[" * 100_000),
    Input("deep-value", _body, body=lambda e: spoiled(e, nested(900))),
    Input("deep-metadata", lambda e: e.notebook, body=deep_metadata),
    Input("nul", _body, body=lambda e: spoiled(e, "a\x00b.ipynb")),
    Input("long-path", _body, body=lambda e: spoiled(e, LONG_PATH)),
    Input("surrogate", _body, body=lambda e: spoiled(e, "\ud800.ipynb")),
    Input("surrogate-key", _body, body=lambda e: _json({**(e.body or {}), "\udfff": 1})),
    Input("wrong-type", _body, body=lambda e: spoiled(e, [[1], {"a": None}, 2.5])),
    Input("huge-number", _body, body=huge_number),
    Input("unknown-key", _body, body=lambda e: _json({"no-such-key": 1})),
    Input("not-json", _body, body=lambda e: b"{not json"),
    Input("not-utf8", _body, body=lambda e: b'{"a": "\xff\xfe"}'),
    Input("nan", _body, body=lambda e: b'{"a": NaN}'),
    Input("not-an-object", _body, body=lambda e: b"[1, 2, 3]"),
    Input("empty", lambda e: _body(e) and not e.empty_ok, body=lambda e: b""),
    Input("unreadable-symlink", lambda e: (e.key == "path" and e.id.startswith("lab-sharing"))
          or (e.key == "notebook" and e.id.endswith("jobs-submit")),
          body=lambda e: spoiled(e, UNREADABLE_LINK)),
    Input("20mb-value", lambda e: e.big, body=lambda e: spoiled(e, "x" * TWENTY_MB), big=True),
    Input("20mb-key", lambda e: e.big, body=lambda e: _json({"k" * TWENTY_MB: 1}), big=True),
    # --- query arguments ---------------------------------------------------------------------
    Input("query-bogus", lambda e: bool(e.query),
          url=lambda e: with_query(e, e.query[0], "bogus"),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("query-long", lambda e: bool(e.query),
          url=lambda e: with_query(e, e.query[0], "9" * 5000),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("query-nul", lambda e: bool(e.query), url=lambda e: with_query(e, e.query[0], "%00"),
          body=lambda e: None if e.body is None else _json(e.body)),
    # --- path parts --------------------------------------------------------------------------
    Input("missing-id", lambda e: e.missing,
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("user-long", lambda e: e.url.startswith(f"{HUB}/studiohub/"),
          url=lambda e: e.url.replace("{user}", "u" * 5000),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("user-nul", lambda e: e.url.startswith(f"{HUB}/studiohub/"),
          url=lambda e: e.url.replace("{user}", "a%00b"),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("path-malformed", lambda e: e.id == "lab-kernel", url=lambda e: last_part(e, "-" * 36)),
    Input("path-long", lambda e: e.path and not e.id.startswith("lab"),
          url=lambda e: last_part(e, "9" * 5000),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("path-nul", lambda e: e.path and not e.id.startswith("lab"),
          url=lambda e: last_part(e, "a%00b"),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("path-surrogate", lambda e: e.path and not e.id.startswith("lab"),
          url=lambda e: last_part(e, "%ED%A0%80"),
          body=lambda e: None if e.body is None else _json(e.body)),
    # --- a training job's id, inside the path --------------------------------------------------
    Input("job-missing", lambda e: "{job}" in e.url,
          url=lambda e: e.url.replace("{job}", MISSING_JOB),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("job-long", lambda e: "{job}" in e.url and not e.id.startswith("lab"),
          url=lambda e: e.url.replace("{job}", "9" * 5000),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("job-nul", lambda e: "{job}" in e.url and not e.id.startswith("lab"),
          url=lambda e: e.url.replace("{job}", "a%00b"),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("job-surrogate", lambda e: "{job}" in e.url and not e.id.startswith("lab"),
          url=lambda e: e.url.replace("{job}", "%ED%A0%80"),
          body=lambda e: None if e.body is None else _json(e.body)),
    Input("job-dots", lambda e: "{job}" in e.url and not e.id.startswith("lab"),
          url=lambda e: e.url.replace("{job}", "..%2F..%2Fjobs"),
          body=lambda e: None if e.body is None else _json(e.body)),
]


def notebook() -> dict[str, Any]:
    """A small valid notebook, as JupyterLab saves it."""
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "hi"}]}


#: Every StudioHub endpoint that takes input, with a valid body where it takes one.
ENDPOINTS: list[Endpoint] = [
    # The hub's API (studiohub/hubapi.py) and the hub's own spawn with {image, size}.
    Endpoint("hub-kernel-options", "GET", f"{HUB}/studiohub/users/{{user}}/kernel-options"),
    Endpoint("hub-kernels", "POST", f"{HUB}/studiohub/users/{{user}}/kernels",
             {"kernel_id": MISSING_KERNEL, "image": "base", "size": "tiny"}, "image", big=True),
    Endpoint("hub-kernel-delete", "DELETE", f"{HUB}/studiohub/users/{{user}}/kernels/{{kernel}}",
             path=True, missing=True),
    Endpoint("hub-server-restart", "POST", f"{HUB}/studiohub/users/{{user}}/server-restart",
             {"image": "base", "size": "tiny", "check": True}, "size", restarts=True),
    Endpoint("hub-spawn", "POST", f"{HUB}/users/{{idle}}/server", {"size": "tiny"}, "image",
             big=True, empty_ok=True),  # no body: the default server, as JupyterHub has it
    # The Lab extension in the user's server (studiohub_lab).
    # (``info`` and ``kernel-options`` read no input: nothing of theirs to spoil.)
    Endpoint("lab-kernel", "GET", f"{LAB}/kernels/{MISSING_KERNEL}", path=True, missing=True),
    Endpoint("lab-kernel-choices", "POST", f"{LAB}/kernel-choices",
             {"path": "nb.ipynb", "image": "base", "size": "tiny"}, "path"),
    Endpoint("lab-server-restart", "POST", f"{LAB}/server-restart", {}, "image",
             restarts=True),
    Endpoint("lab-tensorboards", "POST", f"{LAB}/tensorboards", {"folders": ["runs"]},
             "folders", query=("wait",), big=True),
    Endpoint("lab-tensorboard", "GET", f"{LAB}/tensorboards/{{tb}}", query=("wait",),
             missing=True),
    Endpoint("lab-tensorboard-delete", "DELETE", f"{LAB}/tensorboards/{{tb}}", missing=True),
    Endpoint("lab-tensorboard-restart", "POST", f"{LAB}/tensorboards/{{tb}}/restart",
             query=("wait",), missing=True),
    Endpoint("lab-sharing-shares", "POST", f"{LAB}/sharing/shares",
             {"path": "nb.ipynb", "domain": "team-a"}, "path", big=True),
    Endpoint("lab-sharing-list", "GET", f"{LAB}/sharing/shares", query=("filter",)),
    Endpoint("lab-sharing-versions", "POST", f"{LAB}/sharing/shares/{{share}}/versions",
             {"path": "nb.ipynb"}, "path"),
    Endpoint("lab-sharing-copy", "POST", f"{LAB}/sharing/shares/{{share}}/copy", {}, "version",
             empty_ok=True),
    # The sharing service (studiohub/sharing/api.py).
    Endpoint("sharing-shares", "POST", f"{SHARING}/shares",
             {"domain": "team-a", "name": "a.ipynb", "notebook": notebook()}, "name",
             big=True, notebook=True),
    Endpoint("sharing-list", "GET", f"{SHARING}/shares", query=("filter",)),
    Endpoint("sharing-share", "GET", f"{SHARING}/shares/{{share}}", path=True),
    Endpoint("sharing-revoke", "DELETE", f"{SHARING}/shares/{{share}}", path=True),
    Endpoint("sharing-versions", "POST", f"{SHARING}/shares/{{share}}/versions",
             {"notebook": notebook()}, "note", notebook=True),
    Endpoint("sharing-version", "GET", f"{SHARING}/shares/{{share}}/versions/1", path=True),
    Endpoint("sharing-copy", "POST", f"{SHARING}/shares/{{share}}/copy", {}, "version",
             empty_ok=True),
    Endpoint("sharing-audit", "GET", f"{SHARING}/audit", query=("limit",)),
    # The training jobs service (studiohub/jobs/api.py): every route, each log argument.
    Endpoint("jobs-submit", "POST", f"{JOBS}/jobs", JOB_SPEC, "notebook", query=("check",),
             big=True),
    Endpoint("jobs-list", "GET", f"{JOBS}/jobs", query=("user",)),
    Endpoint("jobs-job", "GET", f"{JOBS}/jobs/{{job}}"),
    Endpoint("jobs-logs", "GET", f"{JOBS}/jobs/{{job}}/logs", query=("offset",)),
    Endpoint("jobs-logs-follow", "GET", f"{JOBS}/jobs/{{job}}/logs", query=("follow",)),
    Endpoint("jobs-logs-replica", "GET", f"{JOBS}/jobs/{{job}}/logs", query=("replica",)),
    Endpoint("jobs-logs-attempt", "GET", f"{JOBS}/jobs/{{job}}/logs", query=("attempt",)),
    Endpoint("jobs-events", "GET", f"{JOBS}/jobs/{{job}}/events"),
    Endpoint("jobs-metrics", "GET", f"{JOBS}/jobs/{{job}}/metrics"),
    Endpoint("jobs-cancel", "POST", f"{JOBS}/jobs/{{job}}/cancel"),
    Endpoint("jobs-rerun", "POST", f"{JOBS}/jobs/{{job}}/rerun"),
    Endpoint("jobs-delete", "DELETE", f"{JOBS}/jobs/{{job}}", query=("outputs",),
             deletes=True),
    # The models service's management API (studiohub/serving/api.py).
    Endpoint("models-deploy", "POST", f"{MODELS}/endpoints", ENDPOINT_SPEC, "model",
             query=("check",), big=True),
    Endpoint("models-list", "GET", f"{MODELS}/endpoints", query=("user",)),
    Endpoint("models-endpoint", "GET", f"{MODELS}/endpoints/{MISSING_ENDPOINT}", path=True,
             missing=True),
    Endpoint("models-logs", "GET", f"{MODELS}/endpoints/{MISSING_ENDPOINT}/logs",
             query=("offset",), missing=True),
    Endpoint("models-logs-version", "GET", f"{MODELS}/endpoints/{MISSING_ENDPOINT}/logs",
             query=("version",)),
    Endpoint("models-traffic", "POST", f"{MODELS}/endpoints/{MISSING_ENDPOINT}/traffic",
             {"canary": 10}, "canary", missing=True),
    Endpoint("models-delete", "DELETE", f"{MODELS}/endpoints/{MISSING_ENDPOINT}", path=True,
             missing=True),
    # The Lab's endpoints routes (studiohub_lab/endpoints/handlers.py), forwarding to it.
    Endpoint("lab-endpoints-deploy", "POST", f"{LAB}/endpoints", ENDPOINT_SPEC, "model",
             query=("check",), big=True),
    Endpoint("lab-endpoints-predict", "POST", f"{LAB}/endpoints/{MISSING_ENDPOINT}/predict",
             {"protocol": "v1", "body": {"instances": [[1.0]]}}, "protocol"),
    # The Lab's training routes (studiohub_lab/training/handlers.py), forwarding to it.
    Endpoint("lab-training-jobs-submit", "POST", f"{LAB}/training/jobs", JOB_SPEC, "notebook",
             query=("check",), big=True),
    Endpoint("lab-training-job", "GET", f"{LAB}/training/jobs/{{job}}"),
    Endpoint("lab-training-delete", "DELETE", f"{LAB}/training/jobs/{{job}}",
             query=("outputs",), deletes=True),
    Endpoint("lab-training-logs-download", "GET", f"{LAB}/training/jobs/{{job}}/logs",
             query=("download",)),
    Endpoint("lab-training-logs", "GET", f"{LAB}/training/jobs/{{job}}/logs",
             query=("offset",)),
    Endpoint("lab-training-logs-follow", "GET", f"{LAB}/training/jobs/{{job}}/logs",
             query=("follow",)),
    Endpoint("lab-training-logs-replica", "GET", f"{LAB}/training/jobs/{{job}}/logs",
             query=("replica",)),
    Endpoint("lab-training-logs-attempt", "GET", f"{LAB}/training/jobs/{{job}}/logs",
             query=("attempt",)),
    Endpoint("lab-training-events", "GET", f"{LAB}/training/jobs/{{job}}/events"),
    Endpoint("lab-training-metrics", "GET", f"{LAB}/training/jobs/{{job}}/metrics"),
    Endpoint("lab-training-cancel", "POST", f"{LAB}/training/jobs/{{job}}/cancel", {}, "x",
             empty_ok=True),
    Endpoint("lab-training-rerun", "POST", f"{LAB}/training/jobs/{{job}}/rerun", {}, "x",
             empty_ok=True),
]


def cases() -> list[Case]:
    """Every (endpoint, input) pair where the input has a place to go; those that would
    delete the corpus's job or restart the server if wrongly accepted come last, so they
    cannot disturb the rest."""
    ordered = sorted(ENDPOINTS, key=lambda e: (e.deletes, e.restarts))
    return [Case(e, i) for e in ordered for i in INPUTS if i.applies(e)]
