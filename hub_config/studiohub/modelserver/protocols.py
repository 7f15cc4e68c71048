"""The two protocols a replica speaks, as pure functions: routes, request bodies checked
against the model's inputs, and answers.

- TensorFlow Serving's REST API: ``/v1/models/<name>[/versions/<n>]`` (status),
  ``…/metadata``, ``…:predict`` with ``instances`` (rows) or ``inputs`` (columns),
  answered ``predictions`` or ``outputs``.
- The Open Inference Protocol (KServe V2): ``/v2/health/live|ready``, ``/v2``,
  ``/v2/models/<name>[/versions/<n>]`` (metadata), ``…/ready``, ``…/infer``.

Every error is :class:`ProtocolError` with the HTTP status and a message that names
what was expected; both protocols answer it as ``{"error": "..."}``. No numpy here: the
values are plain lists (:mod:`.tensors`), so the checks run before any framework.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from .tensors import (
    DATATYPES,
    BadInput,
    Tensor,
    TensorSpec,
    check_shape,
    check_values,
    flatten,
    guess_datatype,
    nest,
    size_of,
)

#: V2 ``platform`` per format.
PLATFORMS = {"tensorflow-savedmodel": "tensorflow_savedmodel",
             "torchscript": "pytorch_torchscript", "torch-export": "pytorch_torch_export",
             "onnx": "onnxruntime_onnx", "mxnet": "mxnet_symbol"}

_V1 = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                 r"(?P<rest>/metadata|:[A-Za-z]+)?$")
_V2 = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                 r"(?P<rest>/ready|/infer)?$")


class ProtocolError(Exception):
    """An answer other than 200: ``status`` and the message of ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """What a request asks: ``action`` one of live, ready, server, status, metadata,
    predict (v1), model_ready, infer (v2); ``name``/``version`` as in the path."""

    protocol: str
    action: str
    name: str | None = None
    version: str | None = None



@dataclass(frozen=True)
class ModelInfo:
    """The served model as the protocols describe it."""

    name: str
    version: int
    format: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    default_float: str = "FP32"
    signature: str = "serving_default"


def route(method: str, path: str) -> Route:
    """The route of ``method path``; 404 for an unknown path, 405 for a wrong method."""
    post = method == "POST"
    if path in ("/v2/health/live", "/v2/health/ready", "/v2"):
        action = {"/v2/health/live": "live", "/v2/health/ready": "ready"}.get(path, "server")
        return _method(Route("v2", action), post, False, path)
    if m := _V1.match(path):
        rest = m.group("rest") or ""
        if rest.startswith(":") and rest != ":predict":
            raise ProtocolError(404, f"{rest[1:]} is not served: only :predict "
                                     "(classify and regress are for Estimator models)")
        action = {"": "status", "/metadata": "metadata", ":predict": "predict"}[rest]
        return _method(Route("v1", action, m.group("name"), m.group("version")), post,
                       action == "predict", path)
    if m := _V2.match(path):
        action = {"": "metadata", "/ready": "model_ready", "/infer": "infer"}[
            m.group("rest") or ""]
        return _method(Route("v2", action, m.group("name"), m.group("version")), post,
                       action == "infer", path)
    raise ProtocolError(404, f"no such route: {_cut(path)}; this server answers /v1/models/<name>"
                             "[:predict|/metadata] (TensorFlow Serving) and /v2/... "
                             "(Open Inference Protocol)")


def _method(r: Route, post: bool, wants_post: bool, path: str) -> Route:
    if post != wants_post:
        raise ProtocolError(405, f"{_cut(path)} takes {'POST' if wants_post else 'GET'}")
    return r


def check_model(r: Route, model: ModelInfo) -> None:
    """404 when the route names another model or version than the one served."""
    if r.name is None:
        return
    if r.name != model.name:
        raise ProtocolError(404, f"model {_quote(r.name)} not found: this endpoint serves "
                                 f"{model.name!r}")
    if r.version is not None and r.version != str(model.version):
        raise ProtocolError(404, f"version {_quote(r.version)} of model {model.name!r} not "
                                 f"found: this replica serves version {model.version}")


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why not."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(400, f"the body is not JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise ProtocolError(400, "the body must be a JSON object")
    return value


# ---------------------------------------------------------------- TensorFlow Serving


@dataclass
class V1Request:
    """A parsed ``:predict``: one tensor per model input, in the model's order."""

    inputs: list[Tensor]
    rows: bool


def v1_status(model: ModelInfo, ready: bool) -> dict[str, Any]:
    return {"model_version_status": [{
        "version": str(model.version), "state": "AVAILABLE" if ready else "LOADING",
        "status": {"error_code": "OK", "error_message": ""}}]}


def v1_metadata(model: ModelInfo) -> dict[str, Any]:
    def tensors(specs: tuple[TensorSpec, ...]) -> dict[str, Any]:
        return {s.name: {"dtype": DATATYPES[s.datatype][1], "name": s.name,
                         "tensor_shape": {"dim": [{"size": str(d), "name": ""}
                                                  for d in s.shape] if s.known else [],
                                          "unknown_rank": not s.known}}
                for s in specs}
    signature = {"inputs": tensors(model.inputs), "outputs": tensors(model.outputs),
                 "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": model.name, "signature_name": "",
                           "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": {model.signature: signature}}}}


def v1_request(body: dict[str, Any], model: ModelInfo) -> V1Request:
    """The tensors of a TF Serving ``:predict`` body, checked against the model."""
    sig = body.get("signature_name")
    if sig not in (None, "", model.signature):
        raise ProtocolError(400, f"signature {_quote(sig)} not found: this model serves "
                                 f"{model.signature!r}")
    if ("instances" in body) == ("inputs" in body):
        raise ProtocolError(400, "the body needs exactly one of 'instances' (rows) or "
                                 "'inputs' (columns)")
    names = [s.name for s in model.inputs]
    if "instances" in body:
        values = _rows(body["instances"], names)
    else:
        values = _columns(body["inputs"], names)
    try:
        return V1Request([_v1_tensor(spec, values[spec.name], model.default_float)
                          for spec in model.inputs], rows="instances" in body)
    except BadInput as e:
        raise ProtocolError(400, str(e)) from None


def _rows(instances: Any, names: list[str]) -> dict[str, Any]:
    if not isinstance(instances, list) or not instances:
        raise ProtocolError(400, "'instances' must be a non-empty list of rows")
    named = all(isinstance(row, dict) for row in instances)
    if len(names) == 1 and not named:
        return {names[0]: instances}
    if not named:
        raise ProtocolError(400, f"this model has several inputs ({', '.join(names)}): "
                                 "each instance must be an object naming them")
    for row in instances:
        _same_names(row, names)
    return {n: [row[n] for row in instances] for n in names}


def _columns(inputs: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(inputs, dict) and (len(names) != 1 or set(inputs) == set(names)):
        _same_names(inputs, names)
        return inputs
    if len(names) != 1:
        raise ProtocolError(400, f"this model has several inputs ({', '.join(names)}): "
                                 "'inputs' must be an object naming them")
    return {names[0]: inputs}


def _same_names(given: dict[str, Any], names: list[str]) -> None:
    missing = [n for n in names if n not in given]
    unknown = sorted(set(given) - set(names))
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}" if missing else "",
                 f"unknown {', '.join(unknown)}" if unknown else ""]
        listed = _cut("; ".join(p for p in parts if p), 200)
        raise ProtocolError(400, f"inputs {listed}: the model's "
                                 f"inputs are {', '.join(names)}")


def _v1_tensor(spec: TensorSpec, value: Any, default_float: str) -> Tensor:
    shape, flat = flatten(value, f"input {spec.name}")
    check_shape(spec, shape)
    datatype = spec.datatype if spec.known else guess_datatype(flat, default_float)
    return Tensor(spec.name, datatype, shape, check_values(spec.name, datatype, flat, True))


def v1_answer(request: V1Request, outputs: list[Tensor]) -> dict[str, Any]:
    """``predictions`` (rows, split along the batch) or ``outputs`` (columns)."""
    nested = {t.name: nest([_v1_value(v) for v in t.data] if t.datatype == "BYTES"
                           else t.data, t.shape) for t in outputs}
    if not request.rows:
        if len(outputs) == 1:
            return {"outputs": nested[outputs[0].name]}
        return {"outputs": nested}
    if len(outputs) == 1:
        return {"predictions": nested[outputs[0].name]}
    batches = {t.shape[0] if t.shape else None for t in outputs}
    if len(batches) != 1 or None in batches:
        raise ProtocolError(400, "the model's outputs do not share a batch dimension: "
                                 "use the columnar format ('inputs')")
    batch = batches.pop() or 0
    return {"predictions": [{name: value[i] for name, value in nested.items()}
                            for i in range(batch)]}


def _v1_value(v: Any) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(v).decode()}
    return v


# ---------------------------------------------------------------- Open Inference (V2)


@dataclass
class V2Request:
    """A parsed ``/infer``: the inputs in the model's order, the outputs asked for."""

    inputs: list[Tensor]
    outputs: list[str] | None
    id: str | None


def v2_server() -> dict[str, Any]:
    return {"name": "studiohub-modelserver", "version": "1", "extensions": []}


def v2_metadata(model: ModelInfo) -> dict[str, Any]:
    def tensors(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}
                for s in specs]
    return {"name": model.name, "versions": [str(model.version)],
            "platform": PLATFORMS.get(model.format, model.format),
            "inputs": tensors(model.inputs), "outputs": tensors(model.outputs)}


def v2_request(body: dict[str, Any], model: ModelInfo) -> V2Request:
    """The tensors of a V2 ``/infer`` body, checked against the model."""
    items = body.get("inputs")
    if not isinstance(items, list) or not items or \
            not all(isinstance(i, dict) for i in items):
        raise ProtocolError(400, "'inputs' must be a non-empty list of "
                                 "{name, shape, datatype, data}")
    specs = {s.name: s for s in model.inputs}
    given: dict[str, Tensor] = {}
    for item in items:
        name = item.get("name")
        if not isinstance(name, str):
            raise ProtocolError(400, "every input needs a 'name' (a string)")
        if name in given:
            raise ProtocolError(400, f"input {_quote(name)} is given twice")
        if name not in specs:
            raise ProtocolError(400, f"unknown input {_quote(name)}: the model's inputs are "
                                     f"{', '.join(specs)}")
        try:
            given[name] = _v2_tensor(specs[name], item)
        except BadInput as e:
            raise ProtocolError(400, str(e)) from None
    missing = [n for n in specs if n not in given]
    if missing:
        raise ProtocolError(400, f"missing input {', '.join(missing)}: the model's inputs "
                                 f"are {'; '.join(s.describe() for s in model.inputs)}")
    asked = body.get("outputs")
    names: list[str] | None = None
    if asked is not None:
        if not isinstance(asked, list) or not all(
                isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
            raise ProtocolError(400, "'outputs' must be a list of {name}")
        names = [o["name"] for o in asked]
        known = [s.name for s in model.outputs]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ProtocolError(400, f"unknown output {_quote(', '.join(unknown))}: the model's "
                                     f"outputs are {', '.join(known)}")
    rid = body.get("id")
    return V2Request([given[n] for n in specs], names,
                     rid if isinstance(rid, str) else None)


def _v2_tensor(spec: TensorSpec, item: dict[str, Any]) -> Tensor:
    shape, datatype = item.get("shape"), item.get("datatype")
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise BadInput(f"input {spec.name}: 'shape' must be a list of integers")
    if not isinstance(datatype, str):
        raise BadInput(f"input {spec.name}: 'datatype' must be a string such as "
                       f"{spec.datatype if spec.known else 'FP32'}")
    if spec.known and datatype != spec.datatype:
        raise BadInput(f"input {spec.name}: datatype {datatype} does not match the "
                       f"model's {spec.datatype}")
    if "data" not in item:
        raise BadInput(f"input {spec.name}: 'data' is missing")
    check_shape(spec, tuple(shape))
    _, flat = flatten(item["data"], f"input {spec.name}")
    if len(flat) != size_of(shape):
        raise BadInput(f"input {spec.name}: shape {shape} holds {size_of(shape)} values, "
                       f"'data' has {len(flat)}")
    return Tensor(spec.name, datatype, tuple(shape), check_values(spec.name, datatype, flat))


def v2_answer(model: ModelInfo, request: V2Request, outputs: list[Tensor]) -> dict[str, Any]:
    chosen = outputs if request.outputs is None else \
        [t for n in request.outputs for t in outputs if t.name == n]
    answer: dict[str, Any] = {
        "model_name": model.name, "model_version": str(model.version),
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape),
                     "data": [v.decode(errors="replace") if isinstance(v, bytes) else v
                              for v in t.data] if t.datatype == "BYTES" else t.data}
                    for t in chosen]}
    if request.id is not None:
        answer["id"] = request.id
    return answer


def _cut(text: str, limit: int = 100) -> str:
    """Text from the request in a message, never more than ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def _quote(value: Any, limit: int = 80) -> str:
    """A value from the request in a message: quoted, never more than ``limit`` chars."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else \
        repr(value[:limit]) + "…"
    return text


def error_body(message: str) -> dict[str, str]:
    return {"error": message}
