"""TensorialInterpolation: inverse-distance weights, frame changes, equivariance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnormals import graph
from pointnormals.frames import Frames, random_orthogonal
from pointnormals.nn import TensorialInterpolation, ToGlobal, ToLocal
from pointnormals.reps import Irreps, Reps, TensorReps
from pointnormals.testing import assert_equivariant

F64 = torch.float64
REPS = {
    "tensor": TensorReps("2x0n+1x0p+2x1n+1x1p+1x2n+1x2p"),
    "irreps": Irreps("2x0n+1x0p+2x1n+1x1p+1x2n+1x3p"),
}


class Upsample(nn.Module):
    """Global features of FPS centres → every point, through the local frames."""

    def __init__(self, reps: Reps, k: int = 3) -> None:
        super().__init__()
        self.to_local, self.to_global = ToLocal(reps), ToGlobal(reps)
        self.interp, self.k = TensorialInterpolation(reps), k

    def forward(self, x: torch.Tensor, pos: torch.Tensor, frames: Frames) -> torch.Tensor:
        idx = graph.farthest_point_sample(pos, 0.25)  # invariant centres
        nbhd = graph.Neighbourhood.knn(pos[idx], pos, self.k)  # centres → every point
        x_local = self.to_local(x[idx], frames[idx])
        out = self.interp(x_local, (pos[idx], pos), nbhd, (frames[idx], frames))
        return self.to_global(out, frames)


def _inputs(reps: Reps, n: int = 120) -> tuple[torch.Tensor, torch.Tensor, Frames]:
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(n, 3, generator=g, dtype=F64)
    x = torch.randn(n, reps.dim, generator=g, dtype=F64)
    frames = Frames(random_orthogonal(n, generator=g, dtype=F64))  # per node, det ±1
    return x, pos, frames


@pytest.mark.parametrize("kind", sorted(REPS))
def test_interpolation_is_equivariant(kind):
    """Random O(3) elements (odd trials reflect), translations, permutations, float64/32."""
    reps = REPS[kind]
    assert_equivariant(Upsample(reps), _inputs(reps), [reps, "pos", "frames"], reps, trials=4)


@pytest.mark.parametrize("kind", sorted(REPS))
def test_interpolation_is_the_inverse_distance_average_of_the_global_features(kind):
    """Through per-node random frames and back, the result is the plain average
    ``sum_j w_ij f_j / sum_j w_ij`` in the global frame, ``w_ij = |p_j - p_i|^-2``, and a
    centre gets its own features back: a layer that skipped the frame change
    ``R_i R_j^T`` of the messages, or weighted them otherwise, would fail it."""
    reps = REPS[kind]
    x, pos, frames = _inputs(reps)
    out = Upsample(reps)(x, pos, frames)
    centres = graph.farthest_point_sample(pos, 0.25)
    torch.testing.assert_close(out[centres], x[centres], atol=1e-12, rtol=0)
    others = torch.ones(len(pos), dtype=torch.bool).index_fill_(0, centres, False)
    dist2 = torch.cdist(pos[others], pos[centres]).pow(2)  # (N - M, M)
    weight = torch.zeros_like(dist2).scatter_(1, dist2.topk(3, largest=False).indices, 1.0)
    weight = weight / dist2
    expected = weight @ x[centres] / weight.sum(1, keepdim=True)
    torch.testing.assert_close(out[others], expected, atol=1e-12, rtol=0)
    constant = x[:1].expand_as(x)  # a constant field stays constant
    torch.testing.assert_close(Upsample(reps)(constant, pos, frames), constant, atol=1e-12, rtol=0)
