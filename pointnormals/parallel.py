"""Independent pieces of CPU work on threads, one intra-op thread each.

The model's calls on batches of patches and the plane fit's chunks are independent of
each other, and each is a sequence of mid-sized tensor operations: with torch's usual
intra-op parallelism every operation splits over all cores and waits for the slowest,
and the Python between operations runs on one core. Running whole pieces side by side,
one core each, keeps every core busy instead (the model's calls 1.2-1.3x faster on 2
cores). torch releases the GIL inside its operations, so plain threads suffice.

Every piece runs the same operations on the same inputs as it would alone; the normals
of ``predict_normals`` are bit for bit the same on 1 and 2 threads (tested; a kernel
that split a reduction by thread count could change last bits, and the test would fail).

>>> import torch
>>> list(thread_map(lambda x: x * 2, [torch.ones(2), torch.zeros(2)], torch.device("cpu")))
[tensor([2., 2.]), tensor([0., 0.])]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["MAX_WORKERS", "thread_map", "workers"]

MAX_WORKERS = 8
"""Threads at most (the Python between operations holds one GIL, so many threads would
queue on it; measured only on 2 cores, where 2 threads gain 1.2-1.3x)."""

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def workers(device: torch.device) -> int:
    """Threads :func:`thread_map` spreads enough items over: ``torch.get_num_threads()``
    (at most :data:`MAX_WORKERS`) on CPU, 1 elsewhere. Work split into a multiple of it
    in equal pieces keeps every thread busy to the end."""
    return min(torch.get_num_threads(), MAX_WORKERS) if device.type == "cpu" else 1


def thread_map(
    fn: Callable[[_In], _Out], items: Iterable[_In], device: torch.device
) -> Iterator[_Out]:
    """``fn`` over ``items``, results in order, on up to ``torch.get_num_threads()``
    threads (at most :data:`MAX_WORKERS`) that split the intra-op threads between them.

    On another device than the CPU, or with one thread or one item, it is plain
    ``map``. The caller's grad mode and inference mode hold in the threads, and
    ``torch.get_num_threads()`` is restored when the iterator ends or is closed (it is
    process-wide: other threads' torch operations run with fewer threads meanwhile).
    """
    items = list(items)
    threads = torch.get_num_threads()
    count = min(workers(device), len(items))
    if count < 2:
        yield from map(fn, items)
        return
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(item: _In) -> _Out:
        # grad and inference modes are thread-local: the caller's, not the defaults
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(item)

    torch.set_num_threads(max(1, threads // count))
    try:
        with ThreadPoolExecutor(count) as pool:
            yield from pool.map(run, items)
    finally:
        torch.set_num_threads(threads)
