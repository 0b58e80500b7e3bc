"""Base class of the frame constructions."""

from __future__ import annotations

from torch import Tensor, nn

from .frames import Frames


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
