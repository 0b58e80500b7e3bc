"""How patches are cut, weighted and blended (shared by training and inference)."""

from __future__ import annotations

import torch

from pointnormals import graph
from pointnormals.frames.random import random_orthogonal
from pointnormals.patching import (
    EARLY_REACH,
    blend,
    context_ranks,
    depth_weights,
    even_samples,
    plan_patches,
    spread_sample,
    surface_points,
    thickness_and_normal,
)


def ellipsoid(n: int, seed: int = 0, noise: float = 0.01) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)
    return x + noise * torch.randn(n, 3, generator=g, dtype=x.dtype)


def test_context_ranks_are_fixed_sorted_and_start_at_the_centre():
    a, b = context_ranks(2048, 256), context_ranks(2048, 256)
    assert torch.equal(a, b) and a.numel() == 256 and int(a[0]) == 0
    assert bool((a.diff() > 0).all()) and int(a[-1]) < 2048
    assert torch.equal(context_ranks(100, 256), torch.arange(100))  # K <= P: all of them
    # spread over the whole context, not bunched at the near end
    assert int(a[-1]) > 1800 and int((a < 1024).sum()) < 160


def test_patches_cover_every_point_with_k_nearest_neighbours():
    pos = ellipsoid(3000)
    patches = plan_patches(pos, 200, overlap=1.5)
    assert patches.context.shape == (patches.num_patches, 200)
    assert patches.num_patches >= 23  # about 1.5 * 3000 / 200 centres
    assert torch.equal(patches.context[:, 0], patches.centres)  # nearest first: itself
    point, _ = patches.outside  # a few points in thin gaps between patches
    assert point.numel() < 0.05 * 3000
    assert torch.unique(torch.cat([patches.context.reshape(-1), point])).numel() == 3000
    # brute force: each context is the 200 nearest points, sorted by distance
    dist = torch.cdist(pos[patches.centres], pos)
    nearest = dist.topk(200, largest=False).indices
    assert torch.equal(patches.context.sort(1).values, nearest.sort(1).values)
    d = dist.gather(1, patches.context)
    assert bool((d.diff(dim=1) >= 0).all())


def test_points_in_no_patch_attach_to_the_nearest_centre():
    """More coincident points than a patch holds: some are in no context."""
    pos = torch.cat([ellipsoid(500), ellipsoid(1)[:1].expand(300, 3)])
    patches = plan_patches(pos, 100)
    point, patch = patches.outside
    assert point.numel() > 0 and bool((patch.diff() >= 0).all())
    assert torch.unique(torch.cat([patches.context.reshape(-1), point])).numel() == 800
    assert not torch.isin(point, patches.context).any()
    nearest = torch.cdist(pos[point], pos[patches.centres]).min(1).values
    torch.testing.assert_close((pos[point] - pos[patches.centres[patch]]).norm(dim=-1), nearest)


def test_plan_and_noise_estimate_are_invariant():
    """Same centres and contexts after rotation/reflection, scaling and translation."""
    pos = ellipsoid(2000)
    q = random_orthogonal(1, dtype=pos.dtype, generator=torch.Generator().manual_seed(3))[0]
    q = q * torch.linalg.det(q)  # a reflection
    moved = 7.0 * pos @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=pos.dtype)
    a, b = plan_patches(pos, 150), plan_patches(moved, 150)
    assert torch.equal(a.centres, b.centres) and torch.equal(a.context, b.context)
    assert torch.equal(a.outside, b.outside)
    assert surface_points(pos, 1024) == surface_points(moved, 1024)


def test_surface_points_grow_with_noise():
    """A clean surface looks like one at 16 points; noise needs more, more noise more."""
    sizes = [surface_points(ellipsoid(8000, noise=s), 4096) for s in (0.0, 0.05, 0.1, 0.2)]
    assert sizes[0] == 16 and sizes[0] < sizes[1] < sizes[2] < sizes[3] == 2 * 4096  # none


def test_surface_points_queries_far_neighbours_only_when_the_median_needs_them():
    """Every centre's smallest surface-like k, then the median, as with all 4096 nearest
    points of every centre at once; a clean cloud is settled by the first 64."""
    for noise in (0.0, 0.02, 0.05, 0.1, 0.2):
        pos = ellipsoid(8000, noise=noise)
        search = graph.PatchSearch(pos)
        reaches = []
        query = search.query

        def recorded(centres, k, query=query, reaches=reaches):
            reaches.append(k)
            return query(centres, k)

        search.query = recorded
        estimate = surface_points(pos, 4096, search=search)
        centres = spread_sample(pos, 64)
        near = query(pos[centres], 4096)
        first = torch.full((64,), 8192.0, dtype=torch.float64)
        for k in (4096, 2048, 1024, 512, 256, 128, 64, 32, 16):  # the smallest k wins
            thickness, _ = thickness_and_normal(pos[near[:, :k]])
            first = torch.where(thickness < 0.25, float(k), first)
        assert estimate == float(first.median())
        assert reaches == ([EARLY_REACH] if estimate <= EARLY_REACH else [EARLY_REACH, 4096])
    assert reaches == [EARLY_REACH, 4096]  # the noisiest cloud needs them all


def test_depth_weights_fall_from_centre_to_border():
    distance = torch.linspace(0, 2, 21, dtype=torch.float64)
    w = depth_weights(distance, torch.tensor([1.0], dtype=torch.float64))
    assert float(w[0]) == 1 + 1e-4 and abs(float(w[5]) - (0.75**2 + 1e-4)) < 1e-12  # d = 0.5
    assert bool((w[10:] == 1e-4).all())  # on the border and beyond
    assert bool((w.diff() <= 0).all())


def test_blend_aligns_signs_and_weights_predictions():
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    point = torch.tensor([0, 0, 1, 1])
    weight = torch.tensor([1.0, 0.5, 1.0, 3.0])
    out = blend(point, weight, n, 2)
    # point 0: z and -z agree once sign-aligned to the heavier z
    torch.testing.assert_close(out[0], torch.tensor([0.0, 0.0, 1.0]))
    # point 1: weighted mean of x (1) and y (3), normalised
    torch.testing.assert_close(
        out[1], torch.nn.functional.normalize(torch.tensor([1.0, 3, 0]), dim=0)
    )
    # cancelling predictions fall back to the heaviest one
    out = blend(torch.tensor([0, 0]), torch.tensor([1.0, 1.0]), n[:1].expand(2, 3) * 0, 1)
    assert torch.isfinite(out).all()


def lines_patch(patches: int, k: int, seed: int = 0) -> torch.Tensor:
    """``(B, K, 3)`` patches of a unit square cut into 51 lines (0.02 apart along x,
    1e-4 wide), sorted by distance to the first point."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(patches, k, 2, generator=g, dtype=torch.float64)
    x[..., 0] = (x[..., 0] * 50).round() / 50 + 1e-4 * x[..., 0]
    local = torch.cat([x, torch.zeros(patches, k, 1, dtype=torch.float64)], -1)
    local = local - local[:, :1]
    order = local.norm(dim=-1).argsort(dim=1)
    return local.gather(1, order.unsqueeze(-1).expand(-1, -1, 3))


def test_even_samples_spread_a_patch_of_lines_over_its_area():
    local = lines_patch(3, 4096)
    pick = even_samples(local, 256)
    assert pick.shape == (3, 256) and bool((pick.diff(dim=1) > 0).all())  # sorted, distinct
    ranked = context_ranks(4096, 256)
    for b in range(3):
        low = {}
        for name, index in (("even", pick[b]), ("ranks", ranked)):
            p = local[b, index, :2]
            gaps = torch.cdist(p, p).fill_diagonal_(float("inf")).amin(dim=1)
            low[name] = float(gaps.quantile(0.1))
        # ranks keep close pairs along the lines (measured 0.006-0.013); even samples none
        # closer than about the sampling's spacing (0.054)
        assert low["even"] > 3 * low["ranks"], low
    assert torch.equal(even_samples(local[:, :200], 256), torch.arange(200).expand(3, 200))


def test_even_samples_are_invariant():
    local = lines_patch(2, 2048, seed=1)
    expected = even_samples(local, 128)
    g = torch.Generator().manual_seed(3)
    for q in random_orthogonal(4, generator=g, dtype=torch.float64):  # reflections too
        assert torch.equal(even_samples(local @ q.T * 7.0, 128), expected)
