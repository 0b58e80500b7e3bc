r"""How a patch is cut from a scan: the one definition shared by inference and training.

A patch of *context scale* :math:`s` around a centre :math:`c` is built from the
:math:`K = sP` points nearest to :math:`c`, sorted by distance, of which the model sees
:math:`P` (``patch_points``): those at the fixed distance ranks :func:`context_ranks`
(rank 0, the centre itself, always included). With :math:`s = 1` the patch is the
:math:`P` nearest points; with :math:`s > 1` the model sees an :math:`s`-times larger piece
of surface at :math:`1/s` of the density, which is what strong noise needs (the noise is
averaged over more surface, the detail it hides is lost anyway).

Ranks by distance are invariant under rotations, reflections, translations, uniform
scaling and permutations of the cloud, so the subset is too (up to exact distance
ties), unlike a random subsample.

>>> context_ranks(8, 8).tolist()
[0, 1, 2, 3, 4, 5, 6, 7]
>>> ranks = context_ranks(4096, 1024)
>>> ranks.shape, int(ranks[0]), bool((ranks.diff() > 0).all())
(torch.Size([1024]), 0, True)
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["SCALES", "context_ranks"]

SCALES = (1, 2, 4, 8)
"""Context scales the shipped model is trained on (``predict.py --scale``)."""


@functools.lru_cache(maxsize=64)
def _ranks(context_points: int, patch_points: int) -> Tensor:
    if context_points <= patch_points:
        return torch.arange(context_points)
    generator = torch.Generator().manual_seed(context_points * 7919 + patch_points)
    rest = torch.randperm(context_points - 1, generator=generator)[: patch_points - 1] + 1
    return torch.cat([torch.zeros(1, dtype=torch.long), rest.sort().values])


def context_ranks(context_points: int, patch_points: int) -> Tensor:
    """The distance ranks (``(min(K, P),)`` sorted, int64) of the points a patch keeps.

    Args:
        context_points: ``K``, the neighbours of the centre the patch spans.
        patch_points: ``P``, the points the model sees.

    A fixed pseudo-random choice of ``P - 1`` ranks among ``1 .. K - 1`` plus rank 0, the
    same for every patch and every run (a seeded generator), so training and inference
    cut patches identically.
    """
    if context_points < 1 or patch_points < 1:
        raise ValueError("context_ranks: sizes must be >= 1")
    return _ranks(int(context_points), int(patch_points)).clone()
