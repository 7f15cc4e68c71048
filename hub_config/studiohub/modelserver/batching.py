"""Request batching (``--batch-max N``, off by default): requests that arrive while the
model is busy are joined along their first dimension into one framework call, and the
outputs are split back per request.

No timer: a request never waits for others. The first request of an idle replica runs
alone; those that queue behind it run together in the next call (at most N of them). So
batching costs nothing at low load and turns a backlog into fewer, larger calls, which
frameworks run faster per row.

Joined only when every input of the model has a known shape whose first dimension is
free (-1), and the requests agree on each input's datatype and on every dimension but
the first; split only when every output's first dimension is the joined batch. Anything
else runs one request per call. A batch the framework refuses is retried request by
request, so one bad request never fails its neighbours. Pure (plain lists), like
:mod:`.tensors`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .tensors import Tensor, TensorSpec, size_of


def rows_of(inputs: Sequence[Tensor], specs: Sequence[TensorSpec]) -> int | None:
    """The request's batch size if it can join a batch, else None."""
    if not specs or not all(s.known and s.shape and s.shape[0] == -1 for s in specs):
        return None
    sizes = {t.shape[0] for t in inputs if t.shape}
    if len(sizes) != 1 or len(inputs) != len(specs) or any(not t.shape for t in inputs):
        return None
    return sizes.pop()


def joinable(requests: Sequence[Sequence[Tensor]], specs: Sequence[TensorSpec]) -> bool:
    """Whether these requests' inputs can be one call."""
    if len(requests) < 2 or any(rows_of(r, specs) is None for r in requests):
        return False
    first = requests[0]
    return all(t.datatype == f.datatype and t.shape[1:] == f.shape[1:]
               for r in requests[1:] for t, f in zip(r, first, strict=True))


def join(requests: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """One tensor per input: the requests' rows one after another."""
    joined = []
    for i, head in enumerate(requests[0]):
        data: list[object] = []
        rows = 0
        for r in requests:
            data.extend(r[i].data)
            rows += r[i].shape[0]
        joined.append(Tensor(head.name, head.datatype, (rows, *head.shape[1:]), data))
    return joined


def split(outputs: Sequence[Tensor], rows: Sequence[int]) -> list[list[Tensor]] | None:
    """Each request's outputs (its rows), or None when an output is not batched."""
    total = sum(rows)
    if not all(t.shape and t.shape[0] == total for t in outputs):
        return None
    parts: list[list[Tensor]] = [[] for _ in rows]
    for t in outputs:
        row = size_of(t.shape[1:])
        start = 0
        for k, n in enumerate(rows):
            parts[k].append(Tensor(t.name, t.datatype, (n, *t.shape[1:]),
                                   t.data[start * row:(start + n) * row]))
            start += n
    return parts
