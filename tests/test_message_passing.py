"""Tensorial message passing: equivariance of layers with mixed reps, and its failure
with identity frames."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnormals import graph
from pointnormals.frames import Frames, IdentityFrames, LearnedFrames, random_orthogonal
from pointnormals.nn import TensorialMessagePassing, TensorialPointConv, ToGlobal, ToLocal
from pointnormals.reps import Irreps, TensorReps
from pointnormals.testing import assert_equivariant, equivariance_errors

MIXED = TensorReps("4x0n+2x0p+3x1n+1x1p+2x2n+1x2p")


class GlobalConv(nn.Module):
    """global features → local → tensorial conv → global, frames given as input."""

    def __init__(self, reps_in, reps_out, kind="tensor"):
        super().__init__()
        self.to_local = ToLocal(reps_in)
        self.conv = TensorialPointConv(reps_in, reps_out, [32, 32], reps_kind=kind)
        self.to_global = ToGlobal(reps_out)

    def forward(self, x, pos, frames, edge_index):
        x_local = self.to_local(x, frames)
        return self.to_global(self.conv(x_local, pos, edge_index, frames), frames)


def _inputs(n=80, reps=MIXED, k=8):
    pos = torch.rand(n, 3)
    x = torch.randn(n, reps.dim)
    frames = Frames(random_orthogonal(n, dtype=torch.float64))  # per node, det ±1
    return x, pos, frames, graph.knn_graph(pos, k)


@pytest.mark.parametrize("reps_kind", ["tensor", "irreps"])
def test_mixed_reps_layer_is_equivariant(reps_kind):
    reps = MIXED if reps_kind == "tensor" else Irreps("4x0n+2x0p+3x1n+1x1p+2x2n+1x3p+1x4n")
    layer = GlobalConv(reps, reps, reps_kind)
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
            edge_index = graph.radius(pos, pos[idx], 0.4, max_num_neighbors=16)
            out = self.conv(
                self.to_local(x, frames), (pos, pos[idx]), edge_index, (frames, frames[idx])
            )
            return self.to_global(out, frames[idx])[torch.argsort(idx)]

    x, pos, _, _ = _inputs(n=120)
    reps_out = TensorReps("8x0n+2x1n+1x2p")
    tolerances = {torch.float64: {"feature": 1e-9}, torch.float32: {"feature": 1e-3}}
    assert_equivariant(
        SetAbstraction(), [x, pos], [MIXED, "pos"], reps_out, permute=False, tolerances=tolerances
    )


def test_frames_must_be_given_and_inputs_cannot_be_both_local_and_global():
    layer = TensorialPointConv(MIXED, MIXED, [8])
    x, pos, _, edge_index = _inputs()
    with pytest.raises(ValueError, match="needs frames"):
        layer.propagate(edge_index, x=x, pos=pos)
    with pytest.raises(ValueError, match="both local and global"):
        TensorialMessagePassing(local_reps={"x": "1x1n"}, global_reps={"x": "1x1n"})
    with pytest.raises(ValueError, match="reps_in"):
        layer(x[:, :5], pos, edge_index, Frames(random_orthogonal(len(pos))))


def test_per_edge_frames_are_gathered_once_and_only_when_needed():
    """kNN graphs need no per-edge matrices at all (one matrix per receiver moves its k
    messages); other graphs gather the receivers' frames once and share them."""
    reps = TensorReps("8x0n+2x1n")
    layer = TensorialPointConv(reps, reps, [16])
    x, pos, frames, knn_edges = _inputs(reps=reps)
    frames = frames.to(torch.float32)
    assert graph.fixed_degree(knn_edges) == 8
    out_knn = layer(x, pos, knn_edges, frames)
    assert len(frames._relative) == 0
    unmarked = knn_edges.clone()  # same graph without the fixed-degree mark
    assert graph.fixed_degree(unmarked) is None
    torch.testing.assert_close(layer(x, pos, unmarked, frames), out_knn)
    assert len(frames._relative) == 1
    layer(x, pos, unmarked, frames)
    assert len(frames._relative) == 1  # reused, not recomputed


def test_x_i_stays_local_and_x_j_arrives_in_the_receivers_frame():
    """Against the definition: x_j -> rho(R_i R_j^T) x_j, x_i unchanged, pos -> R_i pos."""
    reps = TensorReps("1x0n+1x1n+1x2p")

    class Probe(TensorialMessagePassing):
        def __init__(self):
            super().__init__(local_reps={"x": reps}, global_reps={"pos": "1x1n"}, aggr="add")

        def forward(self, x, pos, edge_index, frames):
            self.seen = {}
            return self.propagate(edge_index, x=x, pos=pos, frames=frames)

        def message(self, x_i, x_j, pos_i, pos_j):
            self.seen.update(x_i=x_i, x_j=x_j, pos_i=pos_i, pos_j=pos_j)
            return x_j

    x, pos, frames, edge_index = _inputs(n=30, reps=reps)
    frames = frames.to(torch.float32)
    probe = Probe()
    probe(x, pos, edge_index, frames)
    src, dst = edge_index
    rel = frames.relative(edge_index)
    torch.testing.assert_close(
        probe.seen["x_j"], reps.transform(x[src], rel.matrices), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(probe.seen["x_i"], x[dst])
    R_i = frames.matrices[dst]
    rel_pos = (R_i @ (pos[src] - pos[dst]).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(
        probe.seen["pos_j"] - probe.seen["pos_i"], rel_pos, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    ("kind", "reps"),
    [("tensor", "4x0n+2x0p+3x1n+1x1p+2x2n+1x2p+1x3n"), ("irreps", "4x0n+1x0p+3x1n+2x1p+2x2n+1x3p")],
)
def test_fused_point_conv_computes_the_generic_messages(kind, reps):
    """The fused path equals the generic TensorialMessagePassing route (same weights):
    kNN (fixed degree), bipartite kNN, bipartite radius graphs and position-only input."""
    torch.manual_seed(0)
    pos = torch.rand(300, 3, dtype=torch.float64)
    frames = LearnedFrames(k=10).double()(pos)
    fused = TensorialPointConv(reps, reps, [16], reps_kind=kind).double()
    generic = TensorialPointConv(reps, reps, [16], reps_kind=kind, fused=False).double()
    generic.load_state_dict(fused.state_dict())
    x = torch.randn(300, fused.reps_in.dim, dtype=torch.float64)
    centres = graph.farthest_point_sample(pos, 0.25)
    cases = [
        (x, pos, graph.knn_graph(pos, 8), frames),
        (x, (pos, pos[centres]), graph.knn(pos, pos[centres], 8), (frames, frames[centres])),
        (x, (pos, pos[centres]), graph.radius(pos, pos[centres], 0.2), (frames, frames[centres])),
    ]
    for args in cases:
        torch.testing.assert_close(fused(*args), generic(*args), atol=1e-12, rtol=0)
    no_x_fused = TensorialPointConv("", reps, [16], reps_kind=kind).double()
    no_x_generic = TensorialPointConv("", reps, [16], reps_kind=kind, fused=False).double()
    no_x_generic.load_state_dict(no_x_fused.state_dict())
    args = (None, pos, graph.knn_graph(pos, 8), frames)
    torch.testing.assert_close(no_x_fused(*args), no_x_generic(*args), atol=1e-12, rtol=0)
