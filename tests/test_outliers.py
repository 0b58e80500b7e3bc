"""Stray points: found invariantly, kept out of patch centres and of the noise estimate."""

from __future__ import annotations

import torch
from conftest import small_model

from pointnormals import graph
from pointnormals.geometry import normalize_cloud, random_orthogonal
from pointnormals.inference import predict_normals
from pointnormals.outliers import isolated_points
from pointnormals.patching import plan_patches, surface_points
from pointnormals.testing import assert_equivariant


def surface_with_strays(
    n: int, strays: float, noise: float = 0.0, seed: int = 0, gradient: bool = False
) -> tuple[torch.Tensor, int]:
    """An ellipsoid of ``n`` points (optionally 10x denser at one end), then
    ``strays * n`` points uniform in 1.5x its bounding box; returns the cloud and ``n``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * n, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    if gradient:  # keep with probability 1 down to 0.1 along x
        keep = torch.rand(4 * n, generator=g, dtype=torch.float64) < 1 - 0.45 * (x[:, 0] + 1)
        x = x[keep]
    x = x[:n] * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    x = x + noise * torch.randn(n, 3, generator=g, dtype=torch.float64)
    m = int(strays * n)
    box = (torch.rand(m, 3, generator=g, dtype=torch.float64) * 3 - 1.5) * torch.tensor(
        [1.0, 2.0, 3.0], dtype=torch.float64
    )
    return torch.cat([x, box]), n


def test_strays_are_isolated_and_surfaces_are_not():
    for noise, gradient in ((0.0, False), (0.05, False), (0.0, True)):
        clean, n = surface_with_strays(20_000, 0.0, noise, gradient=gradient)
        assert not isolated_points(graph.PatchSearch(clean)).any()
    pos, n = surface_with_strays(20_000, 0.01)
    isolated = isolated_points(graph.PatchSearch(pos))
    assert not isolated[:n].any()
    assert isolated[n:].float().mean() > 0.4  # the rest lie near the surface


def test_isolation_is_invariant():
    pos, _ = surface_with_strays(5000, 0.02)
    before = isolated_points(graph.PatchSearch(pos))
    g = torch.Generator().manual_seed(3)
    for q in random_orthogonal(4, generator=g, dtype=torch.float64):  # reflections too
        perm = torch.randperm(pos.size(0), generator=g)
        moved = pos[perm] @ q.T * 0.37 + torch.randn(3, generator=g, dtype=torch.float64)
        assert torch.equal(isolated_points(graph.PatchSearch(moved)), before[perm])


def test_the_noise_estimate_and_the_first_centres_ignore_strays():
    """Farthest point sampling picks strays first; the estimate's samples follow the points,
    and the first round of patch centres skips the isolated ones."""
    clean, _ = surface_with_strays(20_000, 0.0)
    pos, _ = surface_with_strays(20_000, 0.2)
    pos = normalize_cloud(pos)[0]
    search = graph.PatchSearch(pos)
    core = ~isolated_points(search)
    expected = surface_points(normalize_cloud(clean)[0], 8192)
    assert expected == 16 and surface_points(pos, 8192, search=search, core=core) == expected
    patches = plan_patches(pos, 1024, search=search, core=core)
    first_round = -(-int(1.5 * core.sum()) // 1024)
    assert core[patches.centres[:first_round]].all()
    covered = torch.zeros(pos.size(0), dtype=torch.bool)
    covered[patches.context.reshape(-1)] = True
    covered[patches.outside[0]] = True
    assert covered.all()  # strays still get a patch (later rounds) or a nearest centre


def test_prediction_with_strays_is_equivariant():
    surface, _ = surface_with_strays(1500, 0.0, noise=0.01)
    far = torch.randn(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pos = torch.cat([surface, 15 * far])
    assert isolated_points(graph.PatchSearch(pos))[1500:].all()  # the path under test

    model = small_model()

    def predict(points):
        return predict_normals(model.to(points.dtype), points, 256, batch_points=1024)

    assert_equivariant(predict, [pos], ["pos"], "normal", trials=2)
