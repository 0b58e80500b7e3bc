"""Scan lines: the neighbourhood size that spans two directions, found invariantly."""

from __future__ import annotations

import torch

from pointnormals import anisotropy
from pointnormals.anisotropy import SPREAD_REACH, spread_points
from pointnormals.geometry import random_orthogonal


def ellipsoid(n: int, lines: int = 0, seed: int = 0) -> torch.Tensor:
    """``n`` uniform samples of an ellipsoid; with ``lines``, only those within 0.2 % of a
    spacing of ``lines`` planes across its long axis (dense along, sparse across)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    if lines:
        z = x[:, 2] / (6.0 / lines)
        x = x[(z - z.round()).abs() < 0.002]
    return x


def test_uniform_samples_span_two_directions_at_once():
    assert spread_points(ellipsoid(20_000)) == 16


def test_scan_lines_need_more_points_the_sparser_they_are():
    """About 12k points in each cloud, on 100, 40 and 10 lines."""
    counts = [spread_points(ellipsoid(3_000_000, lines=lines)) for lines in (100, 40, 10)]
    assert counts == [16, 32, SPREAD_REACH]


def test_the_spread_is_invariant():
    pos = ellipsoid(3_000_000, lines=30)
    expected = spread_points(pos)
    g = torch.Generator().manual_seed(1)
    for q in random_orthogonal(3, generator=g, dtype=torch.float64):  # reflections too
        perm = torch.randperm(pos.size(0), generator=g)
        moved = pos[perm] @ q.T * 123.0 - 4.5
        assert spread_points(moved) == expected


def test_noisy_scan_lines_are_found_by_their_share_of_single_lines(monkeypatch):
    """Noise lifts the median ratio of 50 lines above the threshold; the 10th percentile
    (neighbourhoods on a single line) still tells them from uniform samples."""
    pos = ellipsoid(3_000_000, lines=50)
    g = torch.Generator().manual_seed(2)
    pos = pos + 0.006 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    assert spread_points(pos) == 32
    monkeypatch.setattr(anisotropy, "SPREAD_LOW", -1.0)  # the median alone misses them
    assert spread_points(pos) == 16


def test_scan_lines_that_noise_hides_from_16_neighbours_are_found_as_k_grows(monkeypatch):
    """20 lines with noise of 0.3 % of the diagonal (100k points): 16 neighbours look
    two-dimensional, but the median ratio falls at 32-64 where a surface's grows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1_000_000, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    z = x[:, 2] / (6.0 / 20)
    pos = x[(z - z.round()).abs() < 0.05]
    pos = pos + 0.022 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    assert spread_points(pos) == SPREAD_REACH
    q = random_orthogonal(1, generator=g, dtype=torch.float64)[0]
    q[:, 0] = -q[:, 0] if torch.linalg.det(q) > 0 else q[:, 0]  # a reflection
    moved = pos[torch.randperm(pos.size(0), generator=g)] @ q.T * 0.01 + 1e3
    assert spread_points(moved) == SPREAD_REACH  # the verdict is invariant
    surface = ellipsoid(100_000, seed=1)
    surface = surface + 0.022 * torch.randn(surface.shape, generator=g, dtype=torch.float64)
    assert spread_points(surface) == 16  # the same noise on a surface
    monkeypatch.setattr(anisotropy, "SPREAD_GROWTH", -1.0)  # without the growth test
    assert spread_points(pos) == 16
