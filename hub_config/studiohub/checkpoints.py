"""Resume a training job from its latest checkpoint: ``from studiohub import checkpoints``.

A job's ``$STUDIOHUB_CHECKPOINT_DIR`` is the same folder for every attempt, so an attempt
that starts after a failure (an OOM kill, a killed worker) finds what the previous one
saved there. One call per framework restores the latest checkpoint, if any, and returns
the step to continue from (0 when there is none)::

    step = checkpoints.resume_pytorch(model, optimizer)
    for step in range(step, steps):
        ...
        checkpoints.save_pytorch(model, optimizer, step + 1)

A resume prints ``STUDIOHUB_RESUMED_FROM <path> step <n>``, which the job's executor
turns into the event "resumed from checkpoint …". Saves are atomic (written beside
their place, then renamed), so a worker killed mid-save leaves the previous checkpoint
whole; the newest ``keep`` are kept.

In a distributed job the replicas share the folder and every replica resumes from the
same checkpoint. Who saves differs by framework:

- PyTorch DDP, MXNet ``dist_sync``: every rank holds the whole model, and reading it is
  local, so **rank 0 saves** alone (``if rank == 0: save_pytorch(...)``); the others
  writing the same file would only race.
- TensorFlow ``MultiWorkerMirroredStrategy``: a save reads distributed variables with
  collective operations, so **every worker calls** :func:`save_tensorflow`; a save by the
  chief alone waits for the others and fails once they have moved on. The helper does
  TensorFlow's documented split: the chief writes the real checkpoint, the other workers
  a copy in a folder of their own that is deleted at once (:func:`tf_is_chief`).

Standard library only at import (frameworks are imported by the call that needs them):
it runs in every image's environment (:mod:`studiohub.sdk`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

from . import contract

#: A checkpoint's name: ``ckpt-<step>`` and the framework's suffix. The suffix is the
#: file written last, so its presence means the checkpoint is complete.
_NAME = re.compile(r"^ckpt-(\d{1,18})(\.pt|\.params|\.index)$")
KEEP = 3


class Checkpoint(NamedTuple):
    path: Path  # the file (PyTorch, MXNet parameters) or TensorFlow's prefix
    step: int


def checkpoint_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """``directory``, else the job's ``$STUDIOHUB_CHECKPOINT_DIR``, else ``./checkpoints``
    (a notebook trying the code outside a job). Made if missing."""
    path = Path(directory or os.environ.get(contract.CHECKPOINT_DIR) or "checkpoints")
    path.mkdir(parents=True, exist_ok=True)
    return path


def all_checkpoints(directory: str | os.PathLike[str] | None = None,
                    suffix: str | None = None) -> list[Checkpoint]:
    """The complete checkpoints in the folder, oldest step first."""
    found = []
    for entry in checkpoint_dir(directory).iterdir():
        match = _NAME.match(entry.name)
        if match and (suffix is None or match.group(2) == suffix):
            path = entry.with_suffix("") if match.group(2) == ".index" else entry
            found.append(Checkpoint(path, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest(directory: str | os.PathLike[str] | None = None,
           suffix: str | None = None) -> Checkpoint | None:
    """The checkpoint with the highest step, or None."""
    found = all_checkpoints(directory, suffix)
    return found[-1] if found else None


def announce(checkpoint: Checkpoint) -> int:
    """Print the line the executor turns into a "resumed from" event; the step."""
    print(f"{contract.RESUMED_FROM} {checkpoint.path} step {checkpoint.step}", flush=True)
    sys.stderr.flush()
    return checkpoint.step


def _atomic_path(directory: Path, name: str) -> tuple[Path, Path]:
    """(temporary path, final path) in the same folder (one rename apart)."""
    return directory / f".{name}.tmp-{os.getpid()}", directory / name


def _publish(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def _prune(directory: Path, suffix: str, keep: int, extra: tuple[str, ...] = ()) -> None:
    for old in all_checkpoints(directory, suffix)[:-keep] if keep > 0 else []:
        for path in (old.path, *(old.path.with_suffix(s) for s in extra)):
            path.unlink(missing_ok=True)


# --- PyTorch --------------------------------------------------------------------------

def save_pytorch(model: Any, optimizer: Any = None, step: int = 0, *,
                 directory: str | os.PathLike[str] | None = None, keep: int = KEEP,
                 **extra: Any) -> Path:
    """``ckpt-<step>.pt``: the model's (and optimizer's) state dicts, the step, ``extra``."""
    import torch

    folder = checkpoint_dir(directory)
    tmp, final = _atomic_path(folder, f"ckpt-{int(step)}.pt")
    state = {"step": int(step), "model": _unwrap(model).state_dict(), **extra}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    torch.save(state, tmp)
    _publish(tmp, final)
    _prune(folder, ".pt", keep)
    return final


def resume_pytorch(model: Any, optimizer: Any = None, *,
                   directory: str | os.PathLike[str] | None = None,
                   map_location: Any = "cpu") -> int:
    """Load the latest ``ckpt-<step>.pt`` into the model (and optimizer); its step, or 0."""
    found = latest(directory, ".pt")
    if found is None:
        return 0
    import torch

    state = torch.load(found.path, map_location=map_location, weights_only=False)
    _unwrap(model).load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    return announce(found)


def _unwrap(model: Any) -> Any:
    """DistributedDataParallel's module (its state dict's keys are the model's)."""
    return getattr(model, "module", model)


# --- TensorFlow -----------------------------------------------------------------------

def _tf_manager(checkpoint: Any, directory: str | os.PathLike[str] | None,
                keep: int) -> Any:
    import tensorflow as tf

    return tf.train.CheckpointManager(checkpoint, str(checkpoint_dir(directory)),
                                      max_to_keep=keep, checkpoint_name="ckpt")


def _tf_task(tf_config: str | None) -> tuple[str, int, bool] | None:
    """(type, index, whether the cluster has a ``chief``) of ``TF_CONFIG``'s task; None
    outside a cluster (no or an unreadable variable: TensorFlow could not join one)."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    try:
        config = json.loads(raw) if raw.strip() else {}
        task = config.get("task") or {}
        kind, index = str(task.get("type") or ""), int(task.get("index", 0))
        return (kind, index, "chief" in (config.get("cluster") or {})) if kind else None
    except (ValueError, TypeError, AttributeError):
        return None


def tf_is_chief(tf_config: str | None = None) -> bool:
    """Whether this process writes the real TensorFlow checkpoint: one not in a cluster,
    the ``chief`` task, or ``worker`` 0 of a cluster without one (the chief of
    ``MultiWorkerMirroredStrategy``, by TensorFlow's own rule). ``tf_config``: that
    variable's value, by default the environment's."""
    task = _tf_task(tf_config)
    if task is None:
        return True
    kind, index, has_chief = task
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def save_tensorflow(checkpoint: Any, step: int, *,
                    directory: str | os.PathLike[str] | None = None,
                    keep: int = KEEP) -> Path:
    """``ckpt-<step>`` through ``tf.train.CheckpointManager`` (which writes the index
    last and its state file atomically); the chief's path.

    Call it on **every** worker of a ``MultiWorkerMirroredStrategy`` job: the save is a
    collective operation. Only the chief (:func:`tf_is_chief`) writes into the folder;
    another worker writes into ``.<task>.tmp`` inside it, which is deleted after its save
    (and before it, if a killed save left one)."""
    folder = checkpoint_dir(directory)
    if tf_is_chief():
        return Path(_tf_manager(checkpoint, folder, keep).save(checkpoint_number=int(step)))
    kind, index, _ = _tf_task(None) or ("worker", 0, False)
    scratch = folder / f".{re.sub(r'[^a-z_]', '', kind)}-{index}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        _tf_manager(checkpoint, scratch, 1).save(checkpoint_number=int(step))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder / f"ckpt-{int(step)}"


def resume_tensorflow(checkpoint: Any, *, directory: str | os.PathLike[str] | None = None,
                      keep: int = KEEP) -> int:
    """Restore a ``tf.train.Checkpoint`` from the latest ``ckpt-<step>``; its step, or 0."""
    manager = _tf_manager(checkpoint, directory, keep)
    if not manager.latest_checkpoint:
        return 0
    checkpoint.restore(manager.latest_checkpoint).expect_partial()
    path = Path(manager.latest_checkpoint)
    return announce(Checkpoint(path, int(path.name.rsplit("-", 1)[1])))


# --- MXNet ----------------------------------------------------------------------------

def save_mxnet(net: Any, trainer: Any = None, step: int = 0, *,
               directory: str | os.PathLike[str] | None = None, keep: int = KEEP) -> Path:
    """``ckpt-<step>.params`` (Gluon parameters) and ``ckpt-<step>.states`` (the
    trainer's); the states first, so a complete ``.params`` has its states."""
    folder = checkpoint_dir(directory)
    if trainer is not None:
        tmp, final = _atomic_path(folder, f"ckpt-{int(step)}.states")
        trainer.save_states(str(tmp))
        _publish(tmp, final)
    tmp, final = _atomic_path(folder, f"ckpt-{int(step)}.params")
    net.save_parameters(str(tmp))
    _publish(tmp, final)
    _prune(folder, ".params", keep, extra=(".states",))
    return final


def resume_mxnet(net: Any, trainer: Any = None, *,
                 directory: str | os.PathLike[str] | None = None) -> int:
    """Load the latest ``ckpt-<step>.params`` (and ``.states``); its step, or 0."""
    found = latest(directory, ".params")
    if found is None:
        return 0
    net.load_parameters(str(found.path))
    states = found.path.with_suffix(".states")
    if trainer is not None and states.exists():
        trainer.load_states(str(states))
    return announce(found)
