"""One runtime per model format: load, describe the inputs and outputs, predict.

Each framework is imported only by its own loader, so a replica imports the one its
model needs. A runtime takes and gives :class:`~.tensors.Tensor` (plain lists): numpy is
the bridge to the framework here, and only here. Load and warm-up happen on the one
inference thread of the server, and so do predictions, except quick ones of a runtime
whose ``any_thread`` is true (PyTorch, ONNX Runtime), which the server may run on its
event loop after calling ``adopt_thread`` there once: some frameworks keep per-thread
state (OpenMP's thread count; MXNet's default context; TensorFlow not measured here).

- ``tensorflow-savedmodel``: ``tf.saved_model.load`` and its ``serving_default``
  signature (or the only one), called with keyword tensors; names and shapes from it.
- ``torchscript``: ``torch.jit.load``; inputs positional, named after ``forward``'s
  arguments; the format records no shapes or datatypes (see ``TensorSpec.known``).
- ``torch-export``: ``torch.export.load(...).module()``; names, datatypes and shapes
  (a dynamic dimension is -1) from the exported program's graph.
- ``onnx``: onnxruntime's ``InferenceSession`` on the CPU provider; names from the graph.
- ``mxnet``: ``mx.gluon.SymbolBlock.imports``; inputs are the symbol's arguments that
  the params file does not hold (``data`` for ``HybridBlock.export``).

PyTorch runs under ``torch.inference_mode()``. Intra-op threads are limited to the CPUs
this process may use (its cgroup's ``cpu.max`` and affinity), TensorFlow's and ONNX
Runtime's inter-op threads to one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .formats import ModelFormat
from .tensors import DATATYPES, FROM_NUMPY, BadInput, Tensor, TensorSpec

ONNX_TYPES = {"float": "FP32", "double": "FP64", "float16": "FP16", "int8": "INT8",
              "int16": "INT16", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
              "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64", "bool": "BOOL",
              "string": "BYTES"}


class LoadError(Exception):
    """The model cannot be served; the message says why in one line."""


class Runtime:
    """A loaded model. ``input_errors``: the framework's exceptions that are about the
    request's values (answered 400, the others 500)."""

    format = ""
    signature = "serving_default"
    #: predict may be called from a thread other than the one that loaded the model
    #: (after :meth:`adopt_thread` on it).
    any_thread = False

    def __init__(self) -> None:
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self.default_float = "FP32"
        self.input_errors: tuple[type[BaseException], ...] = (ValueError, TypeError)

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def adopt_thread(self) -> None:
        """Set the calling thread's per-thread framework state as on the loading one."""

    def warmup_inputs(self) -> list[Tensor] | None:
        """Zeros of every input's shape (batch 1 where any size goes), or None where the
        model does not record its inputs (then the first request is the warm-up)."""
        if not all(s.known for s in self.inputs):
            return None
        made = []
        for s in self.inputs:
            shape = tuple(1 if d < 0 else d for d in s.shape)
            size = 1
            for d in shape:
                size *= d
            zero: Any = {"BOOL": False, "BYTES": b""}.get(
                s.datatype, 0 if s.datatype.startswith(("INT", "UINT")) else 0.0)
            made.append(Tensor(s.name, s.datatype, shape, [zero] * size))
        return made


def cpu_limit() -> int:
    """How many CPUs this process may keep busy: its affinity, capped by the cgroup v2
    ``cpu.max`` quotas of its cgroup and the cgroup's ancestors."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            line = next((ln for ln in f if ln.startswith("0::")), "")
    except OSError:
        return count
    if not line:
        return count
    folder = Path("/sys/fs/cgroup") / line.strip()[3:].lstrip("/")
    for cg in (folder, *folder.parents):
        if cg == Path("/sys/fs/cgroup").parent:
            break
        try:
            quota, period = (cg / "cpu.max").read_text().split()
        except (OSError, ValueError):
            continue
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    return max(1, count)


def load(fmt: ModelFormat, threads: int) -> Runtime:
    """The runtime of a detected model; :class:`LoadError` naming why it cannot load."""
    loaders: dict[str, Callable[[ModelFormat, int], Runtime]] = {
        "tensorflow-savedmodel": TensorFlowRuntime, "torchscript": TorchScriptRuntime,
        "torch-export": TorchExportRuntime, "onnx": OnnxRuntime, "mxnet": MXNetRuntime}
    try:
        return loaders[fmt.name](fmt, threads)
    except LoadError:
        raise
    except ImportError as e:
        raise LoadError(f"{e.name or e} is not installed in this environment: choose an "
                        f"image with {fmt.framework}") from None
    except Exception as e:  # a framework's own errors, worded for users
        raise LoadError(one_line(e)) from None


def one_line(e: BaseException, limit: int = 500) -> str:
    """An exception as one line: its last non-empty line (TorchScript's first line only
    says "The following operation failed…", the cause is last), its type when empty."""
    text = next((ln.strip() for ln in reversed(str(e).splitlines()) if ln.strip()), "")
    name = type(e).__name__
    text = text if text.startswith(f"{name}:") else f"{name}: {text}" if text else name
    return text if len(text) <= limit else text[:limit - 1] + "…"


def to_numpy(t: Tensor) -> Any:
    import numpy as np

    if t.datatype == "BYTES":
        arr = np.empty(len(t.data), dtype=object)
        arr[:] = t.data
        return arr.reshape(t.shape)
    try:
        return np.asarray(t.data, dtype=DATATYPES[t.datatype][0]).reshape(t.shape)
    except (ValueError, OverflowError, TypeError) as e:
        raise BadInput(f"input {t.name}: {one_line(e)}") from None


def from_numpy(name: str, value: Any) -> Tensor:
    import numpy as np

    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind in "SUO":
        datatype = "BYTES"
        data = [v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist()]
    else:
        datatype = FROM_NUMPY.get(arr.dtype.name, "FP32")
        if arr.dtype.name not in FROM_NUMPY:
            arr = arr.astype("float32")
        data = arr.ravel().tolist()
    return Tensor(name, datatype, tuple(int(d) for d in arr.shape), data)


def _spec(name: str, datatype: str, dims: list[Any] | None) -> TensorSpec:
    if dims is None:
        return TensorSpec(name, datatype, (-1,), known=False)
    return TensorSpec(name, datatype, tuple(d if isinstance(d, int) and d >= 0 else -1
                                            for d in dims))


# ---------------------------------------------------------------- TensorFlow


class TensorFlowRuntime(Runtime):
    format = "tensorflow-savedmodel"

    def __init__(self, fmt: ModelFormat, threads: int) -> None:
        super().__init__()
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        self.loaded = tf.saved_model.load(str(fmt.path))  # keeps the variables alive
        signatures = dict(self.loaded.signatures)
        if "serving_default" in signatures:
            self.signature = "serving_default"
        elif len(signatures) == 1:
            self.signature = next(iter(signatures))
        else:
            raise LoadError(f"the SavedModel has no serving_default signature (it has "
                            f"{', '.join(signatures) or 'none'})")
        self.fn = signatures[self.signature]
        _, kwargs = self.fn.structured_input_signature
        self.inputs = tuple(self._spec(n, s) for n, s in sorted(kwargs.items()))
        self.outputs = tuple(self._spec(n, s)
                             for n, s in sorted(self.fn.structured_outputs.items()))
        self.input_errors = (tf.errors.InvalidArgumentError, ValueError, TypeError)

    @staticmethod
    def _spec(name: str, spec: Any) -> TensorSpec:
        datatype = "BYTES" if spec.dtype.name == "string" else \
            FROM_NUMPY.get(spec.dtype.name, "FP32")
        dims = None if spec.shape.rank is None else \
            [-1 if d is None else d for d in spec.shape.as_list()]
        return _spec(name, datatype, dims)

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        feeds = {t.name: self.tf.constant(to_numpy(t)) for t in inputs}
        result = self.fn(**feeds)
        return [from_numpy(s.name, result[s.name].numpy()) for s in self.outputs]


# ---------------------------------------------------------------- PyTorch


class _TorchRuntime(Runtime):
    any_thread = True

    def __init__(self, threads: int) -> None:
        super().__init__()
        import torch

        torch.set_num_threads(threads)
        self.threads = threads
        self.torch = torch
        self.input_errors = (RuntimeError, ValueError, TypeError, IndexError)
        self.module: Any = None

    def adopt_thread(self) -> None:
        self.torch.set_num_threads(self.threads)  # OpenMP's count is per thread

    def _default_float(self, parameters: Any) -> str:
        for p in parameters:
            if p.is_floating_point():
                return FROM_NUMPY.get(str(p.dtype).removeprefix("torch."), "FP32")
        return "FP32"

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        torch = self.torch
        args = []
        for t in inputs:
            if t.datatype == "BYTES":
                raise BadInput(f"input {t.name}: PyTorch models take no strings")
            args.append(torch.from_numpy(to_numpy(t)))
        with torch.inference_mode():
            out = self.module(*args)
        named = self._name(out)
        if len(self.outputs) != len(named):
            self.outputs = tuple(TensorSpec(n, "FP32", (-1,), known=False) for n, _ in named)
        return [from_numpy(n, v) for n, v in named]

    def _name(self, out: Any) -> list[tuple[str, Any]]:
        torch = self.torch
        if isinstance(out, dict):
            items = list(out.items())
        elif isinstance(out, (tuple, list)):
            items = [(f"output-{i}", v) for i, v in enumerate(out)]
        else:
            items = [("output-0", out)]
        named = []
        for n, v in items:
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu()
                if v.dtype == torch.bfloat16:
                    v = v.float()
                v = v.numpy()
            named.append((str(n), v))
        return named


class TorchScriptRuntime(_TorchRuntime):
    format = "torchscript"

    def __init__(self, fmt: ModelFormat, threads: int) -> None:
        super().__init__(threads)
        torch = self.torch
        try:
            self.module = torch.jit.load(str(fmt.path), map_location="cpu")
        except RuntimeError as e:
            raise LoadError(f"{fmt.path.name} is not a TorchScript archive "
                            f"({one_line(e, 200)}): save the model with "
                            "torch.jit.save(torch.jit.script(model), path), or "
                            "torch.export.save to a .pt2 file") from None
        self.module.eval()
        self.default_float = self._default_float(self.module.parameters())
        args = self.module.forward.schema.arguments[1:]
        self.inputs = tuple(TensorSpec(a.name or f"input-{i}", self.default_float, (-1,),
                                       known=False) for i, a in enumerate(args))
        returns = self.module.forward.schema.returns
        count = 1
        if len(returns) == 1 and isinstance(returns[0].type, torch.TupleType):
            count = len(returns[0].type.elements())
        self.outputs = tuple(TensorSpec(f"output-{i}", self.default_float, (-1,), known=False)
                             for i in range(count))


class TorchExportRuntime(_TorchRuntime):
    format = "torch-export"

    def __init__(self, fmt: ModelFormat, threads: int) -> None:
        super().__init__(threads)
        torch = self.torch
        try:
            program = torch.export.load(str(fmt.path))
        except (RuntimeError, ValueError, KeyError) as e:
            raise LoadError(f"{fmt.path.name} is not a torch.export archive "
                            f"({one_line(e, 200)}): save it with torch.export.save") from None
        self.module = program.module()
        self.default_float = self._default_float(program.state_dict.values())
        user_inputs = list(program.graph_signature.user_inputs)
        nodes = {n.name: n for n in program.graph.nodes}
        self.inputs = tuple(self._spec(nodes.get(name), name) for name in user_inputs)
        output = next(n for n in program.graph.nodes if n.op == "output")
        results = output.args[0] if isinstance(output.args[0], (tuple, list)) else \
            [output.args[0]]
        self.outputs = tuple(self._spec(node, f"output-{i}") for i, node in enumerate(results))

    def _spec(self, node: Any, name: str) -> TensorSpec:
        val = getattr(node, "meta", {}).get("val") if node is not None else None
        if val is None or not isinstance(val, self.torch.Tensor):
            return TensorSpec(name, self.default_float, (-1,), known=False)
        dims = [int(d) if isinstance(d, int) else -1 for d in val.shape]
        datatype = FROM_NUMPY.get(str(val.dtype).removeprefix("torch."), "FP32")
        return _spec(name, datatype, dims)


# ---------------------------------------------------------------- ONNX


class OnnxRuntime(Runtime):
    format = "onnx"
    any_thread = True  # InferenceSession.run is thread-safe

    def __init__(self, fmt: ModelFormat, threads: int) -> None:
        super().__init__()
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(fmt.path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = tuple(self._spec(i) for i in self.session.get_inputs())
        self.outputs = tuple(self._spec(o) for o in self.session.get_outputs())
        floats = [s.datatype for s in self.inputs if s.datatype.startswith("FP")]
        self.default_float = floats[0] if floats else "FP32"
        self.input_errors = (state.InvalidArgument, ValueError, TypeError)

    @staticmethod
    def _spec(arg: Any) -> TensorSpec:
        kind = str(arg.type)
        inner = kind[kind.find("(") + 1:kind.rfind(")")] if kind.startswith("tensor(") else ""
        if inner not in ONNX_TYPES:
            raise LoadError(f"ONNX {arg.name} is a {kind}: only tensors of "
                            f"{', '.join(ONNX_TYPES)} are served")
        shape = arg.shape
        return _spec(arg.name, ONNX_TYPES[inner], list(shape) if shape is not None else None)

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        results = self.session.run(None, {t.name: to_numpy(t) for t in inputs})
        return [from_numpy(s.name, r) for s, r in zip(self.outputs, results, strict=True)]


# ---------------------------------------------------------------- MXNet


class MXNetRuntime(Runtime):
    format = "mxnet"

    def __init__(self, fmt: ModelFormat, threads: int) -> None:
        super().__init__()
        os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(threads))
        import mxnet as mx

        symbol_file, params_file = fmt.files
        symbol = mx.sym.load(str(symbol_file))
        params = {k.split(":", 1)[-1] for k in mx.nd.load(str(params_file))}
        names = [n for n in symbol.list_inputs() if n not in params]
        if not names:
            raise LoadError(f"{symbol_file.name} has no input beside its parameters")
        self.block = mx.gluon.SymbolBlock.imports(str(symbol_file), names, str(params_file),
                                                  ctx=mx.cpu())
        self.mx = mx
        self.inputs = tuple(TensorSpec(n, "FP32", (-1,), known=False) for n in names)
        self.outputs = tuple(TensorSpec(n, "FP32", (-1,), known=False)
                             for n in symbol.list_outputs())
        self.input_errors = (mx.base.MXNetError, ValueError, TypeError)

    def predict(self, inputs: list[Tensor]) -> list[Tensor]:
        mx = self.mx
        args = []
        for t in inputs:
            if t.datatype == "BYTES":
                raise BadInput(f"input {t.name}: MXNet models take no strings")
            arr = to_numpy(t)
            args.append(mx.nd.array(arr, dtype=arr.dtype, ctx=mx.cpu()))
        out = self.block(*args)
        results = out if isinstance(out, (list, tuple)) else [out]
        return [from_numpy(s.name, r.asnumpy())
                for s, r in zip(self.outputs, results, strict=False)]
