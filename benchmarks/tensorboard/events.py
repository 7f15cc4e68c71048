"""Write TensorBoard event files the way each framework does, for tests and benchmarks.

    python events.py OUT --framework torch|tensorboardx|tf-summary --runs N --steps M

Runs with the interpreter of an environment that has the framework:

* ``torch``: ``torch.utils.tensorboard.SummaryWriter`` (PyTorch; needs ``tensorboard``).
* ``tensorboardx``: ``tensorboardX.SummaryWriter`` (what MXNet users log with).
* ``tf-summary``: TensorFlow 2's ``tf.summary.scalar`` record layout (a float tensor with
  the ``scalars`` plugin's metadata), written with TensorBoard's own protos and event
  writer, so it needs only ``tensorboard``, not TensorFlow.

Each run ``OUT/<framework>-<i>`` gets the scalar ``loss`` (and ``accuracy``) at every step.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

Scalar = Callable[[str, float, int], None]


def loss(run: int, step: int) -> float:
    return 2.0 * math.exp(-step / 200.0) + 0.05 * run / 100.0 + 0.02 * math.sin(step / 7.0)


def torch_writer(logdir: Path) -> tuple[Scalar, Callable[[], None]]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    return writer.add_scalar, writer.close


def tensorboardx_writer(logdir: Path) -> tuple[Scalar, Callable[[], None]]:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(logdir))
    return writer.add_scalar, writer.close


def tf_summary_writer(logdir: Path) -> tuple[Scalar, Callable[[], None]]:
    from tensorboard.compat.proto import (
        event_pb2,
        summary_pb2,
        tensor_pb2,
        tensor_shape_pb2,
        types_pb2,
    )
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(logdir))
    described: set[str] = set()

    def scalar(tag: str, value: float, step: int) -> None:
        metadata = None
        if tag not in described:  # tf.summary writes the metadata with the first value
            metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
            described.add(tag)
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto())
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag, metadata=metadata, tensor=tensor)])
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    return scalar, writer.close


WRITERS = {"torch": torch_writer, "tensorboardx": tensorboardx_writer,
           "tf-summary": tf_summary_writer}


def write(out: Path, framework: str, runs: int, steps: int) -> list[Path]:
    made = []
    for run in range(runs):
        logdir = out / f"{framework}-{run:03d}"
        scalar, close = WRITERS[framework](logdir)
        for step in range(steps):
            value = loss(run, step)
            scalar("loss", value, step)
            scalar("accuracy", 1.0 - value / 2.5, step)
        close()
        made.append(logdir)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--framework", choices=sorted(WRITERS), required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    write(args.out, args.framework, args.runs, args.steps)
    print(f"wrote {args.runs} x {args.steps} steps ({args.framework}) to {args.out} "
          f"in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
