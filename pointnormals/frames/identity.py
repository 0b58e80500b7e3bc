"""Identity frames: the ordinary, non-equivariant network from the same code."""

from __future__ import annotations

from torch import Tensor

from .base import FrameBuilder
from .frames import Frames


class IdentityFrames(FrameBuilder):
    r""":math:`R_i = I` for every point — the non-equivariant baseline (plain PointNet++).

    Layers see ``Frames.is_identity`` and skip every transformation, so this baseline
    runs at the speed of the original network.
    """

    equivariant = False

    def forward(
        self, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Frames:
        return Frames.identity(pos.size(0), pos.size(1), dtype=pos.dtype, device=pos.device)
