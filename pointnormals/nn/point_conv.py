"""Tensorial point convolution (PointNet++ set abstraction / EdgeConv message)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph import Neighbourhood
from ..pyg import MLP, MessagePassing
from ..reps import Reps, as_reps
from .receiver_frames import FramesArg, in_receiver_frames


class TensorialPointConv(MessagePassing):
    r"""PointConv whose messages are expressed in the receiver's frame.

    .. math::
        f_i' = \max_{j \in \mathcal{N}(i)} \mathrm{MLP}\Big(\big[\rho(R_i R_j^\top) f_j,\;
        R_i(p_j - p_i),\; \lVert p_j - p_i \rVert\big]\Big)

    :func:`~pointnormals.nn.receiver_frames.in_receiver_frames` computes the MLP's
    inputs; they are invariant, so the MLP is unconstrained, and its output is read as a
    feature of type ``reps_out`` in frame :math:`R_i`. Then an ordinary PyG
    ``propagate``. Works on bipartite graphs (all points → sampled centres) with
    ``pos=(pos_src, pos_dst)`` and ``frames=(frames_src, frames_dst)``.

    Args:
        reps_in: representation of the input features (may be empty: positions only).
        reps_out: representation of the output features.
        hidden: hidden widths of the message MLP.
        aggr: aggregation (``"max"`` by default, any PyG aggregation).
        norm: normalisation inside the MLP (PyG name, ``None`` for none).

    Shapes:
        x: ``(N_src, reps_in.dim)`` local features or ``None``, pos: ``(N, 3)`` or a
        pair, frames: ``(N, 3, 3)`` or a pair → ``(N_dst, reps_out.dim)`` local features.
    """

    def __init__(
        self,
        reps_in: Reps | str,
        reps_out: Reps | str,
        hidden: list[int],
        aggr: str = "max",
        norm: str | None = None,
    ) -> None:
        super().__init__(aggr=aggr)
        self.reps_in, self.reps_out = as_reps(reps_in), as_reps(reps_out)
        channels = [self.reps_in.dim + 4, *hidden, self.reps_out.dim]
        self.mlp = MLP(channels, norm=norm, plain_last=True)

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor | tuple[Tensor, Tensor],
        nbhd: Neighbourhood,
        frames: FramesArg,
    ) -> Tensor:
        if x is not None and x.size(-1) != self.reps_in.dim:
            raise ValueError(
                f"x has {x.size(-1)} channels, reps_in {self.reps_in} needs {self.reps_in.dim}"
            )
        x_ij, rel = in_receiver_frames(self.reps_in, x, pos, nbhd, frames)
        parts = [rel, rel.norm(dim=-1, keepdim=True)]
        edge_inputs = torch.cat(parts if x_ij is None else [x_ij, *parts], dim=-1)
        if nbhd.degree is not None and self.aggr == "max":  # k consecutive edges each
            messages = self.message(edge_inputs)
            return messages.view(nbhd.num_dst, nbhd.degree, -1).amax(dim=1)
        return self.propagate(nbhd.edge_index, edge_inputs=edge_inputs, size=nbhd.size)

    def message(self, edge_inputs: Tensor) -> Tensor:
        return self.mlp(edge_inputs)
