"""Moving features between the global frame and the local frames."""

from __future__ import annotations

from torch import Tensor, nn

from ..frames.frames import Frames
from ..reps import Reps, as_reps


class ToLocal(nn.Module):
    r"""Express global-frame features in every node's frame: :math:`f^{loc}_i = \rho(R_i) f_i`.

    The result is invariant under :math:`x \to Qx` (because :math:`R_i \to R_i Q^\top`).

    Args:
        reps: representation of the features (``reps_in == reps_out``).

    Shapes:
        x_global: ``(N, reps.dim)``, frames: ``(N, d, d)`` → ``(N, reps.dim)``.
    """

    def __init__(self, reps: Reps | str) -> None:
        super().__init__()
        self.reps_in = self.reps_out = as_reps(reps)

    def forward(self, x_global: Tensor, frames: Frames) -> Tensor:
        if frames.is_identity:
            return x_global
        return self.reps_in.transform(x_global, frames.matrices, frames.det)


class ToGlobal(nn.Module):
    r"""Map local features back to the global frame: :math:`f_i = \rho(R_i^\top) f^{loc}_i`.

    Any function of local features followed by ``ToGlobal`` is O(d)-equivariant.

    Shapes:
        x_local: ``(N, reps.dim)``, frames: ``(N, d, d)`` → ``(N, reps.dim)``.
    """

    def __init__(self, reps: Reps | str) -> None:
        super().__init__()
        self.reps_in = self.reps_out = as_reps(reps)

    def forward(self, x_local: Tensor, frames: Frames) -> Tensor:
        if frames.is_identity:
            return x_local
        return self.reps_in.transform(x_local, frames.matrices.transpose(-1, -2), frames.det)
