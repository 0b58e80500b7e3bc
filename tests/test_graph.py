"""Neighbour search beyond torch_cluster's limits."""

from __future__ import annotations

import torch

from pointnormals import graph


def test_dense_knn_equals_torch_cluster_knn_in_chunks():
    """The GPU path for k > 100 (patches) gives torch_cluster's answer, nearest first."""
    g = torch.Generator().manual_seed(0)
    src, dst = torch.rand(3000, 3, generator=g), torch.rand(50, 3, generator=g)
    expected = graph.knn(src, dst, 300)
    got = graph.knn_dense(src, dst, 300, chunk_elements=7 * 3000)  # 8 chunks of 7 rows
    assert torch.equal(got, expected)
    assert graph.Neighbourhood.knn(src, dst, 300).degree == 300
    assert graph.knn_dense(src[:20], dst, 300).shape == (2, 50 * 20)  # k capped at N
