"""Representations of O(d): Cartesian tensors (:class:`TensorReps`) and O(3) irreps.

Both are immutable value objects parsed from strings such as ``"16x0n+8x1n+4x2n"``.
"""

from ._base import Block, Reps
from .irreps import Irreps
from .tensor_reps import TensorReps

__all__ = ["Block", "Irreps", "Reps", "TensorReps", "as_reps"]


def as_reps(spec: str | Reps, kind: str = "tensor", dim: int = 3) -> Reps:
    """Parse ``spec`` as :class:`TensorReps` (``kind="tensor"``) or :class:`Irreps`."""
    if isinstance(spec, Reps):
        return spec
    if kind == "tensor":
        return TensorReps(spec, dim=dim)
    if kind == "irreps":
        return Irreps(spec)
    raise ValueError(f"unknown reps kind {kind!r}; expected 'tensor' or 'irreps'")
