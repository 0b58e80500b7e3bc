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
    \operatorname{median}_i \, \lambda_2 / \lambda_1 \;\ge\; \tau
    \quad\text{and, at } k = 16,\quad
    Q_{q}\big(\lambda_2 / \lambda_1\big) \;\ge\; \tau_q,

(:math:`Q_q`: the :math:`q`-quantile over the centres; :math:`\tau` = :data:`SPREAD`,
:math:`q, \tau_q` = :data:`SPREAD_QUANTILE`, :data:`SPREAD_LOW`), and
:func:`spread_points` is the smallest such ``k`` of 16, 32, 64, 128. Where 16 already
spans two directions but the median falls as ``k`` grows to 32 or 64
(:data:`SPREAD_GROWTH`; on a surface it grows), noise hides the lines from small
neighbourhoods and the answer is 128. Eigenvalue ratios are invariant under rotations,
reflections, translations, uniform scaling and permutations.

Why both: noise along the lines lifts the median towards that of uniform samples, not
the share of neighbourhoods that lie on a single line (ratio near 0), so the low
quantile tells noisy scan lines from uniform samples at ``k = 16``; sizing ``k`` by the
quantile too would overshoot (on 25 clean lines it chose 128 neighbours where 32-64 fit
best, 15.3° against 10.6° RMSE on spot), so the median sizes it.

Calibration (:math:`\lambda_2/\lambda_1` at ``k = 16``, 10th percentile / median): the
clouds of ``scripts/bench_accuracy.py`` (100k points; clean, noisy, density gradients,
range scans; 10k ModelNet40) all read 16; the 127 shapes of ``modelnet40_mini`` read
0.19 / 0.50 and more (a vase); mesh samples, clean to 1.2 % noise, 0.33 / 0.56 and more.
Spot, nefertiti and rocker-arm cut into scan lines (3M samples kept within 0.2 % of a
line spacing, 11-12k points), with 0-0.125 % noise of the diagonal: 0.21-0.32 /
0.52-0.57 on 100 lines (where 16 neighbours still fit well), 0.001-0.07 / 0.43-0.50 on
50 lines, at most 0.013 / 0.035 on 25 lines.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pointnormals import graph
from pointnormals.geometry import symmetric_eigh
from pointnormals.patching import CLEAN_SURFACE, spread_sample

__all__ = [
    "SPREAD",
    "SPREAD_GROWTH",
    "SPREAD_LOW",
    "SPREAD_QUANTILE",
    "SPREAD_REACH",
    "spread_points",
]

SPREAD = 0.45
r""":math:`\tau`: the median :math:`\lambda_2/\lambda_1` of neighbourhoods that span two
directions (0.50 and more on uniform samples, 0.43-0.50 on 50 scan lines)."""

SPREAD_QUANTILE, SPREAD_LOW = 0.1, 0.12
r""":math:`q`, :math:`\tau_q`: at ``k = 16`` the :math:`q`-quantile must reach
:math:`\tau_q` too (0.19 and more on uniform samples, 0.07 and less on 50 scan lines)."""

SPREAD_REACH = 128
"""The largest ``k`` tried; scan lines needing more get it."""

SPREAD_GROWTH = 1.0
r"""Noise-hidden scan lines: where 16 neighbours look two-dimensional but the median
:math:`\lambda_2/\lambda_1` at 32 or 64 falls below this times its value at 16, the
cloud is scan lines that noise hides from small neighbourhoods, and :func:`spread_points`
returns :data:`SPREAD_REACH` (judged on clouds of 1024 points or more, where 64
neighbours are a small piece of the cloud). On a surface the ratio grows with ``k`` (sampling
fluctuations average out): 1.05x and more on the 58 clouds of ``scripts/bench_accuracy.py``
(noise up to 1.2 %, range scans) and the 127 ``modelnet40_mini`` shapes (thin legs and
shelves included); 0.57-0.92x on 9 of 10 clouds of 20 and 40 lines with 0.3 % noise
(1.03x on the tenth)."""


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
    reach = min(SPREAD_REACH, pos.size(0))

    def ratios(k: int) -> Tensor:
        nearest = search.neighbours_of(centres, k)  # the nearest-point table's rows, if kept
        local = pos[nearest] - pos[nearest].mean(dim=1, keepdim=True)  # (S, k, 3)
        values, _ = symmetric_eigh(local.transpose(1, 2) @ local)  # ascending
        return values[:, 1] / values[:, 2].clamp_min(1e-300)

    k = CLEAN_SURFACE
    ratio = ratios(k)
    first = float(ratio.median())
    # noise lifts the median, not the share of single lines
    if first >= threshold and float(torch.quantile(ratio, SPREAD_QUANTILE)) >= SPREAD_LOW:
        # two-dimensional at 16: a surface, or lines that noise hides from 16 neighbours
        # (told apart where 64 neighbours are at most a 16th of the cloud)
        if pos.size(0) < 16 * 4 * k:
            return k
        wider = min(float(ratios(w).median()) for w in (2 * k, 4 * k))
        return reach if wider < SPREAD_GROWTH * first else k
    while k < reach:
        k *= 2
        if float(ratios(k).median()) >= threshold:
            return k
    return k
