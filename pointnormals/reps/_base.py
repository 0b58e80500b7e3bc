"""Shared machinery of the representation value objects (parsing, blocks, slices)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([np])\s*$")


@dataclass(frozen=True)
class Block:
    """``mul`` copies of one representation of ``order`` (rank or l) and ``parity``.

    ``parity`` is ``"n"`` (true tensor) or ``"p"`` (pseudo-tensor, extra factor det R).
    """

    mul: int
    order: int
    parity: str

    def __str__(self) -> str:
        return f"{self.mul}x{self.order}{self.parity}"


def parse_blocks(spec: str, kind: str) -> tuple[Block, ...]:
    """Parse ``"16x0n+8x1n+2x1p"`` into blocks; raise ``ValueError`` naming the problem.

    >>> parse_blocks("2x1n+0p", "TensorReps")
    (Block(mul=2, order=1, parity='n'), Block(mul=1, order=0, parity='p'))
    """
    if not isinstance(spec, str):
        raise ValueError(f"{kind}: expected a string like '16x0n+8x1n', got {type(spec).__name__}")
    if spec.strip() == "":
        return ()
    blocks = []
    for term in spec.split("+"):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(
                f"{kind}: cannot parse term {term.strip()!r} of {spec!r}; "
                "expected '<mul>x<order><n|p>', e.g. '8x1n'"
            )
        mul, order, parity = match.groups()
        mul = 1 if mul is None else int(mul)
        if mul == 0:
            raise ValueError(f"{kind}: multiplicity 0 in term {term.strip()!r} of {spec!r}")
        blocks.append(Block(mul, int(order), parity))
    return tuple(blocks)


class Reps:
    """Base of :class:`TensorReps` and :class:`Irreps`: an immutable sum of blocks.

    Features of these representations are flat tensors ``(N, dim)``; block ``b``
    occupies ``slices[b]`` and consists of ``mul`` consecutive chunks of
    ``block_dim(order)`` components.
    """

    blocks: tuple[Block, ...]

    def __init__(self, blocks: tuple[Block, ...]) -> None:
        object.__setattr__(self, "blocks", blocks)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # -- to be provided by subclasses -------------------------------------------------
    def block_dim(self, order: int) -> int:
        """Dimension of one copy of the representation of ``order``."""
        raise NotImplementedError

    def _transform_block(self, x: Tensor, order: int, R: Tensor) -> Tensor:
        """Apply the ``n``-parity representation of ``order`` to ``x`` ``(N, mul, dim)``."""
        raise NotImplementedError

    # -- derived properties ------------------------------------------------------------
    @cached_property
    def dim(self) -> int:
        """Total number of components."""
        return sum(b.mul * self.block_dim(b.order) for b in self.blocks)

    @cached_property
    def slices(self) -> tuple[slice, ...]:
        """The slice of every block in the flat feature vector."""
        out, start = [], 0
        for b in self.blocks:
            stop = start + b.mul * self.block_dim(b.order)
            out.append(slice(start, stop))
            start = stop
        return tuple(out)

    @cached_property
    def block_sizes(self) -> tuple[int, ...]:
        """Number of components of every block."""
        return tuple(sl.stop - sl.start for sl in self.slices)

    @cached_property
    def is_scalar(self) -> bool:
        """True when every block is order 0 (no rotation matrices are needed)."""
        return all(b.order == 0 for b in self.blocks)

    @cached_property
    def is_invariant(self) -> bool:
        """True when every block is ``0n`` (nothing changes under O(d))."""
        return all(b.order == 0 and b.parity == "n" for b in self.blocks)

    @cached_property
    def num_scalars(self) -> int:
        """Number of ``0n`` components (the invariant part)."""
        return sum(b.mul for b in self.blocks if b.order == 0 and b.parity == "n")

    @cached_property
    def scalar_index(self) -> Tensor:
        """Indices of the ``0n`` components in the flat layout ``(num_scalars,)``."""
        idx = [
            torch.arange(sl.start, sl.stop)
            for b, sl in zip(self.blocks, self.slices, strict=True)
            if b.order == 0 and b.parity == "n"
        ]
        return torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self):
        return iter(self.blocks)

    def __add__(self, other: Reps) -> Reps:
        if type(other) is not type(self) or getattr(other, "d", None) != getattr(self, "d", None):
            raise ValueError(f"cannot add {self!r} and {other!r}")
        return self._with_blocks(self.blocks + other.blocks)

    def _with_blocks(self, blocks: tuple[Block, ...]) -> Reps:
        raise NotImplementedError

    def __str__(self) -> str:
        return "+".join(str(b) for b in self.blocks)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.blocks == other.blocks
            and getattr(self, "d", None) == getattr(other, "d", None)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.blocks, getattr(self, "d", None)))

    # -- action --------------------------------------------------------------------------
    def transform(self, x: Tensor, R: Tensor, det: Tensor | None = None) -> Tensor:
        """Return :math:`\\rho(R)\\,x`.

        Args:
            x: features ``(N, dim)``, or ``(N, k, dim)``: ``k`` features per matrix
                (e.g. the ``k`` edges into one receiver), all moved by the same ``R``.
            R: orthogonal matrices ``(N, d, d)`` (or ``(d, d)``, broadcast), det ±1.
            det: optional precomputed ``det R`` ``(N,)``; only needed for ``p`` blocks.

        Returns:
            Transformed features, shaped like ``x``.
        """
        if x.size(-1) != self.dim:
            raise ValueError(f"{self}: features have {x.size(-1)} components, expected {self.dim}")
        if self.is_invariant or not self.blocks:
            return x
        if torch.is_autocast_enabled(x.device.type):
            # mixed precision: geometry stays in the frames' precision (float32), so that
            # only the MLPs round to bf16/fp16 and the transforms stay exact
            with torch.autocast(x.device.type, enabled=False):
                return self.transform(x.to(R.dtype), R, det)
        x = x.to(R.dtype) if x.dtype != R.dtype and R.is_floating_point() else x
        n = x.size(0)
        if R.dim() == 2:
            R = R.expand(n, *R.shape)
        needs_det = any(b.parity == "p" for b in self.blocks)
        if needs_det and det is None:
            det = torch.linalg.det(R).sign()
        if needs_det:
            det = det.reshape(n, *([1] * (x.dim() - 1)))  # broadcast over k and components
        matrices: dict[int, Tensor | None] = {}  # one representation matrix per order
        out = []
        pieces = torch.split(x, self.block_sizes, dim=-1) if len(self.blocks) > 1 else (x,)
        for b, xb in zip(self.blocks, pieces, strict=True):
            if b.order > 0:
                if b.order not in matrices:
                    matrices[b.order] = self._block_matrix(b.order, R)
                mat = matrices[b.order]
                flat = xb.reshape(n, -1, self.block_dim(b.order))  # (N, k*mul, block_dim)
                if mat is None:
                    flat = self._transform_block(flat, b.order, R)
                else:
                    flat = torch.matmul(flat, mat.transpose(-1, -2))
                xb = flat.reshape(xb.shape)
            if b.parity == "p":
                xb = xb * det
            out.append(xb)
        return torch.cat(out, dim=-1) if len(out) > 1 else out[0]

    def regroup(self, x: Tensor) -> dict[tuple[int, str], Tensor]:
        """The blocks of ``x`` stacked by ``(order, parity)``, so that one product per
        group moves them all (:meth:`transform_order`); :meth:`ungroup` inverts it.

        >>> from pointnormals.reps import TensorReps
        >>> reps = TensorReps("2x0n+1x1n+1x1p+1x1n")
        >>> {k: tuple(v.shape) for k, v in reps.regroup(torch.zeros(5, reps.dim)).items()}
        {(0, 'n'): (5, 2, 1), (1, 'n'): (5, 2, 3), (1, 'p'): (5, 1, 3)}

        Shapes:
            x: ``(N, dim)`` → ``{(order, parity): (N, m, block_dim(order))}``, the
            blocks of a group in their order, ``m`` the sum of their multiplicities.
        """
        parts: dict[tuple[int, str], list[Tensor]] = {}
        for b, sl in zip(self.blocks, self.slices, strict=True):
            block = x[:, sl].reshape(x.size(0), b.mul, -1)
            parts.setdefault((b.order, b.parity), []).append(block)
        return {k: v[0] if len(v) == 1 else torch.cat(v, dim=1) for k, v in parts.items()}

    def ungroup(self, groups: dict[tuple[int, str], Tensor]) -> Tensor:
        """Inverse of :meth:`regroup`: the features in block order, ``(N, dim)``."""
        cursor = dict.fromkeys(groups, 0)
        out = []
        for b in self.blocks:
            key = (b.order, b.parity)
            out.append(groups[key][:, cursor[key] : cursor[key] + b.mul].flatten(1))
            cursor[key] += b.mul
        return torch.cat(out, dim=-1) if len(out) > 1 else out[0]

    def order_matrix(self, order: int, R: Tensor) -> Tensor | None:
        """The ``n``-parity representation matrices of ``order``, ``(N, D, D)``, or
        ``None`` where they are not built (high orders: applied axis by axis)."""
        return None if order == 0 else self._block_matrix(order, R)

    def transform_order(
        self, x: Tensor, order: int, R: Tensor, matrix: Tensor | None = None
    ) -> Tensor:
        r"""Apply the ``n``-parity representation of ``order`` to stacked copies.

        Args:
            x: ``(N, m, block_dim(order))``: ``m`` copies per matrix (e.g. all blocks of
                one order of the ``k`` edges into one receiver).
            R: ``(N, d, d)`` orthogonal matrices.
            matrix: :meth:`order_matrix` of ``R`` when already built (reused).

        Returns:
            :math:`\rho_{order}(R)` applied to every copy, shaped like ``x``.
        """
        if order == 0:
            return x
        mat = matrix if matrix is not None else self._block_matrix(order, R)
        if mat is None:
            return self._transform_block(x, order, R)
        return torch.matmul(x, mat.transpose(-1, -2))

    def _block_matrix(self, order: int, R: Tensor) -> Tensor | None:
        """The ``n``-parity representation matrices ``(N, D, D)`` of ``order`` when they
        are cheap to build (low orders); ``None`` to apply ``R`` axis by axis instead."""
        return None

    def matrix(self, R: Tensor) -> Tensor:
        """The block-diagonal matrices :math:`\\rho(R)`, ``(N, dim, dim)`` (for tests)."""
        if R.dim() == 2:
            R = R.unsqueeze(0)
        eye = torch.eye(self.dim, dtype=R.dtype, device=R.device)
        n = R.size(0)
        basis = eye.expand(n, self.dim, self.dim).transpose(1, 2)  # columns are e_k
        cols = [self.transform(basis[:, :, k], R) for k in range(self.dim)]
        return torch.stack(cols, dim=-1)


def kron2(R: Tensor) -> Tensor:
    r""":math:`R \otimes R` as ``(N, d*d, d*d)``, row-major: ``[(a1, a2), (b1, b2)]``."""
    n, d, _ = R.shape
    return (R[:, :, None, :, None] * R[:, None, :, None, :]).reshape(n, d * d, d * d)


def apply_on_axes(x: Tensor, R: Tensor, rank: int) -> Tensor:
    """Apply ``R`` to each of the ``rank`` trailing tensor axes of ``x``.

    .. math::
        x'_{a_1\\dots a_k} = R_{a_1 b_1}\\cdots R_{a_k b_k}\\, x_{b_1\\dots b_k}

    Args:
        x: ``(N, mul, d**rank)`` flat row-major tensors.
        R: ``(N, d, d)``.

    Returns:
        ``(N, mul, d**rank)``.
    """
    n, mul, _ = x.shape
    d = R.size(-1)
    if rank == 1:
        return torch.matmul(x, R.transpose(-1, -2))  # (N, mul, d)
    if rank == 2:
        X = x.reshape(n, mul, d, d)
        return (R.unsqueeze(1) @ X @ R.transpose(-1, -2).unsqueeze(1)).reshape(n, mul, d * d)
    # general rank: contract the leading tensor axis and rotate it to the back, k times
    t = x.reshape(n, mul, d, d ** (rank - 1))
    for _ in range(rank):
        t = torch.einsum("nab,nmbr->nmra", R, t)  # (N, mul, d**(rank-1), d)
        t = t.reshape(n, mul, d, d ** (rank - 1))
    return t.reshape(n, mul, d**rank)
