"""StudioHub's model endpoints from Python: ``from studiohub import endpoints``.

A thin client of the models service (docs/endpoints.md), for notebooks, scripts and the
``studiohub endpoints`` command::

    ep = endpoints.deploy("iris", model="studiohub-jobs/<id>/outputs/model", replicas=2)
    ep.predict([[5.1, 3.5, 1.4, 0.2]])      # TF Serving's :predict, rows → predictions
    ep.infer({"input": x})                   # the Open Inference Protocol (KServe V2)
    endpoints.deploy("iris", model="models/iris-v2", canary=10)   # version 2 at 10 %
    ep.set_traffic(100); ep.rollback(); ep.delete()

Standard library only, like :mod:`studiohub.training` (whose client it shares): it is
copied into every image environment. Refusals and failures raise :class:`EndpointError`
(a :class:`~studiohub.training.TrainingError`, so code catching that still works). Where
the service is: ``url=``, else ``$STUDIOHUB_MODELS_URL`` (set in every user server), else
derived from ``$JUPYTERHUB_API_URL``; the token: ``token=``, else ``$STUDIOHUB_TOKEN``,
else ``$JUPYTERHUB_API_TOKEN``. An endpoint token (``shm_…``) works for predictions only.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from . import contract
from .training import REQUEST_TIMEOUT, TrainingError, hub_service_url
from .training import Client as _ServiceClient
from .training import api_token as _api_token

__all__ = ["Client", "Endpoint", "EndpointError", "deploy", "get", "list"]

#: Statuses after which a deploy stops waiting.
SETTLED = ("ready", "failed")


class EndpointError(TrainingError):
    """The models service refused (``status`` its HTTP status, ``message`` its words, or
    an endpoint's own ``{"error": …}``) or could not be reached (``status`` 0)."""


@contextlib.contextmanager
def _endpoint_errors() -> Iterator[None]:
    """The shared client's :class:`TrainingError` as an :class:`EndpointError`, with its
    status and message."""
    try:
        yield
    except EndpointError:
        raise
    except TrainingError as e:
        raise EndpointError(e.status, e.message) from None


def api_token(environ: Mapping[str, str] | None = None, option: str = "token=") -> str:
    """The token: ``$STUDIOHUB_TOKEN``, else ``$JUPYTERHUB_API_TOKEN``."""
    with _endpoint_errors():
        return _api_token(environ, option)


def models_url(url: str) -> str:
    """The models service's URL from a hub's (``https://hub/`` or ``…/hub/api``), or a
    ``…/services/<name>/`` URL as given."""
    return hub_service_url(url, "models")


def service_url(environ: Mapping[str, str] | None = None, option: str = "url=") -> str:
    env = os.environ if environ is None else environ
    url = env.get(contract.MODELS_URL, "")
    if url:
        return url if url.endswith("/") else url + "/"
    api = env.get("JUPYTERHUB_API_URL", "")
    if not api:
        raise EndpointError(0, f"where is the models service? set {contract.MODELS_URL} "
                            f"(or JUPYTERHUB_API_URL), or pass {option} with the hub's URL")
    return models_url(api)


def _tolist(value: Any) -> Any:
    """NumPy arrays (and anything with ``tolist``) as JSON lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _tolist(v) for k, v in value.items()}
    if isinstance(value, builtins.list | tuple):
        return [_tolist(v) for v in value]
    return value


class Client(_ServiceClient):
    """One models service and one token."""

    service = "models"

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = models_url(url) if url else service_url()
        self.token = token or api_token()

    def _open(self, method: str, path: str, params: Mapping[str, Any] | None = None,
              body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        with _endpoint_errors():
            return super()._open(method, path, params, body, timeout)

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Any = None) -> Any:
        with _endpoint_errors():
            return super().request(method, path, params, body)

    def endpoint(self, name: str) -> Endpoint:
        return Endpoint(self, self.request("GET", f"api/endpoints/{_name(name)}"))

    def endpoints(self) -> builtins.list[Endpoint]:
        return [Endpoint(self, e) for e in self.request("GET", "api/endpoints")["endpoints"]]

    def deploy(self, name: str, model: str | Mapping[str, str], *, image: str | None = None,
               size: str | None = None, replicas: int | None = None,
               canary: int | None = None,
               check: bool = False) -> Endpoint | None:
        body = {"name": name, "model": model, "image": image, "size": size,
                "replicas": replicas, "canary": canary}
        answer = self.request("POST", "api/endpoints", {"check": "true"} if check else None,
                              {k: v for k, v in body.items() if v is not None})
        return None if check else Endpoint(self, answer)


def _name(name: str) -> str:
    return urllib.parse.quote(str(name), safe="")


class Endpoint:
    """An endpoint as the service last described it; ``refresh()`` asks again."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client, self.data = client, data

    def __repr__(self) -> str:
        return f"<Endpoint {self.name} {self.status} {self.client.url}{self.name}/>"

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def url(self) -> str:
        """Where other programs call it (the hub's address + this path)."""
        return f"{self.client.url}{_name(self.name)}/"

    def refresh(self) -> Endpoint:
        self.data = self.client.request("GET", f"api/endpoints/{_name(self.name)}")
        return self

    def wait(self, timeout: float = 900, interval: float = 1.0, progress: bool = False
             ) -> Endpoint:
        """Until no version is starting (ready or failed); ``progress``: a line a change."""
        deadline, last = time.monotonic() + timeout, ""
        while True:
            self.refresh()
            line = ", ".join(_progress(v) for v in self.data["versions"]
                             if v["status"] in ("starting", "serving"))
            if progress and line != last:
                print(f"{self.name}: {line or self.status}", flush=True)
                last = line
            if self.status in SETTLED:
                return self
            if time.monotonic() > deadline:
                raise EndpointError(0, f"{self.name} still {self.status} after {timeout:.0f} s")
            time.sleep(interval)

    def predict(self, instances: Any, version: int | None = None) -> Any:
        """TF Serving's ``:predict`` with rows (``instances``): the ``predictions``."""
        path = f"v1/models/{_name(self.name)}" + (f"/versions/{int(version)}"
                                                  if version is not None else "")
        answer = self.client.request("POST", f"{_name(self.name)}/{path}:predict",
                                     body={"instances": _tolist(instances)})
        return answer["predictions"]

    def infer(self, inputs: Mapping[str, Any], version: int | None = None) -> dict[str, Any]:
        """The Open Inference Protocol's ``infer``: ``{input name: array}`` → the answer's
        ``{output name: rows}``, nested to each output's shape as :meth:`predict`'s are
        (the inputs' datatypes as the model's metadata says)."""
        meta = self.metadata()
        types = {i["name"]: i for i in meta.get("inputs", [])}
        body = {"inputs": [_v2_input(n, v, types.get(n)) for n, v in inputs.items()]}
        path = f"v2/models/{_name(self.name)}" + (f"/versions/{int(version)}"
                                                  if version is not None else "")
        answer = self.client.request("POST", f"{_name(self.name)}/{path}/infer", body=body)
        return {o["name"]: _nest(o["data"], o.get("shape") or []) for o in answer["outputs"]}

    def metadata(self) -> dict[str, Any]:
        """The model's inputs and outputs (V2 metadata)."""
        meta: dict[str, Any] = self.client.request(
            "GET", f"{_name(self.name)}/v2/models/{_name(self.name)}")
        return meta

    def set_traffic(self, canary: int) -> Endpoint:
        """The newest version's share of requests (100: it takes all; the older retires)."""
        self.data = self.client.request("POST", f"api/endpoints/{_name(self.name)}/traffic",
                                        body={"canary": canary})
        return self

    def rollback(self) -> Endpoint:
        self.data = self.client.request("POST", f"api/endpoints/{_name(self.name)}/rollback")
        return self

    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = self.client.request(
            "GET", f"api/endpoints/{_name(self.name)}/metrics")
        return metrics

    def logs(self, version: int | None = None, replica: str = "replica-0") -> str:
        with self.client._open("GET", f"api/endpoints/{_name(self.name)}/logs",
                               {"version": version, "replica": replica}) as response:
            return str(response.read().decode(errors="replace"))

    def create_token(self, note: str = "") -> dict[str, Any]:
        """A token that opens this endpoint only (shown once); revoke it by its id.
        ``note``: what will use it, shown by :meth:`tokens`."""
        token: dict[str, Any] = self.client.request(
            "POST", f"api/endpoints/{_name(self.name)}/tokens", body={"note": note})
        return token

    def tokens(self) -> builtins.list[dict[str, Any]]:
        """This endpoint's tokens: ``{id, created, note}`` (never their secret)."""
        found: builtins.list[dict[str, Any]] = self.client.request(
            "GET", f"api/endpoints/{_name(self.name)}/tokens")["tokens"]
        return found

    def revoke_token(self, token_id: str) -> None:
        self.client.request("DELETE", f"api/endpoints/{_name(self.name)}/tokens/"
                                      f"{_name(token_id)}")

    def delete(self) -> None:
        self.client.request("DELETE", f"api/endpoints/{_name(self.name)}")


def _progress(version: Mapping[str, Any]) -> str:
    """``version 2 starting (1/2 ready)``."""
    ready = sum(r["state"] == "ready" for r in version["replicas"])
    return f"version {version['version']} {version['status']} ({ready}/" \
           f"{len(version['replicas'])} ready)"


def _v2_input(name: str, value: Any, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    data = _tolist(value)
    shape, probe = [], data
    while isinstance(probe, builtins.list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    datatype = (meta or {}).get("datatype") or ("FP32" if isinstance(probe, float) else
                                                "INT64" if isinstance(probe, int) else "BYTES")
    flat: builtins.list[Any] = data if not shape else _flatten(data)
    return {"name": name, "shape": shape, "datatype": datatype, "data": flat}


def _nest(flat: builtins.list[Any], shape: builtins.list[int]) -> Any:
    """V2's flat row-major ``data`` as nested lists of ``shape`` (as sent when it does
    not fit: the protocol's answer is the server's, not ours to refuse)."""
    if len(shape) < 2 or math.prod(shape) != len(flat):
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _flatten(value: Any) -> builtins.list[Any]:
    if not isinstance(value, builtins.list):
        return [value]
    return [x for v in value for x in _flatten(v)]


def deploy(name: str, model: str | Mapping[str, str], *, image: str | None = None,
           size: str | None = None, replicas: int | None = None,
           canary: int | None = None,
           wait: bool = True, url: str | None = None, token: str | None = None) -> Endpoint:
    """Deploy ``model`` (a folder or file in your home, or ``{"job": id, "path": p}``) as
    endpoint ``name``, or as its next version; ``wait``: until it serves or failed."""
    endpoint = Client(url, token).deploy(name, model, image=image, size=size,
                                         replicas=replicas, canary=canary)
    assert endpoint is not None
    return endpoint.wait() if wait else endpoint


def get(name: str, url: str | None = None, token: str | None = None) -> Endpoint:
    return Client(url, token).endpoint(name)


def list(url: str | None = None, token: str | None = None) -> builtins.list[Endpoint]:
    return Client(url, token).endpoints()
