"""Tensorial message passing: equivariance of layers with mixed reps, and its failure
with identity frames."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnormals import graph
from pointnormals.frames import Frames, IdentityFrames, LearnedFrames, random_orthogonal
from pointnormals.nn import TensorialPointConv, ToGlobal, ToLocal, in_receiver_frames
from pointnormals.reps import Irreps, TensorReps
from pointnormals.testing import assert_equivariant, equivariance_errors

MIXED = TensorReps("4x0n+2x0p+3x1n+1x1p+2x2n+1x2p")


class GlobalConv(nn.Module):
    """global features → local → tensorial conv → global, frames given as input."""

    def __init__(self, reps_in, reps_out):
        super().__init__()
        self.to_local = ToLocal(reps_in)
        self.conv = TensorialPointConv(reps_in, reps_out, [32, 32])
        self.to_global = ToGlobal(reps_out)

    def forward(self, x, pos, frames, edge_index):
        x_local = self.to_local(x, frames)
        nbhd = graph.Neighbourhood(edge_index, len(pos), len(pos))  # permuted: any order
        return self.to_global(self.conv(x_local, pos, nbhd, frames), frames)


def _inputs(n=80, reps=MIXED, k=8):
    pos = torch.rand(n, 3)
    x = torch.randn(n, reps.dim)
    frames = Frames(random_orthogonal(n, dtype=torch.float64))  # per node, det ±1
    return x, pos, frames, graph.knn_graph(pos, k)


@pytest.mark.parametrize("reps_kind", ["tensor", "irreps"])
def test_mixed_reps_layer_is_equivariant(reps_kind):
    reps = MIXED if reps_kind == "tensor" else Irreps("4x0n+2x0p+3x1n+1x1p+2x2n+1x3p+1x4n")
    layer = GlobalConv(reps, reps)
    x, pos, frames, edge_index = _inputs(reps=reps)
    types = [reps, "pos", "frames", "edge_index"]
    assert_equivariant(layer, [x, pos, frames, edge_index], types, reps, trials=4)


def test_same_layer_with_identity_frames_fails():
    layer = GlobalConv(MIXED, MIXED)
    x, pos, _, edge_index = _inputs()
    identity = IdentityFrames()(pos)
    args, types = [x, pos, identity, edge_index], [MIXED, "pos", None, "edge_index"]
    errors = equivariance_errors(layer, args, types, MIXED, trials=4)
    assert min(t.error for t in errors) > 0.05
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(layer, args, types, MIXED)


def test_bipartite_layer_with_learned_frames_is_equivariant():
    """All points → sampled centres (set abstraction), frames from the geometry."""

    class SetAbstraction(nn.Module):
        def __init__(self):
            super().__init__()
            self.frames = LearnedFrames(k=8)
            self.to_local = ToLocal(MIXED)
            self.conv = TensorialPointConv(MIXED, "8x0n+2x1n+1x2p", [32])
            self.to_global = ToGlobal(self.conv.reps_out)

        def forward(self, x, pos):
            frames = self.frames(pos)
            idx = graph.farthest_point_sample(pos, 0.25)
            nbhd = graph.Neighbourhood.radius(pos, pos[idx], 0.4, max_num_neighbors=16)
            out = self.conv(self.to_local(x, frames), (pos, pos[idx]), nbhd, (frames, frames[idx]))
            return self.to_global(out, frames[idx])[torch.argsort(idx)]

    x, pos, _, _ = _inputs(n=120)
    reps_out = TensorReps("8x0n+2x1n+1x2p")
    tolerances = {torch.float64: {"feature": 1e-9}, torch.float32: {"feature": 1e-3}}
    # float32: sampling, ball membership and frame signs near their ties can flip with
    # rounding, which ones depends on the CPU (an AVX2 EPYC: 2 of 4 trials, AVX-512: none)
    share = {torch.float32: 0.05}
    assert_equivariant(
        SetAbstraction(), [x, pos], [MIXED, "pos"], reps_out, permute=False,
        tolerances=tolerances, share=share,
    )  # fmt: skip


def test_features_must_match_reps_in():
    layer = TensorialPointConv(MIXED, MIXED, [8])
    x, pos, _, edge_index = _inputs()
    nbhd = graph.Neighbourhood(edge_index, len(pos), len(pos))
    with pytest.raises(ValueError, match="reps_in"):
        layer(x[:, :5], pos, nbhd, Frames(random_orthogonal(len(pos))))


def test_per_edge_frames_are_gathered_once_and_only_when_needed():
    """kNN graphs need no per-edge matrices at all (one matrix per receiver moves its k
    messages); other graphs gather the receivers' frames once and share them."""
    reps = TensorReps("8x0n+2x1n")
    layer = TensorialPointConv(reps, reps, [16])
    x, pos, frames, _ = _inputs(reps=reps)
    frames = frames.to(torch.float32)
    knn = graph.Neighbourhood.knn(pos, pos, 8)
    assert knn.degree == 8 and knn.size == (len(pos), len(pos))
    out_knn = layer(x, pos, knn, frames)
    assert len(frames._relative) == 0
    any_order = graph.Neighbourhood(knn.edge_index, len(pos), len(pos))  # degree unknown
    torch.testing.assert_close(layer(x, pos, any_order, frames), out_knn)
    assert len(frames._relative) == 1
    layer(x, pos, any_order, frames)
    assert len(frames._relative) == 1  # reused, not recomputed


def _graphs(pos, frames, centres):
    """kNN (fixed degree), bipartite kNN, bipartite radius: (pos, nbhd, frames)."""
    sub = pos[centres]
    return [
        (pos, graph.Neighbourhood.knn(pos, pos, 8), frames),
        ((pos, sub), graph.Neighbourhood.knn(pos, sub, 8), (frames, frames[centres])),
        ((pos, sub), graph.Neighbourhood.radius(pos, sub, 0.2), (frames, frames[centres])),
    ]


@pytest.mark.parametrize(
    "reps",
    [TensorReps("4x0n+2x0p+3x1n+1x1p+2x2n+1x2p+1x3n"), Irreps("4x0n+1x0p+3x1n+2x1p+2x2n+1x3p")],
)
def test_messages_arrive_in_the_receivers_frame(reps):
    """Against the definition, edge by edge (the oracle ``Frames.relative``):
    x_j -> rho(R_i R_j^T) x_j, p_j - p_i -> R_i (p_j - p_i), to 1e-12 in float64; and
    the point convolution is max_j MLP([those, |p_j - p_i|])."""
    torch.manual_seed(0)
    pos = torch.rand(300, 3, dtype=torch.float64)
    frames = LearnedFrames(k=10).double()(pos)
    x = torch.randn(300, reps.dim, dtype=torch.float64)
    conv = TensorialPointConv(reps, reps, [16]).double()
    for p, nbhd, fr in _graphs(pos, frames, graph.farthest_point_sample(pos, 0.25)):
        p_src, p_dst = p if isinstance(p, tuple) else (p, p)
        f_src, f_dst = fr if isinstance(fr, tuple) else (fr, fr)
        src, dst = nbhd.edge_index
        relative = f_dst.relative(nbhd.edge_index, f_src)  # R_i R_j^T per edge
        want_x = reps.transform(x[src], relative.matrices, relative.det)
        rot_i = f_dst.matrices[dst]
        want_rel = (rot_i @ (p_src[src] - p_dst[dst]).unsqueeze(-1)).squeeze(-1)
        x_ij, rel = in_receiver_frames(reps, x, p, nbhd, fr)
        torch.testing.assert_close(x_ij, want_x, atol=1e-12, rtol=0)
        torch.testing.assert_close(rel, want_rel, atol=1e-12, rtol=0)
        messages = conv.mlp(torch.cat([want_x, want_rel, want_rel.norm(dim=-1, keepdim=True)], 1))
        want = torch.full((nbhd.num_dst, reps.dim), -torch.inf, dtype=torch.float64)
        want = want.scatter_reduce(0, dst[:, None].expand_as(messages), messages, "amax")
        torch.testing.assert_close(conv(x, p, nbhd, fr), want, atol=1e-12, rtol=0)
        assert in_receiver_frames(reps, None, p, nbhd, fr)[0] is None  # positions only
