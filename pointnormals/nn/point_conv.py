"""Tensorial point convolution (PointNet++ set abstraction / EdgeConv message)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MLP

from .. import graph
from ..reps import Reps, as_reps
from .message_passing import FramesArg, TensorialMessagePassing, _pair


class TensorialPointConv(TensorialMessagePassing):
    r"""PointConv whose messages are expressed in the receiver's frame.

    .. math::
        f_i' = \max_{j \in \mathcal{N}(i)} \mathrm{MLP}\Big(\big[\rho(R_i R_j^\top) f_j,\;
        R_i(p_j - p_i),\; \lVert p_j - p_i \rVert\big]\Big)

    Inputs are invariant, so the MLP is unconstrained; its output is read as a feature
    of type ``reps_out`` in frame :math:`R_i`. Works on bipartite graphs (all points →
    sampled centres) with ``x=(x_src, x_dst)``-style pairs and ``frames=(src, dst)``.

    Fused path (``fused=True``, the default, non-identity frames): the same messages as
    the generic :class:`TensorialMessagePassing` route, computed with fewer copies. At
    node level the senders' features go to the global frame and are regrouped by
    (order, parity), the positions joining the ``1n`` group; every group is gathered per
    edge as one contiguous tensor and moved by :math:`\rho(R_i)` with one batched
    product (per receiver on fixed-degree kNN graphs); the MLP input is then assembled in
    the original block order by a single concatenation, as in the ordinary layer.

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
        fused: bool = True,
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
        self.fused = fused
        # fused path: the blocks of reps_in grouped by (order, parity): per block its
        # slice of x and group; per group the block sizes in order (the 1n group always
        # exists: the positions ride in it as a last row)
        self._layout: list[tuple[slice, tuple[int, str], int]] = []
        self._splits: dict[tuple[int, str], list[int]] = {(1, "n"): []}
        for block, sl in zip(self.reps_in.blocks, self.reps_in.slices, strict=True):
            key = (block.order, block.parity)
            self._layout.append((sl, key, block.mul))
            self._splits.setdefault(key, []).append(block.mul)

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
        frames_src, frames_dst = _pair(frames)
        if self.fused and not (frames_src.is_identity and frames_dst.is_identity):
            return self._fused_forward(x, pos, edge_index, frames_src, frames_dst)
        return self.propagate(edge_index, x=x, pos=pos, frames=frames)

    def _fused_forward(
        self, x: Tensor | None, pos, edge_index: Tensor, frames_src, frames_dst
    ) -> Tensor:
        x_src = x[0] if isinstance(x, tuple | list) else x
        pos_src, pos_dst = _pair(pos)
        src, dst = edge_index
        n_dst, reps = pos_dst.size(0), self.reps_in
        degree = graph.fixed_degree(edge_index)
        with torch.autocast(pos_src.device.type, enabled=False):  # geometry: full precision
            rot_dst = frames_dst.matrices
            dtype = rot_dst.dtype
            pos_i = (rot_dst @ pos_dst.to(dtype).unsqueeze(-1)).squeeze(-1)
            # representation matrices, once per order; a shared frame reuses the transpose
            mats_dst = {o: reps.order_matrix(o, rot_dst) for o in {k[0] for k in self._splits}}
            if frames_src is frames_dst:
                mats_src = {
                    o: None if m is None else m.transpose(-1, -2) for o, m in mats_dst.items()
                }
            else:
                rot_src_t = frames_src.matrices.transpose(-1, -2)
                mats_src = {o: reps.order_matrix(o, rot_src_t) for o in mats_dst}
            # node level: the senders' blocks regrouped by (order, parity), moved to the
            # global frame (rho(R_j^T), det R_j for p), positions joining the 1n group
            parts: dict[tuple[int, str], list[Tensor]] = {key: [] for key in self._splits}
            if x_src is not None:
                x_src = x_src.to(dtype)
                for sl, key, mul in self._layout:
                    parts[key].append(x_src[:, sl].reshape(x_src.size(0), mul, -1))
            groups = {}
            for (order, parity), blocks in parts.items():
                if not blocks:
                    continue
                group = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
                group = reps.transform_order(
                    group, order, frames_src.matrices.transpose(-1, -2), mats_src[order]
                )
                if parity == "p":
                    group = group * frames_src.det.view(-1, 1, 1).to(dtype)
                groups[(order, parity)] = group
            pos_g = pos_src.to(dtype).unsqueeze(1)
            groups[(1, "n")] = (
                torch.cat([groups[(1, "n")], pos_g], 1) if (1, "n") in groups else pos_g
            )
            if degree is None:  # per-edge receiver frames (radius graphs), cached
                receivers = frames_dst.receivers(edge_index)
                rot_e, det_e = receivers.matrices, receivers.det.view(-1, 1, 1)
            pieces = {}
            for (order, parity), group in groups.items():
                rows, width = group.shape[1:]
                edges = group.reshape(group.size(0), -1).index_select(0, src)
                if degree is not None:  # k consecutive edges per receiver: one matrix each
                    grouped = edges.view(n_dst, degree * rows, width)
                    grouped = reps.transform_order(grouped, order, rot_dst, mats_dst[order])
                    if parity == "p":
                        grouped = grouped * frames_dst.det.view(-1, 1, 1)
                    edges = grouped.view(-1, rows, width)
                else:
                    edges = reps.transform_order(edges.view(-1, rows, width), order, rot_e)
                    if parity == "p":
                        edges = edges * det_e
                # one split per group (its backward is one concatenation, not zero-fills)
                sizes = self._splits[(order, parity)] + ([1] if (order, parity) == (1, "n") else [])
                pieces[(order, parity)] = list(edges.split(sizes, dim=1))
            pos_j = pieces[(1, "n")].pop().squeeze(1)  # R_i p_j, the last row of the 1n group
            if degree is not None:
                rel = (pos_j.view(n_dst, degree, -1) - pos_i.unsqueeze(1)).view(-1, pos_j.size(-1))
            else:
                rel = pos_j - pos_i[dst]
            cursor = dict.fromkeys(pieces, 0)
            inputs = []
            for _, key, _ in self._layout:
                inputs.append(pieces[key][cursor[key]].flatten(1))
                cursor[key] += 1
            inputs += [rel, rel.norm(dim=-1, keepdim=True)]
        messages = self.mlp(torch.cat(inputs, dim=-1))
        return self.aggregate(messages, index=dst, ptr=None, dim_size=n_dst)

    def message(self, x_j: Tensor | None, pos_i: Tensor, pos_j: Tensor) -> Tensor:
        rel_pos_ij = pos_j - pos_i  # (E, 3), already in frame i
        parts = [rel_pos_ij, rel_pos_ij.norm(dim=-1, keepdim=True)]
        if x_j is not None:
            parts.insert(0, x_j)
        return self.mlp(torch.cat(parts, dim=-1))
