"""Base class of the frame constructions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pointnormals.pyg import scatter

from .frames import Frames


def to_centroid(pos: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
    r"""From each point to its cloud's centroid, :math:`\bar p - p_i`, and the cloud's
    RMS radius about it (floored at the dtype's ``tiny``): what a frame construction
    consults when a neighbourhood is flat. Equivariant (the radius invariant) under
    :math:`p \to Qp + t`.

    Shapes:
        pos: ``(N, d)``, batch: ``(N,)`` or ``None`` → ``(N, d)``, ``(N,)``.
    """
    if batch is None:
        batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    offset = scatter(pos, batch, dim=0, reduce="mean")[batch] - pos
    rho2 = scatter(offset.pow(2).sum(-1), batch, dim=0, reduce="mean")[batch]
    return offset, rho2.clamp_min(torch.finfo(pos.dtype).tiny).sqrt()


class FrameBuilder(nn.Module):
    r"""Predicts one frame per point, equivariantly: :math:`R(Qx + t) = R(x)\,Q^\top`.

    Subclasses implement :meth:`forward`; they may use invariant per-point features
    ``x`` but must not use absolute positions in any non-equivariant way.
    """

    #: True when the construction is equivariant for generic inputs (False for the
    #: identity baseline and for random frames).
    equivariant: bool = True

    #: ``k`` when the construction works on the kNN graph with self-loops (each point and
    #: its ``k - 1`` nearest neighbours): a model that has built that graph already passes
    #: it as ``edge_index`` instead of letting the builder search again.
    knn_k: int | None = None

    def forward(
        self, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Frames:
        """Frames for the points ``pos`` ``(N, d)`` of clouds ``batch`` ``(N,)``.

        ``edge_index`` (optional): the kNN graph with self-loops of ``knn_k`` neighbours.
        """
        raise NotImplementedError
