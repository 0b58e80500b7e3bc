"""The :class:`Frames` object: one orthogonal matrix per node, with cached derived data."""

from __future__ import annotations

import torch
from torch import Tensor


class Frames:
    r"""Local frames :math:`R_i \in O(d)`, stored as ``(N, d, d)`` matrices.

    Convention: the **rows** of :math:`R_i` are node ``i``'s local axes in global
    coordinates, so the local coordinates of a global vector :math:`v` are :math:`R_i v`.
    Equivariant frames satisfy :math:`R_i(Qx + t) = R_i(x)\,Q^\top`; :math:`\det R_i`
    may be :math:`-1`.

    Derived quantities (``det``, per-edge relative frames) are computed lazily and
    cached on the object, so every layer that uses the same frames and the same
    ``edge_index`` shares one gather. A ``Frames`` object lives for one forward pass;
    modules receive it as an argument and never store it.

    Args:
        matrices: ``(N, d, d)`` orthogonal matrices.
        det: optional ``(N,)`` determinants (±1) if already known.
        is_identity: promise that every matrix is the identity; layers then skip all
            transformations (the non-equivariant baseline runs at plain speed).
    """

    def __init__(self, matrices: Tensor, det: Tensor | None = None, is_identity: bool = False):
        if matrices.dim() != 3 or matrices.size(-1) != matrices.size(-2):
            raise ValueError(f"Frames: expected (N, d, d) matrices, got {tuple(matrices.shape)}")
        self.matrices = matrices
        self.is_identity = is_identity
        self._det = det
        self._relative: dict[tuple[int, int], tuple[Tensor, Frames, Frames]] = {}

    @classmethod
    def identity(
        cls,
        n: int,
        d: int = 3,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> Frames:
        """``n`` identity frames (an expanded view, no copy)."""
        eye = torch.eye(d, dtype=dtype, device=device).expand(n, d, d)
        return cls(eye, det=torch.ones(n, dtype=eye.dtype, device=device), is_identity=True)

    # -- basic properties ------------------------------------------------------------
    def __len__(self) -> int:
        return self.matrices.size(0)

    @property
    def d(self) -> int:
        """Spatial dimension."""
        return self.matrices.size(-1)

    @property
    def det(self) -> Tensor:
        """Determinants ``(N,)``, exactly ±1 (cached)."""
        if self._det is None:
            self._det = torch.linalg.det(self.matrices).sign()
        return self._det

    @property
    def inv(self) -> Frames:
        r""":math:`R_i^{-1} = R_i^\top`."""
        return Frames(self.matrices.transpose(-1, -2), self._det, self.is_identity)

    def __getitem__(self, index: Tensor | slice) -> Frames:
        det = None if self._det is None else self._det[index]
        return Frames(self.matrices[index], det, self.is_identity)

    def to(self, *args, **kwargs) -> Frames:
        """Move/cast like :meth:`torch.Tensor.to`."""
        det = None if self._det is None else self._det.to(*args, **kwargs)
        return Frames(self.matrices.to(*args, **kwargs), det, self.is_identity)

    def compose(self, delta: Tensor) -> Frames:
        r"""Left-multiply by per-node proper rotations: :math:`R_i' = \Delta_i R_i`."""
        return Frames(delta @ self.matrices, self._det, is_identity=False)

    # -- per-edge relative frames -------------------------------------------------------
    def relative(self, edge_index: Tensor, source: Frames | None = None) -> Frames:
        r"""Relative frames :math:`R_i R_j^\top` of every edge ``j → i`` (cached).

        A tensor expressed in ``j``'s frame is re-expressed in ``i``'s frame by
        :math:`\rho(R_i R_j^\top)`. ``self`` holds the receivers' frames (index
        ``edge_index[1]``); ``source`` the senders' (index ``edge_index[0]``), by default
        ``self``. :math:`\det(R_i R_j^\top) = \det R_i \det R_j` is filled in without
        a determinant.

        Shapes:
            edge_index: ``(2, E)`` → ``(E, d, d)`` frames.
        """
        source = self if source is None else source
        key = (id(edge_index), id(source))
        cached = self._relative.get(key)
        if cached is not None and cached[0] is edge_index and cached[1] is source:
            return cached[2]
        src, dst = edge_index[0], edge_index[1]
        if self.is_identity and source.is_identity:
            rel = Frames.identity(
                src.numel(), self.d, dtype=self.matrices.dtype, device=self.matrices.device
            )
        else:
            mat = self.matrices[dst] @ source.matrices[src].transpose(-1, -2)  # (E, d, d)
            rel = Frames(mat, det=self.det[dst] * source.det[src])
        self._relative[key] = (edge_index, source, rel)
        return rel

    def receivers(self, edge_index: Tensor) -> Frames:
        r"""The receiver's frame :math:`R_i` of every edge ``j → i`` (gathered once, cached).

        Shapes:
            edge_index: ``(2, E)`` → ``(E, d, d)`` frames.
        """
        key = (id(edge_index), 0)
        cached = self._relative.get(key)
        if cached is not None and cached[0] is edge_index:
            return cached[2]
        dst = edge_index[1]
        if self.is_identity:
            out = Frames.identity(dst.numel(), self.d, self.matrices.dtype, self.matrices.device)
        else:
            out = Frames(self.matrices[dst], det=self.det[dst])
        self._relative[key] = (edge_index, self, out)
        return out

    def __repr__(self) -> str:
        kind = ", identity" if self.is_identity else ""
        return f"Frames(n={len(self)}, d={self.d}, dtype={self.matrices.dtype}{kind})"
