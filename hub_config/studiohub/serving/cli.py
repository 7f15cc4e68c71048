"""``studiohub endpoints deploy|list|describe|logs|predict|traffic|rollback|delete|token``:
the models service from a shell.

Every command is a call of :class:`studiohub.endpoints.Client` (the SDK), so the CLI, the
SDK and the Lab see the same API and refusals. Errors print the service's message and
exit 3, never a traceback. ``deploy`` waits until the version serves (a line each time
its replicas change), exit 1 if it failed; ``--no-wait`` returns at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .. import contract, endpoints
from ..jobs.cli import connection_options, print_table

ERROR_EXIT = 3


def add_endpoints_parser(sub: Any) -> None:
    """``studiohub endpoints …`` under the top-level parser's subcommands."""
    options = {"service": "models", "variable": contract.MODELS_URL}
    parser = sub.add_parser("endpoints", help="deploy models as HTTP endpoints "
                            "(docs/endpoints.md)", parents=[connection_options(None, **options)])
    verbs = parser.add_subparsers(dest="endpoints_command", required=True)
    connection = connection_options(argparse.SUPPRESS, **options)

    def verb(name: str, helptext: str, func: Callable[..., int],
             named: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = verbs.add_parser(name, help=helptext,
                                                      parents=[connection])
        if named:
            p.add_argument("name", help="the endpoint's name")
        p.set_defaults(func=lambda args: run(args, func))
        return p

    deploy = verb("deploy", "deploy a model as an endpoint, or as its next version", _deploy)
    deploy.add_argument("model", help="a model folder or file in your home (a SavedModel, "
                        "TorchScript/.pt2, .onnx, MXNet -symbol.json+.params), e.g. "
                        "studiohub-jobs/<job id>/outputs/model")
    deploy.add_argument("--image", help="catalog image id (default: one with the model's "
                        "framework)")
    deploy.add_argument("--size", help="catalog size id (default: the catalog's default "
                        "for your domain; a new version: the serving one's)")
    deploy.add_argument("--replicas", type=int, default=None,
                        help="replicas (default: 1; a new version: the serving one's)")
    deploy.add_argument("--canary", type=int, metavar="PERCENT",
                        help="the new version's share of requests once ready (default 100)")
    deploy.add_argument("--check", action="store_true", help="only check (the dry run)")
    deploy.add_argument("--no-wait", action="store_true", help="do not wait until it serves")

    lst = verb("list", "your endpoints", _list, named=False)
    lst.add_argument("--json", action="store_true")
    describe = verb("describe", "versions, replicas, traffic", _describe)
    describe.add_argument("--json", action="store_true")
    logs = verb("logs", "a replica's output", _logs)
    logs.add_argument("--version", type=int, help="default: the newest running")
    logs.add_argument("--replica", default="replica-0")
    predict = verb("predict", "send a JSON request ({\"instances\": …} or {\"inputs\": …})",
                   _predict)
    predict.add_argument("data", help="the request's JSON, or @file.json, or - (stdin)")
    predict.add_argument("--version", type=int, help="one version (default: the split)")
    predict.add_argument("--v2", action="store_true",
                         help="the Open Inference Protocol's infer instead of :predict")
    traffic = verb("traffic", "the newest version's share of requests (100: promote)",
                   _traffic)
    traffic.add_argument("percent", type=int)
    verb("rollback", "back to the version before", _rollback)
    verb("delete", "stop an endpoint and forget it (its models stay in your home)", _delete)
    token = verb("token", "create (default), list or revoke endpoint tokens", _token)
    token.add_argument("--list", action="store_true")
    token.add_argument("--revoke", metavar="ID")
    token.add_argument("--note", default="", help="what will use the new token "
                       "(shown by --list), e.g. 'ci pipeline'")
    metrics = verb("metrics", "requests/s, p50/p99 latency, errors per version and replica",
                   _metrics)
    metrics.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, command: Callable[[endpoints.Client, argparse.Namespace],
                                                     int]) -> int:
    try:
        client = endpoints.Client(args.url or endpoints.service_url(option="--url"),
                                  args.token or endpoints.api_token(option="--token"))
        return command(client, args)
    except endpoints.EndpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `… | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _deploy(client: endpoints.Client, args: argparse.Namespace) -> int:
    endpoint = client.deploy(args.name, args.model, image=args.image, size=args.size,
                             replicas=args.replicas, canary=args.canary, check=args.check)
    if endpoint is None:
        print(f"ok: {args.name} would be deployed")
        return 0
    newest = endpoint.data["versions"][0]
    canary = f", then {args.canary} % of the requests" if args.canary is not None else ""
    print(f"{endpoint.name}: version {newest['version']} ({newest['format']} on "
          f"{newest['image']}, {len(newest['replicas'])} x {newest['size']}{canary}) "
          "deploying")
    if args.no_wait:
        return 0
    endpoint.wait(progress=True)
    newest = next(v for v in endpoint.data["versions"] if v["version"] == newest["version"])
    if newest["status"] == "failed":
        print(f"version {newest['version']} failed: {newest['reason']}", file=sys.stderr)
        return 1
    print(f"{endpoint.name}: serving; call {endpoint.url}v1/models/{endpoint.name}:predict "
          f"(TF Serving) or {endpoint.url}v2/models/{endpoint.name}/infer (KServe V2)")
    return 0


def _list(client: endpoints.Client, args: argparse.Namespace) -> int:
    found = client.endpoints()
    if args.json:
        print(json.dumps({"endpoints": [e.data for e in found]}, indent=1))
        return 0
    if not found:
        print("no endpoints: studiohub endpoints deploy NAME MODEL")
        return 0
    rows = [("NAME", "STATUS", "VERSIONS (traffic)", "URL")]
    for e in found:
        split = " ".join(f"v{v['version']}:{v['traffic']}%" for v in e.data["versions"]
                         if v["status"] == "serving") or "-"
        rows.append((e.name, e.status, split, e.url))
    print_table(rows)
    return 0


def _describe(client: endpoints.Client, args: argparse.Namespace) -> int:
    e = client.endpoint(args.name)
    if args.json:
        print(json.dumps(e.data, indent=1))
        return 0
    d = e.data
    print(f"{'name:':10}{d['name']}  ({d['status']}, domain {d['domain']})")
    print(f"{'url:':10}{e.url}")
    for v in d["versions"]:
        print(f"version {v['version']}: {v['status']:8} {v['traffic']:3}%  {v['format']} on "
              f"{v['image']}/{v['size']}  from {v['source']}"
              + (f"  — {v['reason']}" if v["reason"] else ""))
        for r in v["replicas"]:
            print(f"    {r['name']}: {r['state']}" + (f", {r['restarts']} restarts"
                                                       if r["restarts"] else "")
                  + (f" ({r['reason']})" if r["reason"] else ""))
    return 0


def _logs(client: endpoints.Client, args: argparse.Namespace) -> int:
    sys.stdout.write(client.endpoint(args.name).logs(args.version, args.replica))
    return 0


def _read_data(value: str) -> Any:
    if value == "-":
        text = sys.stdin.read()
    elif value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise endpoints.EndpointError(0, f"cannot read {value[1:]}: {e}") from None
    else:
        text = value
    try:
        return json.loads(text)
    except ValueError as e:
        raise endpoints.EndpointError(0, f"the request is not JSON: {e}") from None


def _predict(client: endpoints.Client, args: argparse.Namespace) -> int:
    data = _read_data(args.data)
    name = endpoints._name(args.name)
    pinned = f"/versions/{args.version}" if args.version is not None else ""
    path = f"{name}/v2/models/{name}{pinned}/infer" if args.v2 else \
        f"{name}/v1/models/{name}{pinned}:predict"
    print(json.dumps(client.request("POST", path, body=data)))
    return 0


def _traffic(client: endpoints.Client, args: argparse.Namespace) -> int:
    e = client.endpoint(args.name).set_traffic(args.percent)
    print(" ".join(f"v{v['version']}:{v['traffic']}%" for v in e.data["versions"]
                   if v["status"] == "serving"))
    return 0


def _rollback(client: endpoints.Client, args: argparse.Namespace) -> int:
    e = client.endpoint(args.name).rollback()
    print(f"{e.name}: rolling back; `studiohub endpoints describe {e.name}` shows it")
    return 0


def _delete(client: endpoints.Client, args: argparse.Namespace) -> int:
    client.endpoint(args.name).delete()
    print(f"{args.name}: deleted")
    return 0


def _token(client: endpoints.Client, args: argparse.Namespace) -> int:
    e = client.endpoint(args.name)
    if args.revoke:
        e.revoke_token(args.revoke)
        print(f"token {args.revoke} revoked")
    elif args.list:
        rows = [("ID", "CREATED", "NOTE")]
        rows += [(t["id"], t["created"], t.get("note", "")) for t in e.tokens()]
        print_table(rows)
    else:
        t = e.create_token(args.note)
        print(f"token {t['id']} (shown once; send it as 'Authorization: Bearer <token>'):")
        print(t["token"])
    return 0


def _metrics(client: endpoints.Client, args: argparse.Namespace) -> int:
    found = client.endpoint(args.name).metrics()
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    if not found["versions"]:
        print(f"{args.name}: no predictions yet")
        return 0
    rows: list[tuple[str, ...]] = [("VERSION", "REPLICA", "REQUESTS", "REQ/S", "P50 MS",
                                    "P99 MS", "5XX ERRORS", "REFUSED")]

    def row(version: str, replica: str, f: dict[str, Any]) -> tuple[str, ...]:
        return (version, replica, str(f["requests"]), f"{f['rps']:g}", f"{f['p50_ms']:.2f}",
                f"{f['p99_ms']:.2f}", str(f["errors"]), str(f["refused"]))

    for number, v in found["versions"].items():
        rows.append(row(f"v{number}", "(all)", v))
        rows += [row("", name, r) for name, r in v["replicas"].items()]
    print_table(rows)
    return 0
