"""Tensorial inverse-distance interpolation (PointNet++ feature propagation)."""

from __future__ import annotations

from torch import Tensor

from ..graph import Neighbourhood
from ..pyg import MessagePassing
from ..reps import Reps, as_reps
from .receiver_frames import FramesArg, in_receiver_frames


class TensorialInterpolation(MessagePassing):
    r"""k-NN inverse-distance interpolation from coarse to fine points, frame-aware.

    .. math::
        f_i = \frac{\sum_{j \in \mathrm{kNN}(i)} w_{ij}\, \rho(R_i R_j^\top) f_j}
                   {\sum_{j} w_{ij}}, \qquad w_{ij} = \lVert p_j - p_i \rVert^{-2}

    Every coarse feature is moved into the fine point's frame before averaging
    (:func:`~pointnormals.nn.receiver_frames.in_receiver_frames`), so the result is a
    local feature of point ``i``. Weights are invariant.

    Args:
        reps: representation of the interpolated features.

    Shapes:
        x: ``(N_coarse, reps.dim)``, pos: ``((N_coarse, 3), (N_fine, 3))``,
        nbhd: coarse → fine, frames: ``(coarse, fine)`` → ``(N_fine, reps.dim)``.
    """

    def __init__(self, reps: Reps | str) -> None:
        super().__init__(aggr="add")
        self.reps_in = self.reps_out = as_reps(reps)

    def forward(
        self,
        x: Tensor,
        pos: tuple[Tensor, Tensor],
        nbhd: Neighbourhood,
        frames: FramesArg,
    ) -> Tensor:
        src, dst = nbhd.edge_index
        weight = 1.0 / (pos[0][src] - pos[1][dst]).pow(2).sum(-1).clamp_min(1e-16)  # (E,)
        total = weight.new_zeros(nbhd.num_dst).index_add_(0, dst, weight)
        weight = weight / total[dst]
        x_ij, _ = in_receiver_frames(self.reps_in, x, None, nbhd, frames)
        return self.propagate(nbhd.edge_index, x_ij=x_ij, weight=weight, size=nbhd.size)

    def message(self, x_ij: Tensor, weight: Tensor) -> Tensor:
        return weight.unsqueeze(-1) * x_ij
