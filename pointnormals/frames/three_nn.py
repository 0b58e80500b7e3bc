"""Frames from the three nearest neighbours by Gram–Schmidt."""

from __future__ import annotations

from torch import Tensor

from .. import graph
from .base import FrameBuilder
from .frames import Frames
from .gram_schmidt import gram_schmidt_frames


class ThreeNNFrames(FrameBuilder):
    r"""Gram–Schmidt on the offsets to the three nearest neighbours.

    With :math:`r_k = p_{j_k} - p_i` for the neighbours sorted by distance,
    :math:`R_i = \mathrm{GS}(r_1, r_2;\ a = r_3)` (see
    :func:`~pointnormals.frames.gram_schmidt.gram_schmidt_frames`), which is equivariant
    as long as the three distances are distinct. Distance ties (regular grids,
    duplicated points) make the neighbour order — and hence the frame — depend on the
    input order; collinear neighbours use the documented Gram–Schmidt fallback.
    """

    def forward(
        self, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Frames:
        if pos.size(1) != 3:
            raise ValueError("ThreeNNFrames is defined for 3-D points")
        n = pos.size(0)
        src, dst = graph.knn_graph(pos, 3, batch, loop=False)
        rel = pos[src] - pos[dst]  # (E, 3)
        # neighbours by distance; clouds with < 4 points leave zero offsets (fallback)
        order, rank = graph.rank_by_distance(dst, rel.pow(2).sum(-1), n)
        offsets = pos.new_zeros(n, 3, 3)
        offsets[dst[order], rank] = rel[order]
        return Frames(gram_schmidt_frames(offsets[:, 0], offsets[:, 1], offsets[:, 2]))
