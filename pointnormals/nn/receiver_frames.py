"""Move senders' features and positions into the receivers' frames, edge by edge."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..frames.frames import Frames
from ..graph import Neighbourhood
from ..reps import Reps

FramesArg = Frames | tuple[Frames, Frames]


def pair(value: Any) -> tuple[Any, Any]:
    """PyG's bipartite convention: ``(source, target)``; a single value is both."""
    return (value[0], value[1]) if isinstance(value, tuple | list) else (value, value)


def in_receiver_frames(
    reps: Reps,
    x: Tensor | None,
    pos: Tensor | tuple[Tensor, Tensor] | None,
    nbhd: Neighbourhood,
    frames: FramesArg,
) -> tuple[Tensor | None, Tensor | None]:
    r"""What a tensorial message from ``j`` to ``i`` sees, in the receiver's frame.

    .. math::
        x_{j\to i} = \rho(R_i R_j^\top)\, x_j, \qquad r_{ij} = R_i\,(p_j - p_i)

    ``x`` holds local features (each in its own node's frame), ``pos`` global positions.
    Both outputs are invariant under :math:`p \to Qp + t`, :math:`R \to RQ^\top`, so any
    function of them (an MLP, a weighted sum) followed by any aggregation is a feature
    in the receiver's frame: a layer built on them is equivariant. With identity frames
    this is a plain gather, and the layer is the ordinary one.

    Cost: no per-edge matrix product :math:`R_i R_j^\top`. The senders' blocks are
    regrouped by (order, parity) (:meth:`~pointnormals.reps.Reps.regroup`), positions
    joining the ``1n`` group, and moved to the global frame once per node by
    :math:`\rho(R_j^\top)`; per edge, :math:`\rho(R_i)` then moves each group with one
    batched product — one matrix per receiver for all its ``k`` edges when
    ``nbhd.degree`` is set (kNN), the gathered receiver frames otherwise. ``0n`` blocks
    are never touched, ``p`` blocks only use determinants. Geometry runs in the frames'
    precision, outside autocast.

    Args:
        reps: representation of ``x`` (ignored when ``x`` is ``None``).
        x: senders' local features, or ``None``.
        pos: global positions (one tensor, or ``(pos_src, pos_dst)``), or ``None``.
        nbhd: the edges ``j → i`` and their layout.
        frames: one :class:`Frames` for both ends, or ``(frames_src, frames_dst)``.

    Shapes:
        x: ``(N_src, reps.dim)``, pos: ``(N, 3)`` or a pair, frames: ``(N, 3, 3)`` or a
        pair → ``(E, reps.dim)`` (``None`` without ``x``), ``(E, 3)`` (``None`` without
        ``pos``).
    """
    frames_src, frames_dst = pair(frames)
    src, dst = nbhd.edge_index
    x_src = x[0] if isinstance(x, tuple | list) else x
    pos_src, pos_dst = pair(pos)
    if frames_src.is_identity and frames_dst.is_identity:
        x_e = None if x_src is None else x_src.index_select(0, src)
        rel = None if pos is None else pos_src[src] - pos_dst[dst]
        return x_e, rel
    n_dst, degree = nbhd.num_dst, nbhd.degree
    with torch.autocast(frames_dst.matrices.device.type, enabled=False):
        rot_dst = frames_dst.matrices
        dtype = rot_dst.dtype
        # node level: the senders' groups to the global frame (rho(R_j^T), det R_j for p)
        groups = {} if x_src is None else reps.regroup(x_src.to(dtype))
        orders = {order for order, _ in groups} | ({1} if pos is not None else set())
        # representation matrices, once per order; a shared frame reuses the transpose
        mats_dst = {o: reps.order_matrix(o, rot_dst) for o in orders}
        if frames_src is frames_dst:
            mats_src = {o: None if m is None else m.transpose(-1, -2) for o, m in mats_dst.items()}
        else:
            rot_src_t = frames_src.matrices.transpose(-1, -2)
            mats_src = {o: reps.order_matrix(o, rot_src_t) for o in orders}
        for (order, parity), group in groups.items():
            group = reps.transform_order(
                group, order, frames_src.matrices.transpose(-1, -2), mats_src[order]
            )
            if parity == "p":
                group = group * frames_src.det.view(-1, 1, 1).to(dtype)
            groups[(order, parity)] = group
        if pos is not None:  # the positions ride as the last row of the 1n group
            pos_g = pos_src.to(dtype).unsqueeze(1)
            vectors = groups.get((1, "n"))
            groups[(1, "n")] = pos_g if vectors is None else torch.cat([vectors, pos_g], 1)
        if degree is None:  # per-edge receiver frames (radius graphs), cached
            receivers = frames_dst.receivers(nbhd.edge_index)
            rot_e, det_e = receivers.matrices, receivers.det.view(-1, 1, 1)
        # edge level: rho(R_i) moves every group, rho(R_i R_j^T) x_j and R_i p_j follow
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
            groups[(order, parity)] = edges
        rel = None
        if pos is not None:
            pos_i = (rot_dst @ pos_dst.to(dtype).unsqueeze(-1)).squeeze(-1)  # R_i p_i
            pos_j = groups[(1, "n")][:, -1]  # R_i p_j
            groups[(1, "n")] = groups[(1, "n")][:, :-1]
            if degree is not None:
                rel = (pos_j.view(n_dst, degree, -1) - pos_i.unsqueeze(1)).view(-1, pos_j.size(-1))
            else:
                rel = pos_j - pos_i[dst]
        x_e = None if x_src is None else reps.ungroup(groups)
    return x_e, rel
