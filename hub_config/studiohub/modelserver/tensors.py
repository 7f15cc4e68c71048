"""Tensors as the protocols carry them: datatypes, shapes, and the checks of a request's
values against the model's inputs, before the framework sees them.

Pure Python on plain lists (no numpy), so the protocols are tested without a framework;
:mod:`.runtimes` turns a checked :class:`Tensor` into the framework's array. A datatype
is the Open Inference Protocol's name (``FP32``, ``INT64``, ``BOOL``, ``BYTES``…); TF
Serving's ``DT_*`` names and numpy's dtype names map to it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: V2 datatype -> (numpy dtype name, TF Serving DT_ name).
DATATYPES = {
    "BOOL": ("bool", "DT_BOOL"), "UINT8": ("uint8", "DT_UINT8"),
    "UINT16": ("uint16", "DT_UINT16"), "UINT32": ("uint32", "DT_UINT32"),
    "UINT64": ("uint64", "DT_UINT64"), "INT8": ("int8", "DT_INT8"),
    "INT16": ("int16", "DT_INT16"), "INT32": ("int32", "DT_INT32"),
    "INT64": ("int64", "DT_INT64"), "FP16": ("float16", "DT_HALF"),
    "FP32": ("float32", "DT_FLOAT"), "FP64": ("float64", "DT_DOUBLE"),
    "BYTES": ("object", "DT_STRING"),
}
FROM_NUMPY = {np_name: dt for dt, (np_name, _) in DATATYPES.items()}
FROM_NUMPY.update({"bytes": "BYTES", "str": "BYTES"})
INT_RANGES = {"UINT8": (0, 2**8 - 1), "UINT16": (0, 2**16 - 1), "UINT32": (0, 2**32 - 1),
              "UINT64": (0, 2**64 - 1), "INT8": (-2**7, 2**7 - 1),
              "INT16": (-2**15, 2**15 - 1), "INT32": (-2**31, 2**31 - 1),
              "INT64": (-2**63, 2**63 - 1)}


class BadInput(ValueError):
    """A request that does not fit the model: answered 400 with this message."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model: ``shape`` uses -1 for a dimension of any size;
    ``known`` is False where the format does not say (TorchScript, MXNet): then the
    shape is ``(-1,)`` for display only, and requests are checked for consistency alone."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    known: bool = True

    def describe(self) -> str:
        if not self.known:
            return f"{self.name} (shape and datatype not recorded in the model)"
        return f"{self.name} {self.datatype} {list(self.shape)}"


@dataclass
class Tensor:
    """A tensor's values, flat, row-major, with its shape and datatype."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


def flatten(value: Any, what: str) -> tuple[tuple[int, ...], list[Any]]:
    """The shape and flat values of a nested JSON list; :class:`BadInput` if ragged."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    if not shape:
        return (), [value]
    level: list[Any] = [value]
    for depth, size in enumerate(shape):
        nxt: list[Any] = []
        for item in level:
            if not isinstance(item, list) or len(item) != size:
                raise BadInput(f"{what}: ragged nested list (every list at depth {depth} "
                               f"must have {size} items)")
            nxt.extend(item)
        level = nxt
    if any(isinstance(v, list) for v in level):
        raise BadInput(f"{what}: ragged nested list (lists nested deeper in some items)")
    return tuple(shape), level


def nest(flat: Sequence[Any], shape: Sequence[int]) -> Any:
    """The nested list of ``shape`` from row-major ``flat`` (the inverse of flatten)."""
    if not shape:
        return flat[0] if flat else None
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def size_of(shape: Sequence[int]) -> int:
    return math.prod(shape)


def check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    """:class:`BadInput` naming the expected shape when ``shape`` does not fit ``spec``."""
    if any(d < 0 for d in shape):
        raise BadInput(f"input {spec.name}: shape {list(shape)} has a negative dimension")
    if not spec.known:
        return
    if len(shape) != len(spec.shape) or any(
            want >= 0 and want != got for want, got in zip(spec.shape, shape, strict=False)):
        raise BadInput(f"input {spec.name}: shape {list(shape)} does not match the "
                       f"model's {list(spec.shape)} (-1: any size)")


def check_values(name: str, datatype: str, data: list[Any], b64: bool = False) -> list[Any]:
    """The values converted for ``datatype`` (BYTES: bytes), or :class:`BadInput`."""
    if datatype not in DATATYPES:
        raise BadInput(f"input {name}: unknown datatype {datatype!r}; known: "
                       f"{', '.join(DATATYPES)}")
    if datatype == "BOOL":
        if not all(type(v) is bool for v in data):
            raise BadInput(f"input {name}: expects booleans (BOOL), got {_first_bad(data, bool)}")
        return data
    if datatype == "BYTES":
        return [_bytes(name, v, b64) for v in data]
    if datatype.startswith(("INT", "UINT")):
        if not all(type(v) is int for v in data):
            raise BadInput(f"input {name}: expects integers ({datatype}), got "
                           f"{_first_bad(data, int)}")
        low, high = INT_RANGES[datatype]
        if data and (min(data) < low or max(data) > high):
            raise BadInput(f"input {name}: a value is out of {datatype}'s range {low}..{high}")
        return data
    if not all(type(v) in (float, int) for v in data):
        raise BadInput(f"input {name}: expects numbers ({datatype}), got "
                       f"{_first_bad(data, float, int)}")
    return data


def guess_datatype(data: list[Any], default_float: str) -> str:
    """The datatype of TF Serving JSON values for an input whose datatype is unknown."""
    if data and all(type(v) is bool for v in data):
        return "BOOL"
    if data and all(isinstance(v, (str, dict)) for v in data):
        return "BYTES"
    return default_float


def _bytes(name: str, value: Any, b64: bool) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError:
            raise BadInput(f"input {name}: a string is not valid Unicode (lone "
                           "surrogate)") from None
    if b64 and isinstance(value, dict) and set(value) == {"b64"} and \
            isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"input {name}: b64 value is not base64") from None
    raise BadInput(f"input {name}: expects strings (BYTES), got {_short(value)}")


def _first_bad(data: list[Any], *types: type) -> str:
    for v in data:
        if type(v) not in types:
            return _short(v)
    return "?"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
