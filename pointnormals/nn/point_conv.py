"""Tensorial point convolution (PointNet++ set abstraction / EdgeConv message)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MLP

from ..reps import Reps, as_reps
from .message_passing import FramesArg, TensorialMessagePassing


class TensorialPointConv(TensorialMessagePassing):
    r"""PointConv whose messages are expressed in the receiver's frame.

    .. math::
        f_i' = \max_{j \in \mathcal{N}(i)} \mathrm{MLP}\Big(\big[\rho(R_i R_j^\top) f_j,\;
        R_i(p_j - p_i),\; \lVert p_j - p_i \rVert\big]\Big)

    Inputs are invariant, so the MLP is unconstrained; its output is read as a feature
    of type ``reps_out`` in frame :math:`R_i`. Works on bipartite graphs (all points →
    sampled centres) with ``x=(x_src, x_dst)``-style pairs and ``frames=(src, dst)``.

    Args:
        reps_in: representation of the input features (may be empty: positions only).
        reps_out: representation of the output features.
        hidden: hidden widths of the message MLP.
        aggr: aggregation (``"max"`` by default, any PyG aggregation).
        reps_kind: ``"tensor"`` or ``"irreps"`` for string reps.
        norm: normalisation inside the MLP (PyG name, ``None`` for none).

    Shapes:
        x: ``(N_src, reps_in.dim)`` local features, pos: ``(N_src, 3)`` or a pair,
        edge_index: ``(2, E)`` (row 0 source), frames: ``(N, 3, 3)`` or a pair
        → ``(N_dst, reps_out.dim)`` local features.
    """

    def __init__(
        self,
        reps_in: Reps | str,
        reps_out: Reps | str,
        hidden: list[int],
        aggr: str = "max",
        reps_kind: str = "tensor",
        norm: str | None = None,
    ) -> None:
        self.reps_in = as_reps(reps_in, reps_kind)
        self.reps_out = as_reps(reps_out, reps_kind)
        super().__init__(
            local_reps={"x": self.reps_in},
            global_reps={"pos": as_reps("1x1n", reps_kind)},
            aggr=aggr,
        )
        channels = [self.reps_in.dim + 4, *hidden, self.reps_out.dim]
        self.mlp = MLP(channels, norm=norm, plain_last=True)

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        frames: FramesArg,
    ) -> Tensor:
        if x is not None and x.size(-1) != self.reps_in.dim:
            raise ValueError(
                f"x has {x.size(-1)} channels, reps_in {self.reps_in} needs {self.reps_in.dim}"
            )
        return self.propagate(edge_index, x=x, pos=pos, frames=frames)

    def message(self, x_j: Tensor | None, pos_i: Tensor, pos_j: Tensor) -> Tensor:
        rel_pos_ij = pos_j - pos_i  # (E, 3), already in frame i
        parts = [rel_pos_ij, rel_pos_ij.norm(dim=-1, keepdim=True)]
        if x_j is not None:
            parts.insert(0, x_j)
        return self.mlp(torch.cat(parts, dim=-1))
