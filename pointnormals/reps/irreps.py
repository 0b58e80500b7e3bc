"""Irreducible representations of O(3), built exactly from Cartesian tensors."""

from __future__ import annotations

import itertools
from functools import cache

import torch
from torch import Tensor

from ._base import Block, Reps, apply_on_axes, kron2, parse_blocks

MAX_L = 6


@cache
def _harmonic_basis64(l: int) -> Tensor:
    r"""Orthonormal basis ``Q_l`` ``(2l+1, 3**l)`` of symmetric traceless rank-``l`` tensors.

    The subspace :math:`H_l \subset (\mathbb{R}^3)^{\otimes l}` of symmetric, traceless
    tensors is invariant under :math:`R^{\otimes l}` and carries the irrep of degree
    ``l``. Its orthogonal projector :math:`P_l` is unique; we make the basis canonical
    (independent of LAPACK) by Gram–Schmidt on the columns :math:`P_l e_k` taken in
    index order. ``Q_0 = [1]`` and ``Q_1 = I`` (so ``1n`` is exactly ``R x``).
    """
    if l == 0:
        return torch.ones(1, 1, dtype=torch.float64)
    n = 3**l
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *([3] * l))
    sym = torch.zeros(n, n, dtype=torch.float64)
    perms = list(itertools.permutations(range(l)))
    for perm in perms:
        sym += eye.permute(0, *(p + 1 for p in perm)).reshape(n, n)
    sym /= len(perms)
    constraints = [torch.eye(n, dtype=torch.float64) - sym]
    if l >= 2:
        # trace over the first two indices (enough for symmetric tensors)
        trace = torch.einsum("kaa...->k...", eye).reshape(n, 3 ** (l - 2)).T
        constraints.append(trace)
    _, s, vh = torch.linalg.svd(torch.cat(constraints), full_matrices=True)
    null = vh[(s > 1e-9).sum() :]  # (2l+1, n)
    assert null.size(0) == 2 * l + 1, "internal error: wrong harmonic subspace dimension"
    proj = null.T @ null
    basis: list[Tensor] = []
    for k in range(n):
        v = proj[:, k].clone()
        for q in basis:
            v -= (q @ v) * q
        if v.norm() > 1e-6:
            basis.append(v / v.norm())
        if len(basis) == 2 * l + 1:
            break
    return torch.stack(basis)


_BASIS_CACHE: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def harmonic_basis(l: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``Q_l`` of :func:`_harmonic_basis64` in the requested dtype/device (cached)."""
    key = (l, dtype, device)
    if key not in _BASIS_CACHE:
        _BASIS_CACHE[key] = _harmonic_basis64(l).to(dtype=dtype, device=device)
    return _BASIS_CACHE[key]


class Irreps(Reps):
    r"""A direct sum of irreducible representations of :math:`O(3)`.

    A block ``m x l p`` holds ``m`` chunks of ``2l+1`` components. The representation is

    .. math::
        D^{l,n}(R) = Q_l\, R^{\otimes l}\, Q_l^\top
        = (\det R)^l\, D^l(\det R \cdot R), \qquad D^{l,p}(R) = \det R \; D^{l,n}(R),

    where :math:`Q_l` spans the symmetric traceless rank-``l`` tensors. So ``ln`` is the
    irrep carried by a *true* Cartesian tensor of rank ``l`` (parity :math:`(-1)^l`) and
    ``lp`` the one of a pseudo-tensor; ``0n``, ``1n``, ``0p``, ``1p`` coincide with
    :class:`~pointnormals.reps.TensorReps` of the same name. No Euler angles are
    involved, so the construction is exact for every ``R``, including the identity and
    rotations about a coordinate axis (gimbal lock). Supported degrees: ``l <= 6``.

    >>> Irreps("4x0n+2x1p+1x2n+1x3p").dim
    22
    >>> Irreps("2x1n") + Irreps("0p")
    Irreps('2x1n+1x0p')
    """

    d = 3

    def __init__(self, spec: str | Irreps = "") -> None:
        blocks = spec.blocks if isinstance(spec, Irreps) else parse_blocks(spec, "Irreps")
        for b in blocks:
            if b.order > MAX_L:
                raise ValueError(f"Irreps: degree l={b.order} in {spec!r} exceeds l<={MAX_L}")
        super().__init__(blocks)

    def block_dim(self, order: int) -> int:
        return 2 * order + 1

    def _with_blocks(self, blocks: tuple[Block, ...]) -> Irreps:
        return Irreps("+".join(str(b) for b in blocks))

    def _transform_block(self, x: Tensor, order: int, R: Tensor) -> Tensor:
        if R.size(-1) != 3:
            raise ValueError(f"{self!r}: irreps need 3x3 matrices, got {R.size(-1)}x{R.size(-1)}")
        if order == 1:
            return apply_on_axes(x, R, 1)
        Q = harmonic_basis(order, x.dtype, x.device)  # (2l+1, 3**l)
        cart = x @ Q  # (N, mul, 3**l)
        return apply_on_axes(cart, R, order) @ Q.T  # (N, mul, 2l+1)

    def _block_matrix(self, order: int, R: Tensor) -> Tensor | None:
        if order == 1:
            return R
        if order == 2:
            Q = harmonic_basis(2, R.dtype, R.device)  # (5, 9)
            return Q @ kron2(R) @ Q.T  # (N, 5, 5)
        return None  # l >= 3: (3**l)² matrices would be too large; go axis by axis

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})"
