"""Cartesian tensor representations of O(d)."""

from __future__ import annotations

from torch import Tensor

from ._base import Block, Reps, apply_on_axes, kron2, parse_blocks


class TensorReps(Reps):
    r"""A direct sum of Cartesian tensor representations of :math:`O(d)`.

    A block ``m x k p`` holds ``m`` rank-``k`` tensors (``d**k`` components each,
    row-major indices). Under an orthogonal ``R`` a rank-``k`` block transforms as

    .. math::
        x'_{a_1\dots a_k} = s(R)\, R_{a_1 b_1}\cdots R_{a_k b_k}\, x_{b_1\dots b_k},
        \qquad s(R) = \begin{cases} 1 & \text{parity } n \\ \det R & \text{parity } p \end{cases}

    i.e. rank 0: :math:`x` (or :math:`\det R\,x`), rank 1: :math:`Rx`, rank 2:
    :math:`RXR^\top`.

    Args:
        spec: e.g. ``"16x0n+8x1n+2x1p+4x2n"``; the multiplicity defaults to 1.
        dim: the spatial dimension ``d`` (default 3).

    >>> reps = TensorReps("16x0n+8x1n+2x1p+4x2n")
    >>> reps.dim
    82
    >>> TensorReps(str(reps)) == reps
    True
    >>> TensorReps("1x1n", dim=2).dim
    2
    """

    def __init__(self, spec: str | TensorReps = "", dim: int = 3) -> None:
        if isinstance(spec, TensorReps):
            blocks, dim = spec.blocks, spec.d
        else:
            blocks = parse_blocks(spec, "TensorReps")
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"TensorReps: spatial dimension must be a positive int, got {dim!r}")
        super().__init__(blocks)
        object.__setattr__(self, "d", dim)

    d: int

    def block_dim(self, order: int) -> int:
        return self.d**order

    def _with_blocks(self, blocks: tuple[Block, ...]) -> TensorReps:
        return TensorReps("+".join(str(b) for b in blocks), dim=self.d)

    def _transform_block(self, x: Tensor, order: int, R: Tensor) -> Tensor:
        if R.size(-1) != self.d:
            raise ValueError(f"{self!r}: got {R.size(-1)}x{R.size(-1)} matrices")
        return apply_on_axes(x, R, order)

    def _block_matrix(self, order: int, R: Tensor) -> Tensor | None:
        if order == 1:
            return R
        if order == 2:
            return kron2(R)  # one (d², d²) matrix per node beats two small matmuls
        return None

    def __repr__(self) -> str:
        suffix = "" if self.d == 3 else f", dim={self.d}"
        return f"TensorReps({str(self)!r}{suffix})"
