"""Random O(d) frames, per node or one global (tests and ablations)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import random_orthogonal
from .base import FrameBuilder
from .frames import Frames

__all__ = ["RandomFrames", "random_orthogonal"]


class RandomFrames(FrameBuilder):
    """Random frames: a fresh Haar-random O(d) element per node, or one for all nodes.

    Not equivariant (the frames ignore the input); a network with random frames is
    equivariant *in distribution* only. Pass ``seed`` for reproducible frames.

    Args:
        per_node: one matrix per node (default) or one global matrix.
        seed: optional seed of a private generator (the global RNG is left untouched).
    """

    equivariant = False

    def __init__(self, per_node: bool = True, seed: int | None = None) -> None:
        super().__init__()
        self.per_node = per_node
        self.seed = seed

    def forward(
        self, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Frames:
        gen = None
        if self.seed is not None:
            gen = torch.Generator().manual_seed(self.seed)
        n = pos.size(0) if self.per_node else 1
        mats = random_orthogonal(n, pos.size(1), dtype=pos.dtype, device=pos.device, generator=gen)
        return Frames(mats.expand(pos.size(0), -1, -1))
