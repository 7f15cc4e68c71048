"""Which model format a folder or file holds, from names alone.

The hub detects the format when a user deploys (it runs as root over a user's home), and
the replica detects it again before loading, so both read the same rules. Detection
never opens a file and never follows a symbolic link (``os.lstat``, ``os.scandir`` with
``follow_symlinks=False``): a link in a model folder cannot make the hub look elsewhere.
Standard library only.

Recognised:

- ``tensorflow-savedmodel``: a folder with ``saved_model.pb`` (or ``.pbtxt``);
- ``torchscript``: a ``.pt``/``.pth``/``.ts``/``.torchscript`` file, or a folder with
  exactly one;
- ``torch-export``: a ``.pt2`` file (``torch.export.save``), or a folder with exactly one;
- ``onnx``: an ``.onnx`` file, or a folder with exactly one;
- ``mxnet``: a folder with ``<prefix>-symbol.json`` and ``<prefix>-NNNN.params``
  (``HybridBlock.export``; the highest epoch is served).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

#: Format names, as ``--format`` and the endpoints' ``format`` field spell them.
FORMATS = ("tensorflow-savedmodel", "torchscript", "torch-export", "onnx", "mxnet")

#: The catalog's ``framework`` of the images that run each format (ONNX runs on the
#: PyTorch images, which have onnxruntime).
FRAMEWORKS = {"tensorflow-savedmodel": "TensorFlow", "torchscript": "PyTorch",
              "torch-export": "PyTorch", "onnx": "PyTorch", "mxnet": "MXNet"}

RECOGNISED = ("a TensorFlow SavedModel folder (saved_model.pb), a TorchScript file "
              "(.pt, .pth, .ts, .torchscript), a torch.export file (.pt2), an ONNX file "
              "(.onnx), or a folder with exactly one of those files, or an MXNet export "
              "folder (<prefix>-symbol.json with <prefix>-NNNN.params)")

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
SUFFIXES = {**dict.fromkeys(TORCHSCRIPT_SUFFIXES, "torchscript"),
            ".pt2": "torch-export", ".onnx": "onnx"}
SAVED_MODEL = ("saved_model.pb", "saved_model.pbtxt")
MX_SYMBOL = re.compile(r"^(.+)-symbol\.json$")
MX_PARAMS = re.compile(r"^(.+)-(\d{4})\.params$")
#: Files users often give that are not a servable model, and what to do instead.
HINTS = {".keras": "a Keras file: export a SavedModel with model.export(path)",
         ".h5": "a Keras file: export a SavedModel with model.export(path)",
         ".safetensors": "weights only: save a model with torch.jit.save or "
                         "torch.export.save",
         ".bin": "weights only: save a model with torch.jit.save or torch.export.save",
         ".params": "MXNet parameters: give the folder with its -symbol.json"}


class FormatError(ValueError):
    """The path holds no model format StudioHub serves; the message says why and what
    is recognised."""


@dataclass(frozen=True)
class ModelFormat:
    """A detected model: its format, the catalog framework that runs it, and the files
    the runtime loads (the folder for a SavedModel; symbol then params for MXNet)."""

    name: str
    framework: str
    path: Path
    files: tuple[Path, ...]


def detect(path: str | os.PathLike[str]) -> ModelFormat:
    """The format of the model at ``path`` (a folder or a file); :class:`FormatError`
    when there is none, several, or the path is missing or a link."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise FormatError(f"{p}: no such file or folder") from None
    except OSError as e:
        raise FormatError(f"{p}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise FormatError(f"{p} is a symbolic link: give the model's own folder or file "
                          "(links are not followed)")
    if stat.S_ISREG(st.st_mode):
        return _file(p)
    if stat.S_ISDIR(st.st_mode):
        return _folder(p)
    raise FormatError(f"{p} is neither a file nor a folder")


def _file(p: Path) -> ModelFormat:
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is not None:
        return ModelFormat(fmt, FRAMEWORKS[fmt], p, (p,))
    if p.name in SAVED_MODEL or MX_SYMBOL.match(p.name) or MX_PARAMS.match(p.name):
        raise FormatError(f"{p} is part of a model: give its folder, {p.parent}")
    raise FormatError(_unrecognised(p, [p.name]))


def _folder(p: Path) -> ModelFormat:
    try:
        with os.scandir(p) as entries:
            listed = [(e.name, e.is_file(follow_symlinks=False),
                       e.is_dir(follow_symlinks=False), e.is_symlink()) for e in entries
                      if not e.name.startswith(".")]
    except OSError as e:
        raise FormatError(f"{p}: {e.strerror}") from None
    files = sorted(name for name, is_file, _, _ in listed if is_file)
    links = sorted(name for name, _, _, is_link in listed if is_link)
    found: list[ModelFormat] = []
    saved = [n for n in SAVED_MODEL if n in files]
    if saved:
        found.append(ModelFormat("tensorflow-savedmodel", "TensorFlow", p, (p / saved[0],)))
    mx = _mxnet(p, files)
    if mx is not None:
        found.append(mx)
    by_format: dict[str, list[str]] = {}
    for name in files:
        fmt = SUFFIXES.get(Path(name).suffix.lower())
        if fmt is not None:
            by_format.setdefault(fmt, []).append(name)
    for fmt, names in by_format.items():
        if len(names) > 1:
            raise FormatError(f"{p} has several {fmt} files ({', '.join(names)}): give "
                              "the path of the one to serve")
        found.append(ModelFormat(fmt, FRAMEWORKS[fmt], p / names[0], (p / names[0],)))
    if len(found) == 1:
        return found[0]
    if found:
        what = ", ".join(f"{f.name} ({f.files[0].name})" for f in found)
        raise FormatError(f"{p} holds more than one model format: {what}; give the file "
                          "to serve, or a folder with one model")
    message = _unrecognised(p, files)
    nested = [name for name, _, is_dir, _ in listed if is_dir and _has_saved_model(p / name)]
    if nested:
        message += f"; {p / nested[0]} is a SavedModel folder: give that folder"
    if links:
        message += f"; symbolic links are not followed ({', '.join(links[:3])})"
    raise FormatError(message)


def _mxnet(p: Path, files: list[str]) -> ModelFormat | None:
    symbols = {m.group(1) for m in map(MX_SYMBOL.match, files) if m}
    params: dict[str, list[tuple[int, str]]] = {}
    for m in filter(None, map(MX_PARAMS.match, files)):
        params.setdefault(m.group(1), []).append((int(m.group(2)), m.group(0)))
    prefixes = sorted(symbols & params.keys())
    if len(prefixes) > 1:
        raise FormatError(f"{p} has several MXNet exports ({', '.join(prefixes)}): keep "
                          "one per folder")
    if not prefixes:
        if symbols or params:
            parts = sorted(n for n in files if MX_SYMBOL.match(n) or MX_PARAMS.match(n))
            raise FormatError(f"{p}: an MXNet export needs both <prefix>-symbol.json and "
                              "<prefix>-NNNN.params with the same prefix; found "
                              f"{', '.join(parts)}")
        return None
    prefix = prefixes[0]
    newest = max(params[prefix])[1]
    return ModelFormat("mxnet", "MXNet", p,
                       (p / f"{prefix}-symbol.json", p / newest))


def _has_saved_model(folder: Path) -> bool:
    try:
        return any(stat.S_ISREG(os.lstat(folder / n).st_mode) for n in SAVED_MODEL
                   if os.path.lexists(folder / n))
    except OSError:
        return False


def _unrecognised(p: Path, names: list[str]) -> str:
    hints = sorted({HINTS[s] for s in (Path(n).suffix.lower() for n in names) if s in HINTS})
    message = f"{p}: no model format recognised. StudioHub serves {RECOGNISED}"
    if hints:
        message += f"; found {'; '.join(hints)}"
    return message
