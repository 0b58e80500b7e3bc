"""Tensorial message passing: make any PyG ``MessagePassing`` layer O(d)-equivariant."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch_geometric.nn import MessagePassing

from .. import graph
from ..frames.frames import Frames
from ..reps import Reps, as_reps

FramesArg = Frames | tuple[Frames, Frames]


def _pair(value: Any) -> tuple[Any, Any]:
    """PyG's bipartite convention: ``(source, target)``; a single value is both."""
    return (value[0], value[1]) if isinstance(value, tuple | list) else (value, value)


class TensorialMessagePassing(MessagePassing):
    r"""A :class:`~torch_geometric.nn.MessagePassing` whose inputs are typed by frame.

    Every node ``i`` carries a frame :math:`R_i` (passed to :meth:`propagate` as
    ``frames=``, or ``frames=(frames_src, frames_dst)`` for bipartite graphs). A layer
    declares how its ``propagate`` inputs transform, and ``message()`` then receives
    them *in the receiver's frame*:

    * ``local_reps={"x": reps}``: ``x`` is already expressed in each node's own frame;
      ``x_j`` arrives as :math:`\rho(R_i R_j^\top)\,x_j` (the tensorial message) and
      ``x_i`` unchanged.
    * ``global_reps={"pos": "1x1n"}``: ``pos`` is in global coordinates; ``pos_i``
      arrives as :math:`\rho(R_i)\,p_i` and ``pos_j`` as :math:`\rho(R_i)\,p_j`, so
      ``pos_j - pos_i`` is :math:`R_i(p_j - p_i)`.
    * anything else (edge attributes, distances, ...) must be invariant and passes as is.

    Everything ``message()`` sees is then invariant under :math:`x \to Qx`,
    :math:`R \to RQ^\top`, so *any* function of it is allowed; its output is a feature
    in the receiver's local frame, and the layer is equivariant. With identity frames
    (``Frames.is_identity``) nothing is transformed and the layer is the ordinary one.

    Implementation: the frame changes happen in PyG's ``_collect`` step (where
    ``x_j``/``x_i`` are gathered), so ``torch_geometric`` is pinned to 2.7.0.

    Cost: senders' local features are moved to the global frame once per node, then
    every edge applies :math:`\rho(R_i)` with the receiver's frame, gathered once per
    ``(frames, edge_index)`` pair and cached on the :class:`Frames` object (no per-edge
    matrix products; for kNN graphs, whose ``k`` edges per receiver are consecutive,
    one matrix moves all ``k`` messages at once); ``0n`` blocks are never touched and
    ``0p`` blocks only use determinants.

    Args:
        local_reps: representation of every local input, by ``propagate`` keyword.
        global_reps: representation of every global-frame input, by keyword.
        reps_kind: how string reps are parsed, ``"tensor"`` or ``"irreps"``.
        **kwargs: forwarded to :class:`~torch_geometric.nn.MessagePassing` (``aggr``, ...).
    """

    def __init__(
        self,
        local_reps: dict[str, Reps | str] | None = None,
        global_reps: dict[str, Reps | str] | None = None,
        reps_kind: str = "tensor",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.local_reps = {k: as_reps(v, reps_kind) for k, v in (local_reps or {}).items()}
        self.global_reps = {k: as_reps(v, reps_kind) for k, v in (global_reps or {}).items()}
        both = set(self.local_reps) & set(self.global_reps)
        if both:
            raise ValueError(f"inputs declared both local and global: {sorted(both)}")

    def _set_jittable_templates(self, raise_on_error: bool = False) -> None:
        # PyG would replace ``propagate`` by a generated version with its own ``collect``;
        # keep the reference ``propagate`` so that our ``_collect`` below is used.
        return None

    def _collect(
        self, args: set[str], edge_index: Tensor, size: list[int | None], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        frames = kwargs.get("frames")
        if frames is None:
            raise ValueError(f"{type(self).__name__}.propagate needs frames=Frames(...)")
        frames_src, frames_dst = _pair(frames)
        identity = frames_src.is_identity and frames_dst.is_identity
        if identity:
            return super()._collect(args, edge_index, size, kwargs)
        # Node level first: local inputs of the senders go to the global frame
        # (rho(R_j^T) x_j), global inputs of the receivers to their frames (rho(R_i) g_i).
        # On the edges, rho(R_i) then yields rho(R_i R_j^T) x_j and rho(R_i) g_j: one
        # gathered matrix per edge instead of the product R_i R_j^T.
        kwargs = dict(kwargs)
        moved = {}
        for name, reps in self.local_reps.items():
            value = kwargs[name]
            x_src = value[0] if isinstance(value, tuple | list) else value
            if x_src is None or reps.is_invariant:
                continue
            x_src = reps.transform(x_src, frames_src.matrices.transpose(-1, -2), frames_src.det)
            if isinstance(value, tuple | list):
                x_dst = value[1]
            else:  # one tensor: the receivers' own copy, unless the graph is bipartite
                x_dst = None if isinstance(frames, tuple | list) else value
            kwargs[name] = (x_src, x_dst)
            moved[name] = reps
        for name, reps in self.global_reps.items():
            g_src, g_dst = _pair(kwargs[name])
            kwargs[name] = (g_src, reps.transform(g_dst, frames_dst.matrices, frames_dst.det))
            moved[name] = reps
        out = super()._collect(args, edge_index, size, kwargs)
        degree = graph.fixed_degree(edge_index)
        for name, reps in moved.items():
            value = out.get(f"{name}_j")
            if value is None:
                continue
            if degree is not None:  # k edges per receiver, grouped: one matrix per receiver
                grouped = value.view(len(frames_dst), degree, -1)
                value = reps.transform(grouped, frames_dst.matrices, frames_dst.det)
                out[f"{name}_j"] = value.view(-1, value.size(-1))
            else:
                recv = frames_dst.receivers(edge_index)
                out[f"{name}_j"] = reps.transform(value, recv.matrices, recv.det)
        return out
