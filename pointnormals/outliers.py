r"""Isolated points: stray returns that must not steer where patches and samples go.

A point is *isolated* when its :math:`r`-th nearest other point is much farther than is
typical for the cloud:

.. math::
    d_i = \lVert p_{\pi_i(r)} - p_i \rVert, \qquad
    \text{isolated}_i \iff d_i > f \cdot \operatorname{median}_j d_j,

with :math:`r` = :data:`ISOLATION_RANK` and :math:`f` = :data:`ISOLATION_FACTOR`. Distance
ratios are invariant under rotations, reflections, translations, uniform scaling and
permutations, so the verdict is too (up to exact distance ties).

Why: farthest point sampling picks the points farthest from everything first, and a
stray return (dust, a bird, a multipath echo, a floating photogrammetry speck) is exactly
that. With 1 % of uniform outliers in a 100k-point scan, 128 of the 151 first patch
centres and all 64 centres of the noise estimate were outliers: the estimate read 16384
points instead of 16, the scan got the context and plane fit of the strongest noise, and
the model fell behind PCA k=30. Isolated points still get normals: they are only kept
out of the centres that :func:`~pointnormals.patching.surface_points` and the first round
of :func:`~pointnormals.patching.plan_patches` draw; the later rounds cover whatever is
left, so a sparse but genuine part of a scene (a far wall) still gets patches of its
own.

Calibration (the clouds of ``scripts/bench_accuracy.py``, 100k points): on clean,
noisy (up to 1.2 %) and density-gradient clouds no point exceeds the factor; on simulated
range scans, grazing rays and silhouettes flag up to 0.05 % of the points; of uniform
outliers (1 % of the points, in 1.5x the bounding box) 79-93 % are flagged; the rest lie
within a few spacings of the surface, where they are noise to the model. A share of
strays that :func:`~pointnormals.patching.plan_patches` still draws as first centres
costs little: the noise estimate, which they used to swamp, no longer samples by
farthest point sampling (:func:`~pointnormals.patching.spread_sample`).

>>> import torch
>>> from pointnormals import graph
>>> plane = torch.cartesian_prod(*[torch.arange(40.0)] * 2)
>>> cloud = torch.cat([torch.nn.functional.pad(plane, (0, 1)), torch.tensor([[20.0, 20.0, 50.0]])])
>>> isolated_points(graph.PatchSearch(cloud.double())).nonzero().flatten().tolist()
[1600]
"""

from __future__ import annotations

from torch import Tensor

from pointnormals import graph

__all__ = ["ISOLATION_FACTOR", "ISOLATION_RANK", "isolated_points"]

ISOLATION_RANK = 15
"""``r``: the nearest other point whose distance is compared (the 16 nearest points of
every point, itself included, are what the clean plane fit reuses)."""

ISOLATION_FACTOR = 8.0
"""``f``: how many times the median distance makes a point isolated."""


def isolated_points(
    search: graph.PatchSearch, rank: int = ISOLATION_RANK, factor: float = ISOLATION_FACTOR
) -> Tensor:
    """Which points of the cloud of ``search`` are isolated (see the module docstring).

    Args:
        search: the cloud's neighbour search; its :meth:`~pointnormals.graph.PatchSearch.nearest`
            table of ``rank + 1`` columns is computed here and kept for the plane fit.
        rank: ``r``, which nearest other point measures the distance.
        factor: ``f``.

    Shapes:
        returns ``(N,)`` bool, on the device of the cloud.
    """
    pos = search.pos
    nearest = search.nearest(rank + 1)  # (N, r + 1), the point itself first
    reach = (pos[nearest[:, -1].long()] - pos).norm(dim=-1)  # (N,)
    return reach > factor * reach.median()
