r"""Scan lines: how many nearest points a neighbourhood needs to span two directions.

Mobile and airborne LiDAR, rotating multi-beam sensors and profile scanners sample a
surface densely along lines and sparsely across them. The ``k`` nearest points of a
point then lie on one or two lines, and a plane through them follows the line's own
curvature instead of the surface: the plane fit's 16 neighbours (and a model that never
saw such sampling) go wrong where PCA with more neighbours does not.

At ``samples`` centres (:func:`~pointnormals.patching.spread_sample`) the ``k`` nearest
points have covariance eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \lambda_3`; the
neighbourhoods span two directions at ``k`` when

.. math::
    \operatorname{median}_i \; \lambda_2 / \lambda_1 \;\ge\; \tau
    \qquad (\tau = \text{SPREAD}),

and :func:`spread_points` is the smallest such ``k`` of 16, 32, 64, 128. Eigenvalue
ratios are invariant under rotations, reflections, translations, uniform scaling and
permutations.

Calibration (median :math:`\lambda_2/\lambda_1` at ``k = 16``): the clouds of
``scripts/bench_accuracy.py`` (100k points; clean, noisy, density gradients, range
scans, ModelNet40 10k) read 0.535-0.765, noise and the regular grids of range scans
the highest; the spot mesh cut into 200, 100, 50 and 25 scan lines (3M samples kept
within 0.2 % of a line spacing, 11-12k points) reads 0.57, 0.55, 0.43 and 0.001; the
127 shapes of ``modelnet40_mini`` (10k points) 0.50 and more (flower pots, vases).

Limits: noise along the scan lines fattens them: the same 50 lines with 0.05-0.125 % of
the diagonal read 0.45-0.49 (three meshes), at the threshold, so some such clouds keep
16 neighbours and the error of before (up to 1.8x that of PCA k=30); a
higher threshold would reach ModelNet40's vases. Lines sparser than that (25 lines:
0.00-0.03, with noise too) are found with a wide margin.
"""

from __future__ import annotations

from torch import Tensor

from pointnormals import graph
from pointnormals.geometry import symmetric_eigh
from pointnormals.patching import CLEAN_SURFACE, spread_sample

__all__ = ["SPREAD", "SPREAD_REACH", "spread_points"]

SPREAD = 0.45
r""":math:`\tau`: the median :math:`\lambda_2/\lambda_1` of neighbourhoods that span two
directions (0.535 and more on every uniformly sampled benchmark cloud)."""

SPREAD_REACH = 128
"""The largest ``k`` tried; scan lines needing more get it."""


def spread_points(
    pos: Tensor,
    search: graph.PatchSearch | None = None,
    samples: int = 512,
    threshold: float = SPREAD,
) -> int:
    r"""The smallest ``k`` (16, 32, 64, ... :data:`SPREAD_REACH`) at which the ``k`` nearest
    points span two directions (see the module docstring); 16 on uniform samples.

    Args:
        pos: ``(N, 3)`` the cloud.
        search: a :class:`~pointnormals.graph.PatchSearch` of ``pos`` to reuse.
        samples: centres.
        threshold: :math:`\tau`.
    """
    search = search or graph.PatchSearch(pos)
    centres = spread_sample(pos, samples)
    k = CLEAN_SURFACE
    nearest = search.query(pos[centres], k)
    while True:
        local = pos[nearest] - pos[nearest].mean(dim=1, keepdim=True)  # (S, k, 3)
        values, _ = symmetric_eigh(local.transpose(1, 2) @ local)  # ascending
        ratio = values[:, 1] / values[:, 2].clamp_min(1e-300)
        if float(ratio.median()) >= threshold or k >= min(SPREAD_REACH, pos.size(0)):
            return k
        k *= 2
        nearest = search.query(pos[centres], k)
