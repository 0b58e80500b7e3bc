r"""Split precision: geometry in float64, MLPs in float32.

Equivariance is exact in exact arithmetic; in floating point it breaks where a *discrete*
decision flips under rounding: which points are the k nearest or inside a ball, which
point farthest point sampling takes next, the sign Gram–Schmidt gives a frame axis. In
float32 that happens for about 1 % of the points of a real scan and can turn a normal by
up to 90°. Those decisions all live in the geometry (neighbour searches, sampling,
frames), which is cheap; the cost is in the features, whose float32 rounding only moves
outputs continuously (about 1e-5°).

So a float32 :class:`~pointnormals.nn.TFPointNet` takes float64 positions: it takes every
decision in float64 and rounds positions and frames to float32 only for the feature
computations. :func:`float32_mlps` covers the MLPs that read float64 geometry directly
(learned frames, frame updates): every MLP (and every bare ``nn.Linear`` outside one)
casts its input to its weights' dtype and its output back to the input's dtype.

>>> import torch
>>> from pointnormals.nn import TFPointNet
>>> model = TFPointNet([dict(reps="4x0n+2x1n", ratio=1.0, k=8)]).eval()
>>> handles = float32_mlps(model)
>>> model(torch.randn(50, 3, dtype=torch.float64)).dtype
torch.float64
"""

from __future__ import annotations

import threading
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from pointnormals.pyg import MLP

__all__ = ["float32_mlps"]


_calls = threading.local()
"""Per thread, the input dtypes of the hooked modules being called (innermost last): the
model may run on several threads at once (:func:`~pointnormals.parallel.thread_map`)."""


def _cast_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    dtype = next(module.parameters()).dtype
    _calls.__dict__.setdefault("dtypes", []).append(args[0].dtype)
    return (args[0].to(dtype), *args[1:])


def _cast_output(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
    return output.to(_calls.dtypes.pop())


def float32_mlps(model: nn.Module) -> list[RemovableHandle]:
    """Make every MLP of ``model`` compute in its own (float32) dtype whatever the input's.

    Hooks every ``torch_geometric.nn.MLP`` and every ``nn.Linear`` not inside one (e.g. an
    output head). Remove the returned handles to undo.
    """
    handles: list[RemovableHandle] = []
    inside: set[int] = set()
    for module in model.modules():
        if isinstance(module, MLP):
            inside.update(id(m) for m in module.modules())
    for module in model.modules():
        if isinstance(module, MLP) or (isinstance(module, nn.Linear) and id(module) not in inside):
            handles.append(module.register_forward_pre_hook(_cast_input))
            handles.append(module.register_forward_hook(_cast_output))
    return handles
