"""Geometric helpers not covered elsewhere: the batched symmetric eigensolver."""

from __future__ import annotations

import torch

from pointnormals.geometry import EIGH_CUDA_BATCH, symmetric_eigh


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
