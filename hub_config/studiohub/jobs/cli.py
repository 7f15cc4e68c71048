"""``studiohub jobs submit|list|describe|logs|events|cancel|rerun|delete``: the jobs API
from a shell.

Every command is a call of :class:`studiohub.training.Client` (the SDK), so the CLI,
the SDK and the Lab see the same API and the same refusals. A spec comes from flags,
from a YAML or JSON file (``-f spec.yaml``), or both (flags win); the service checks it
(:func:`studiohub.jobs.spec.parse_spec`), the CLI only shapes it. Errors print the
service's message and exit 3 (a usage error: argparse's 2), never a traceback;
``logs -f`` exits with the job's outcome: 0 succeeded, 1 failed, 2 cancelled.
``--url`` and ``--token`` go before or after the verb (:func:`connection_options`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import training

ERROR_EXIT = 3
#: Most bytes of a spec file read (the service refuses specs over 64 KiB anyway).
MAX_SPEC_FILE = 256 * 1024


class CLIError(Exception):
    """A problem the CLI found itself (a bad spec file, a bad ``-p``)."""


def connection_options(default: Any, service: str = "jobs",
                       variable: str = "STUDIOHUB_JOBS_URL") -> argparse.ArgumentParser:
    """``--url`` and ``--token``, as a parent parser: ``jobs`` holds them with ``None`` as
    the default, every verb with ``SUPPRESS`` (a verb sets them only when given there), so
    ``studiohub jobs --url U list`` and ``studiohub jobs list --url U`` both work (the same
    for ``studiohub endpoints``, whose service and variable are given)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", default=default, help="the hub (https://hub.example.org/) "
                         f"or the {service} service's URL (default: ${variable}, or "
                         "derived from $JUPYTERHUB_API_URL)")
    options.add_argument("--token", default=default, help="your API token (default: "
                         "$STUDIOHUB_TOKEN, then $JUPYTERHUB_API_TOKEN)")
    return options


def add_jobs_parser(sub: Any) -> None:
    """``studiohub jobs …`` under the top-level parser's subcommands."""
    jobs = sub.add_parser("jobs", help="submit and follow training jobs (docs/training.md)",
                          parents=[connection_options(None)])
    subparsers = jobs.add_subparsers(dest="jobs_command", required=True)
    connection = connection_options(argparse.SUPPRESS)

    def verb(name: str, helptext: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=helptext, parents=[connection])
        return parser

    submit = verb("submit", "submit a job (flags and/or -f spec.yaml)")
    submit.add_argument("-f", "--file", help="a YAML or JSON spec file (flags override it)")
    entry = submit.add_mutually_exclusive_group()
    entry.add_argument("--notebook", help="a notebook in your home (or the repository)")
    entry.add_argument("--script", help="a Python script")
    entry.add_argument("--module", help="a Python module, run as python -m")
    entry.add_argument("--command", nargs="+", metavar="ARG",
                       help="a command and its arguments (put it last)")
    submit.add_argument("--image", help="catalog image id")
    submit.add_argument("--size", help="catalog size id")
    submit.add_argument("--name", help="a name shown in lists")
    submit.add_argument("--workers", type=int)
    submit.add_argument("--parameter-servers", type=int, dest="parameter_servers")
    submit.add_argument("--max-retries", type=int, dest="max_retries")
    submit.add_argument("--timeout", help="seconds, or 90m, 1h, 2d")
    submit.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter (VALUE read as JSON when it parses: "
                        "-p lr=0.1 is a number, -p name=abc a string)")
    submit.add_argument("--arg", action="append", default=[], metavar="ARG",
                        help="an argument of the script or module (repeat)")
    submit.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the job (repeat)")
    submit.add_argument("--git-url", help="run from this Git repository instead of the home")
    submit.add_argument("--git-ref", help="branch, tag or commit (default HEAD)")
    submit.add_argument("--check", action="store_true",
                        help="only check that the job would be accepted (the dry run)")
    submit.add_argument("--follow", action="store_true",
                        help="then follow its logs (exit with its outcome)")
    submit.set_defaults(func=_wrap(_submit))

    lst = verb("list", "your jobs, newest first")
    lst.add_argument("--user", help="(admins) another user's jobs")
    lst.add_argument("--json", action="store_true", help="the API's JSON")
    lst.set_defaults(func=_wrap(_list))

    describe = verb("describe", "one job's status, reason, replicas, dirs")
    describe.add_argument("job")
    describe.add_argument("--json", action="store_true", help="the API's JSON")
    describe.set_defaults(func=_wrap(_describe))

    logs = verb("logs", "a replica's output")
    logs.add_argument("job")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow until the job ends; exit 0 succeeded, 1 failed, "
                      "2 cancelled")
    logs.add_argument("--replica", help="e.g. worker-1 (default: the first)")
    logs.add_argument("--attempt", type=int, help="one attempt (default: every attempt)")
    logs.set_defaults(func=_wrap(_logs))

    events = verb("events", "queued, placed, started, exited, resumed…")
    events.add_argument("job")
    events.set_defaults(func=_wrap(_events))

    for name, helptext in (("cancel", "stop a job"), ("rerun", "the same spec as a new job")):
        p = verb(name, helptext)
        p.add_argument("job")
        p.set_defaults(func=_wrap(_cancel if name == "cancel" else _rerun))

    delete = verb("delete", "forget a finished job: its logs and code snapshot (its "
                  "outputs and checkpoints stay in your home unless --outputs)")
    delete.add_argument("job")
    delete.add_argument("--outputs", action="store_true",
                        help="also delete ~/studiohub-jobs/<id>/ (outputs, checkpoints, "
                        "TensorBoard files)")
    delete.set_defaults(func=_wrap(_delete))


def run(args: argparse.Namespace, command: Callable[[training.Client, argparse.Namespace],
                                                     int]) -> int:
    """A command with the SDK's and the CLI's errors as one line on stderr."""
    try:
        client = training.Client(args.url or training.service_url(option="--url"),
                                 args.token or training.api_token(option="--token"))
        return command(client, args)
    except (training.TrainingError, CLIError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        return 130


def _wrap(command: Callable[[training.Client, argparse.Namespace], int]) -> Any:
    return lambda args: run(args, command)


# --- the spec -------------------------------------------------------------------------

def read_spec_file(path: str) -> dict[str, Any]:
    """A mapping from a YAML file, or a JSON one (``.json``, parsed as JSON): a malformed
    file, a key given twice or a file that is not a mapping is a :class:`CLIError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_FILE + 1)
    except OSError as e:
        raise CLIError(f"cannot read the spec file {path}: {e.strerror}") from None
    if len(raw) > MAX_SPEC_FILE:
        raise CLIError(f"{path}: larger than {MAX_SPEC_FILE // 1024} KiB; a spec is a few "
                       "lines")
    text = raw.decode("utf-8", errors="replace")
    data = _parse_json(path, text) if path.endswith(".json") else _parse_yaml(path, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CLIError(f"{path}: a job spec is a mapping of fields (image:, size:, "
                       f"script:, …), not a {type(data).__name__}")
    return data


def _unique(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CLIError(f"{key} twice")
        out[key] = value
    return out


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique) if text.strip() else None
    except CLIError as e:
        raise CLIError(f"{path}: malformed JSON: {e}") from None
    except json.JSONDecodeError as e:
        raise CLIError(f"{path}: malformed JSON (line {e.lineno}, column {e.colno}): "
                       f"{e.msg}") from None
    except ValueError as e:  # e.g. a number too long to convert
        raise CLIError(f"{path}: malformed JSON: {e}") from None


def _parse_yaml(path: str, text: str) -> Any:
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            twice = sorted({str(k) for k in keys if keys.count(k) > 1})
            if twice:
                mark = node.start_mark
                raise CLIError(f"{path}: malformed YAML (line {mark.line + 1}): "
                               f"{twice[0]} twice")
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=UniqueKeys)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CLIError(f"{path}: malformed YAML{where}: {problem}") from None


def _pairs(items: list[str], flag: str, as_json: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"{flag} {item!r}: write NAME=VALUE")
        if as_json:
            try:
                out[name] = json.loads(value)
            except ValueError:
                out[name] = value
        else:
            out[name] = value
    return out


def make_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The spec file's fields, then the flags given (flags win)."""
    spec = read_spec_file(args.file) if args.file else {}
    entries = ("notebook", "script", "module", "command")
    if any(getattr(args, k) for k in entries):
        for k in entries:
            spec.pop(k, None)
    for key in (*entries, "image", "size", "name", "workers", "parameter_servers",
                "max_retries"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    if args.timeout is not None:
        spec["timeout"] = int(args.timeout) if args.timeout.isdigit() else args.timeout
    if args.arg:
        spec["args"] = list(args.arg)
    if args.parameter:
        spec["parameters"] = {**(spec.get("parameters") or {}),
                              **_pairs(args.parameter, "-p", True)}
    if args.env:
        spec["env"] = {**(spec.get("env") or {}), **_pairs(args.env, "-e", False)}
    if args.git_url or args.git_ref:
        git = dict(spec.get("git") or {})
        if args.git_url:
            git["url"] = args.git_url
        if args.git_ref:
            git["ref"] = args.git_ref
        spec["git"] = git
    return spec


# --- commands -------------------------------------------------------------------------

def _submit(client: training.Client, args: argparse.Namespace) -> int:
    spec = make_spec(args)
    if args.check:
        client.submit(spec, check=True)
        print("OK: the job would be accepted")
        return 0
    job = client.submit(spec)
    assert job is not None
    print(f"submitted job {job.id} ({job.status})"
          + (f": {job.queue_reason}" if job.queue_reason else ""))
    if args.follow:
        return follow(client, job.id, None, None)
    return 0


def _list(client: training.Client, args: argparse.Namespace) -> int:
    jobs = client.list(args.user)
    if args.json:
        print(json.dumps({"jobs": [j.data for j in jobs]}, indent=1))
        return 0
    rows = [("ID", "STATUS", "ATTEMPT", "IMAGE", "SIZE", "CREATED", "NAME / REASON")]
    for j in jobs:
        why = j.data.get("reason") or j.data.get("queue_reason") or ""
        rows.append((j.id, j.status, str(j.data.get("attempt") or 0),
                     str(j.data.get("image") or ""), str(j.data.get("size") or ""),
                     str(j.data.get("created") or "")[:19],
                     " — ".join(x for x in (j.data.get("name") or "", why) if x)))
    print_table(rows)
    return 0


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _describe(client: training.Client, args: argparse.Namespace) -> int:
    job = client.get(args.job)
    if args.json:
        print(json.dumps(job.data, indent=1))
        return 0
    d = job.data
    for key in ("id", "name", "user", "status", "reason", "queue_reason", "image", "size",
                "domain", "created", "started", "finished"):
        if d.get(key) not in (None, ""):
            print(f"{key + ':':14}{d[key]}")
    print(f"{'attempt:':14}{d.get('attempt') or 0} of {int(d.get('max_retries') or 0) + 1}")
    for r in d.get("replicas") or []:
        state = "running" if r.get("running") else \
            f"exited {r['exit_code']}" if r.get("exit_code") is not None else "not started"
        print(f"{'replica:':14}{r.get('name')} {state}")
    for name, path in (d.get("dirs") or {}).items():
        print(f"{name + ':':14}~/{path}")
    print(f"{'spec:':14}{json.dumps(d.get('spec') or {}, sort_keys=True)}")
    return 0


def _logs(client: training.Client, args: argparse.Namespace) -> int:
    if args.follow:
        return follow(client, args.job, args.replica, args.attempt)
    write_chunks(client.log_chunks(args.job, args.replica, args.attempt, follow=False))
    return 0


def write_chunks(chunks: Any) -> None:
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
        out.flush()


def follow(client: training.Client, job_id: str, replica: str | None,
           attempt: int | None) -> int:
    """Stream the log until the job ends; the job's outcome as the exit status."""
    write_chunks(client.log_chunks(job_id, replica, attempt, follow=True))
    job = client.wait(job_id)  # the stream ends when the job does; its final state
    print(f"job {job.id} {job.status}" + (f": {job.reason}" if job.reason else ""),
          file=sys.stderr)
    return training.EXIT_CODES.get(str(job.status), 1)


def _events(client: training.Client, args: argparse.Namespace) -> int:
    for e in client.events(args.job):
        print(f"{str(e.get('time') or '')[:19]}  {e.get('kind', ''):10}  {e.get('message', '')}")
    return 0


def _cancel(client: training.Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.job)
    print(f"job {job.id} {job.status}" + (f": {job.reason}" if job.reason else ""))
    return 0


def _rerun(client: training.Client, args: argparse.Namespace) -> int:
    job = client.rerun(args.job)
    print(f"submitted job {job.id} ({job.status}), the same spec as {args.job}")
    return 0



def _delete(client: training.Client, args: argparse.Namespace) -> int:
    client.delete(args.job, outputs=args.outputs)
    kept = "" if args.outputs else f"; its outputs and checkpoints stay in ~/studiohub-jobs/" \
        f"{args.job}/"
    print(f"deleted job {args.job}{kept}")
    return 0
