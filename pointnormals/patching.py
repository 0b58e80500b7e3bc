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
ties), unlike a random subsample. On scan lines (dense along lines, sparse across) a
subset by rank is lines too, which the network reads poorly; there inference takes
:func:`even_samples` instead, a farthest point sampling of the :math:`K` points.

>>> context_ranks(8, 8).tolist()
[0, 1, 2, 3, 4, 5, 6, 7]
>>> ranks = context_ranks(4096, 1024)
>>> ranks.shape, int(ranks[0]), bool((ranks.diff() > 0).all())
(torch.Size([1024]), 0, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pointnormals import graph
from pointnormals.geometry import symmetric_eigh

__all__ = [
    "CLEAN_SURFACE",
    "SCALES",
    "Patches",
    "blend",
    "context_ranks",
    "depth_weights",
    "even_samples",
    "flat_patch_normals",
    "plan_patches",
    "spread_sample",
    "surface_points",
    "thickness_and_normal",
]

SCALES = (1, 2, 4, 8)
"""Context scales the shipped model is trained on (``predict.py --scale``)."""

CLEAN_SURFACE = 16
""":func:`surface_points` of a clean surface: the smallest neighbourhood it tries."""


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


def even_samples(local: Tensor, patch_points: int) -> Tensor:
    r"""The ``P`` points of every patch that the model sees on scan lines: farthest point
    sampling of the patch's ``K`` points, sorted by rank.

    On a cloud of scan lines a patch's points at fixed ranks (:func:`context_ranks`), a
    random subset, lie on the lines in clumps: many close pairs along a line, which the
    model's nearest-neighbour graphs join instead of reaching across to the next line.
    Farthest point sampling spreads them evenly (no two much closer than the sampling's
    spacing), and at a large enough context scale
    (:data:`~pointnormals.inference.SCAN_LINE_SCALE`) the model then sees an ordinary,
    evenly sampled piece of surface.

    The sampling starts at the patch's point farthest from its centroid
    (:func:`~pointnormals.graph.farthest_point_sample`), so the chosen set commutes with
    rotations, reflections, translations, scaling and permutations (up to exact ties).

    Shapes:
        local: ``(B, K, 3)`` every patch's points, nearest to its centre first →
        ``(B, min(K, P))`` int64 indices into ``K``, increasing.
    """
    b, k = local.shape[:2]
    if k <= patch_points:
        return torch.arange(k, device=local.device).expand(b, k)
    batch = torch.arange(b, device=local.device).repeat_interleave(k)
    # (P + 1/2) / K: torch_cluster's rounding up gives P + 1 picks, of which the first P
    pick = graph.farthest_point_sample(local.reshape(-1, 3), (patch_points + 0.5) / k, batch)
    pick = pick.view(b, -1)[:, :patch_points] - k * torch.arange(b, device=local.device)[:, None]
    return pick.sort(dim=1).values


@dataclass(frozen=True)
class Patches:
    """A cover of a cloud by overlapping patches.

    Attributes:
        centres: ``(C,)`` index of every patch's centre point.
        context: ``(C, K)`` the ``K`` points nearest to every centre, nearest first; the
            model sees ``context[:, context_ranks(K, P)]``, the others take the
            prediction of their nearest seen point.
        outside: ``(2, M)`` pairs ``(point, patch)``, sorted by patch: the points in no
            context, each attached to the patch of its nearest centre (it takes the
            prediction of that patch's nearest seen point, at the border weight).
    """

    centres: Tensor
    context: Tensor
    outside: Tensor

    @property
    def num_patches(self) -> int:
        return self.context.size(0)


def plan_patches(
    pos: Tensor,
    context_points: int,
    overlap: float = 1.5,
    max_rounds: int = 2,
    search: graph.PatchSearch | None = None,
    core: Tensor | None = None,
) -> Patches:
    r"""Cover ``pos`` ``(N, 3)`` with patches spanning ``context_points`` nearest points each.

    1. Centres: farthest point sampling, :math:`C = \lceil \text{overlap}\cdot N/K\rceil`.
    2. Every centre's ``K`` nearest points (:class:`~pointnormals.graph.PatchSearch`).
    3. Points in no patch yet become extra centres (farthest point sampling among them,
       same rule), for ``max_rounds`` rounds in all; the few still uncovered (thin gaps
       between patches; more than ``K`` coincident points) are attached to the patch of
       their nearest centre (``outside``).

    Every step commutes with rotations, reflections, translations, uniform scaling and
    permutations (FPS starts at an invariant point; neighbourhoods are distances).
    ``search`` reuses a neighbour search built on ``pos``; ``core`` ``(N,)`` bool limits
    the first round's centres to those points (not isolated ones,
    :func:`~pointnormals.outliers.isolated_points`; later rounds cover the rest).
    """
    n = pos.size(0)
    k = min(context_points, n)
    search = search or graph.PatchSearch(pos)
    centres = [pos.new_empty(0, dtype=torch.long)]
    contexts = [pos.new_empty(0, k, dtype=torch.long)]
    covered = torch.zeros(n, dtype=torch.bool, device=pos.device)
    candidates = torch.arange(n, device=pos.device) if core is None else core.nonzero()[:, 0]
    for _ in range(max_rounds):
        if not candidates.numel():
            break
        count = math.ceil(overlap * candidates.numel() / k)
        ratio = min(1.0, count / candidates.numel())
        new = candidates[graph.farthest_point_sample(pos[candidates], ratio)]
        context = search.query(pos[new], k)
        covered[context.reshape(-1)] = True
        centres.append(new)
        contexts.append(context)
        candidates = (~covered).nonzero().squeeze(1)
    centres = torch.cat(centres)
    patch, target = graph.knn(pos[centres], pos[candidates], 1)  # nearest centre
    order = patch.argsort(stable=True)
    outside = torch.stack([candidates[target[order]], patch[order]])
    return Patches(centres, torch.cat(contexts), outside)


EARLY_REACH = 64
"""Neighbours :func:`surface_points` queries first; more only if the median needs them."""


def surface_points(
    pos: Tensor,
    max_points: int,
    samples: int = 64,
    threshold: float = 0.25,
    search: graph.PatchSearch | None = None,
    core: Tensor | None = None,
) -> float:
    r"""How many nearest points a neighbourhood needs before it looks like a surface.

    At ``samples`` centres (:func:`spread_sample`) and for :math:`k = 16, 32, 64,
    \dots \le` ``max_points``, the :math:`k` nearest points have covariance eigenvalues
    :math:`\lambda_1 \ge \lambda_2 \ge \lambda_3` and thickness
    :math:`\rho_k = \sqrt{\lambda_3 / (\lambda_1+\lambda_2+\lambda_3)}`
    (:func:`thickness_and_normal`). A centre's :math:`k^*` is the smallest :math:`k`
    with :math:`\rho_k <` ``threshold`` (``2 * max_points`` when there is none); the
    result is the median over the centres. Noise of standard deviation :math:`\sigma` on
    a surface sampled at spacing :math:`h` gives :math:`k^* \propto (\sigma/h)^2`; a
    clean surface gives 16 (curvature only raises :math:`\rho_k` at large :math:`k`).
    Invariant under rotations, reflections, translations, uniform scaling and
    permutations. ``core`` ``(N,)`` bool limits the centres to those points (not
    isolated ones, :func:`~pointnormals.outliers.isolated_points`).

    The centres follow the points, not the space they span (unlike farthest point
    sampling, which picks the points farthest from everything first): stray returns
    weigh in the median as much as they are among the points. With 5 % of uniform
    outliers (in 1.5x the bounding box of a 100k-point scan, 0.125 % noise) farthest
    point sampling read 16384 points instead of 16 and the model's RMSE rose from
    7.3° to 10.6° (PCA k=30: 7.9°); these centres read 16 and 7.2°, 7.3° with 20 %.
    """
    n = pos.size(0)
    max_points = min(max_points, n)
    search = search or graph.PatchSearch(pos)
    centres = spread_sample(pos, samples, core)
    first = torch.full((centres.numel(),), 2.0 * max_points, dtype=torch.float64)
    # the (lower) median is settled once more than half the centres have their k*: a
    # first query of few neighbours settles clean clouds (8192 neighbours of the
    # centres are a tenth of a 10k cloud's whole prediction time)
    settled = (centres.numel() - 1) // 2 + 1
    k = CLEAN_SURFACE
    for reach in sorted({min(EARLY_REACH, max_points), max_points}):
        neighbours = search.query(pos[centres], reach)  # (S, reach), nearest first
        while k <= reach:
            thickness, _ = thickness_and_normal(pos[neighbours[:, :k]].double())
            found = (thickness.cpu() < threshold) & (first > max_points)
            first = torch.where(found, float(k), first)
            k *= 2
        if int((first <= max_points).sum()) >= settled:
            break
    return float(first.median())


def spread_sample(pos: Tensor, samples: int, core: Tensor | None = None) -> Tensor:
    r"""``samples`` points at evenly spaced ranks of the distance to the centroid.

    Spread over the cloud in proportion to its points, invariant under rotations,
    reflections, translations, uniform scaling and permutations (up to exact distance
    ties), and cheap: one sort, where farthest point sampling takes about a second per
    100k points. ``core`` ``(N,)`` bool: draw from those points only.

    Shapes:
        pos: ``(N, 3)`` → indices ``(min(samples, M),)`` into ``pos`` (``M`` points drawn
        from).
    """
    pool = torch.arange(pos.size(0), device=pos.device) if core is None else core.nonzero()[:, 0]
    m = pool.numel()
    radial = (pos[pool] - pos.mean(dim=0)).pow(2).sum(-1)
    ranks = torch.linspace(0, m - 1, min(samples, m), dtype=torch.float64).round().long()
    return pool[torch.sort(radial, stable=True).indices[ranks.to(pos.device)]]


def depth_weights(distance: Tensor, radius: Tensor) -> Tensor:
    r"""Blending weight of (patch, point) pairs from their distance to the patch centre.

    .. math::
        w = \big(1 - (d / d_K)^2\big)_+^2 + 10^{-4}

    with :math:`d_K` the distance of the patch's farthest point: deep points count most,
    points on the border (or beyond it) almost nothing, but something, should a point lie
    on the border of every patch that contains it.

    Shapes:
        distance: ``(..., M)``; radius: ``(..., 1)`` (broadcasts) → ``(..., M)``.
    """
    depth = distance / radius.clamp_min(torch.finfo(distance.dtype).tiny)
    return (1 - depth.square()).clamp_min(0).square() + 1e-4


FLAT = 1e-5
"""Thickness below which a patch counts as flat (see :func:`flat_patch_normals`)."""


def thickness_and_normal(points: Tensor) -> tuple[Tensor, Tensor]:
    r"""Thickness :math:`\sqrt{\lambda_3 / (\lambda_1 + \lambda_2 + \lambda_3)}` of point
    sets (about 0.4 for a ball of noise, 0 for a plane) and their least-variance axes,
    from the eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \lambda_3` of each set's
    covariance. Invariant (the axis: equivariant as a line) under rotations, reflections,
    translations and scaling.

    Shapes:
        points: ``(B, K, 3)`` → thickness ``(B,)``, axis ``(B, 3)``.
    """
    centred = points - points.mean(dim=1, keepdim=True)
    values, vectors = symmetric_eigh(centred.transpose(1, 2) @ centred)  # ascending
    total = values.sum(-1).clamp_min(torch.finfo(values.dtype).tiny)
    return (values[:, 0].clamp_min(0) / total).sqrt(), vectors[:, :, 0]


def flat_patch_normals(local: Tensor, pred: Tensor, tol: float = FLAT) -> Tensor:
    r"""The predictions, with those of flat patches replaced by the plane's normal.

    A patch is flat when its thickness (:func:`thickness_and_normal`) is at most
    ``tol``; every point of it then gets the least-variance axis. Why: a flat patch (a
    CAD face, a synthetic plane) is its own mirror image, so no frame can orient its
    normal axis equivariantly (the frames fall back to :math:`\det R = +1`) and the
    network's answer would change under reflections, while the plane's normal is exact
    and equivariant as a line (its sign is the eigen-solver's: a mirror-symmetric patch
    has no equivariant sign).

    Shapes:
        local: ``(B, P, 3)`` points of ``B`` patches; pred: ``(B, P, 3)`` → ``(B, P, 3)``.
    """
    thickness, normal = thickness_and_normal(local)
    flat = thickness <= tol  # (B,)
    if not bool(flat.any()):
        return pred
    plane = normal.to(pred.dtype).unsqueeze(1).expand_as(pred)
    return torch.where(flat[:, None, None], plane, pred)


def blend(point: Tensor, weight: Tensor, normal: Tensor, num_points: int) -> Tensor:
    r"""One unit normal per point from the weighted predictions of all its patches.

    The prediction of highest weight is the reference :math:`r_i`; every prediction is
    sign-aligned to it and averaged, :math:`n_i \propto \sum w\,\mathrm{sign}(n\cdot r_i)\,n`
    (the reference itself where the sum vanishes). Exact weight ties go to the first pair.

    Shapes:
        point: ``(M,)`` point index of every (patch, point) pair; weight: ``(M,)``;
        normal: ``(M, 3)`` unit predictions → ``(num_points, 3)``.
    """
    pair = torch.arange(point.numel(), device=point.device)
    best = torch.full((num_points,), -1.0, dtype=weight.dtype, device=weight.device)
    best = best.scatter_reduce(0, point, weight, "amax")
    top = weight == best[point]
    first = torch.zeros(num_points, dtype=torch.long, device=point.device)
    first = first.scatter_reduce(0, point[top], pair[top], "amin", include_self=False)
    reference = normal[first]  # (num_points, 3); every point needs at least one pair
    sign = torch.where((normal * reference[point]).sum(-1) < 0, -1.0, 1.0).to(normal.dtype)
    total = torch.zeros(num_points, 3, dtype=normal.dtype, device=normal.device)
    total.index_add_(0, point, (weight * sign).unsqueeze(-1) * normal)
    length = total.norm(dim=-1, keepdim=True)
    return torch.where(length > 1e-6, total / length.clamp_min(1e-12), reference)
