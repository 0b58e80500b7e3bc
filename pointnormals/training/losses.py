r"""Losses for unoriented normals (pure torch): invariant to the sign of the prediction.

* ``abs_cos`` (default): :math:`1 - |\cos\theta|`, linear in the angle near 90° and
  quadratic near 0°;
* ``sin2``: :math:`\sin^2\theta = 1 - \cos^2\theta`, smoother, weaker on small errors;
* ``unoriented_l2``: :math:`\min(\lVert \hat n - n\rVert^2, \lVert \hat n + n\rVert^2)`
  (PCPNet's loss for unoriented normals).

>>> pred = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
>>> true = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
>>> [round(get_loss(name)(pred, true).item(), 3) for name in LOSSES]
[0.5, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["LOSSES", "abs_cos_loss", "get_loss", "sin2_loss", "unoriented_l2_loss"]


def _cos(pred: Tensor, target: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(pred, target, dim=-1, eps=1e-12)


def abs_cos_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean :math:`1 - |\cos\theta|`. Shapes: ``(N, 3)``, ``(N, 3)`` → ``()``."""
    return (1.0 - _cos(pred, target).abs()).mean()


def sin2_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean :math:`\sin^2\theta`. Shapes: ``(N, 3)``, ``(N, 3)`` → ``()``."""
    return (1.0 - _cos(pred, target).square()).mean()


def unoriented_l2_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean :math:`\min(\lVert\hat n - n\rVert^2, \lVert\hat n + n\rVert^2)` (unit vectors)."""
    minus = (pred - target).square().sum(-1)
    plus = (pred + target).square().sum(-1)
    return torch.minimum(minus, plus).mean()


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "abs_cos": abs_cos_loss,
    "sin2": sin2_loss,
    "unoriented_l2": unoriented_l2_loss,
}
"""Loss functions by name (``module.loss=<name>``)."""


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called ``name``; ``ValueError`` lists the known names."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
