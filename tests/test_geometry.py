"""Geometric helpers not covered elsewhere: the batched symmetric eigensolver, the
grouping of coincident points."""

from __future__ import annotations

import numpy as np
import torch

from pointnormals import geometry
from pointnormals.geometry import (
    EIGH_CUDA_BATCH,
    distinct_points,
    random_orthogonal,
    symmetric_eigh,
)


def test_symmetric_eigh_in_batches_is_eigh():
    """Split into batches (as on CUDA, above cuSOLVER's limit), the stack decomposes
    exactly as in one call: each matrix is solved on its own."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 3, 3, generator=g, dtype=torch.float64)
    matrices = a @ a.transpose(1, 2)
    matrices[:10] = 0  # coincident points: zero covariance
    matrices[10:20] = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    values, vectors = torch.linalg.eigh(matrices)
    for batch in (7, 999, 1000, None):
        got_values, got_vectors = symmetric_eigh(matrices, batch)
        assert torch.equal(got_values, values) and torch.equal(got_vectors, vectors)
    assert 2**13 <= EIGH_CUDA_BATCH <= 2**15  # under the ~32k matrices that cuSOLVER takes


def test_distinct_points_groups_exact_copies_in_the_input_order():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(500, 3, generator=g, dtype=torch.float64)
    assert distinct_points(base) is None  # nothing coincides: nothing to do
    copies = torch.randint(0, 500, (700,), generator=g)
    order = torch.randperm(1200, generator=g)
    points = torch.cat([base, base[copies]])[order]
    first, inverse = distinct_points(points)
    assert first.shape == (500,) and bool((first[1:] > first[:-1]).all())
    assert torch.equal(points[first][inverse], points)
    assert torch.equal(points[first].unique(dim=0), base.unique(dim=0))
    # a group's representative is its first point in the input
    for group in (0, 250, 499):
        assert int(first[group]) == int((inverse == group).nonzero()[0])
    # what coincides does not depend on the pose (the same rounding for equal points)
    q = random_orthogonal(1, generator=g, dtype=torch.float64)[0]
    moved = distinct_points(points @ q.T * 3.7 + 1e5)
    assert torch.equal(moved[0], first) and torch.equal(moved[1], inverse)


def test_distinct_points_edge_cases(monkeypatch):
    signed = torch.tensor(
        [[0.0, 1.0, 2.0], [-0.0, 1.0, 2.0], [0.0, 1.0, 2.0 + 1e-15]], dtype=torch.float64
    )
    assert distinct_points(signed)[0].tolist() == [0, 2]  # -0.0 is 0.0
    single = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float32).expand(5, 3)
    first, inverse = distinct_points(single)
    assert first.tolist() == [0] and inverse.tolist() == [0] * 5
    # hashes that all collide: the exact grouping by coordinates decides
    g = torch.Generator().manual_seed(1)
    base = torch.randn(300, 3, generator=g)
    points = torch.cat([base, base[:100], base[50:60]])
    expected = distinct_points(points)
    monkeypatch.setattr(geometry, "_HASH_MIX", np.zeros(3, np.uint64))
    got = distinct_points(points)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert distinct_points(base) is None
