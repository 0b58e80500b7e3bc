"""Tensorial inverse-distance interpolation (PointNet++ feature propagation)."""

from __future__ import annotations

from torch import Tensor

from ..reps import Reps, as_reps
from .message_passing import FramesArg, TensorialMessagePassing


class TensorialInterpolation(TensorialMessagePassing):
    r"""k-NN inverse-distance interpolation from coarse to fine points, frame-aware.

    .. math::
        f_i = \frac{\sum_{j \in \mathrm{kNN}(i)} w_{ij}\, \rho(R_i R_j^\top) f_j}
                   {\sum_{j} w_{ij}}, \qquad w_{ij} = \lVert p_j - p_i \rVert^{-2}

    Every coarse feature is moved into the fine point's frame before averaging, so the
    result is a local feature of point ``i``. Weights are invariant.

    Args:
        reps: representation of the interpolated features.
        reps_kind: ``"tensor"`` or ``"irreps"`` for string reps.

    Shapes:
        x: ``(N_coarse, reps.dim)``, pos: ``((N_coarse, 3), (N_fine, 3))``,
        edge_index: ``(2, E)`` coarse → fine, frames: ``(coarse, fine)``
        → ``(N_fine, reps.dim)``.
    """

    def __init__(self, reps: Reps | str, reps_kind: str = "tensor") -> None:
        self.reps_in = self.reps_out = as_reps(reps, reps_kind)
        super().__init__(local_reps={"x": self.reps_in}, aggr="add")

    def forward(
        self,
        x: Tensor,
        pos: tuple[Tensor, Tensor],
        edge_index: Tensor,
        frames: FramesArg,
    ) -> Tensor:
        src, dst = edge_index
        weight = 1.0 / (pos[0][src] - pos[1][dst]).pow(2).sum(-1).clamp_min(1e-16)  # (E,)
        total = weight.new_zeros(pos[1].size(0)).index_add_(0, dst, weight)
        weight = weight / total[dst]
        return self.propagate(
            edge_index, x=x, weight=weight, frames=frames, size=(x.size(0), pos[1].size(0))
        )

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight.unsqueeze(-1) * x_j
