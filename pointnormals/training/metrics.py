r"""Errors of *unoriented* normals (pure torch; lines, not vectors).

A predicted normal :math:`\hat n` and the ground truth :math:`n` are compared as lines,
so :math:`\hat n` and :math:`-\hat n` score the same:

.. math::
    \theta = \operatorname{atan2}\big(\lVert \hat n \times n \rVert,\ |\hat n \cdot n|\big)
    \in [0°, 90°].

(:func:`~pointnormals.geometry.angle_deg`; ``atan2`` keeps full precision near 0° where
``acos`` does not). Per cloud, following PCPNet and Nesti-Net: the mean angle, the RMSE
angle :math:`\sqrt{\tfrac1N\sum_i \theta_i^2}`, the mean of :math:`1 - |\cos\theta|`
and PGP(α), the percentage of points with :math:`\theta < α` (α = 5°, 10°). A split's
value is the average over its clouds.

>>> pred = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
>>> true = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
>>> {k: round(v.item(), 2) for k, v in normal_errors(pred, true).items()}
{'angle': 30.0, 'rmse': 51.96, 'one_minus_cos': 0.33, 'pgp5': 66.67, 'pgp10': 66.67}
"""

from __future__ import annotations

import torch
from torch import Tensor

from pointnormals.geometry import angle_deg
from pointnormals.pyg import scatter

__all__ = ["METRICS", "cloud_errors", "normal_errors", "unoriented_cos"]

METRICS = ("angle", "rmse", "one_minus_cos", "pgp5", "pgp10")
"""Names of the per-cloud errors, in logging order."""


def unoriented_cos(pred: Tensor, target: Tensor) -> Tensor:
    r""":math:`|\cos\theta|` between the lines of ``pred`` and ``target``, in ``[0, 1]``.

    Shapes:
        pred, target: ``(N, 3)`` (any non-zero length) → ``(N,)``.
    """
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1, eps=1e-12)
    return cos.abs().clamp(max=1.0)


def cloud_errors(
    pred: Tensor, target: Tensor, batch: Tensor | None = None, num_clouds: int | None = None
) -> dict[str, Tensor]:
    """Per-cloud errors (see the module doc), one value per cloud for each of :data:`METRICS`.

    Shapes:
        pred, target: ``(N, 3)``, batch: ``(N,)`` cloud index → each value ``(B,)``.
    """
    if batch is None:
        batch = torch.zeros(pred.size(0), dtype=torch.long, device=pred.device)
    if num_clouds is None:
        num_clouds = int(batch.max()) + 1 if batch.numel() else 0
    angle = angle_deg(pred, target)  # (N,) unoriented
    per_point = {
        "angle": angle,
        "rmse": angle.square(),
        "one_minus_cos": 1.0 - unoriented_cos(pred, target),
        "pgp5": 100.0 * (angle < 5.0).to(angle.dtype),
        "pgp10": 100.0 * (angle < 10.0).to(angle.dtype),
    }
    out = {
        name: scatter(value, batch, dim=0, dim_size=num_clouds, reduce="mean")
        for name, value in per_point.items()
    }
    out["rmse"] = out["rmse"].sqrt()
    return out


def normal_errors(pred: Tensor, target: Tensor, batch: Tensor | None = None) -> dict[str, Tensor]:
    """Errors averaged over the clouds of ``batch`` (one scalar tensor per name)."""
    return {name: value.mean() for name, value in cloud_errors(pred, target, batch).items()}
