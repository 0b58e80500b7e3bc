"""PCA frames: eigenvectors of the centred neighbourhood covariance, with robust signs."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import graph
from ..geometry import symmetric_eigh
from ..pyg import scatter
from .base import FrameBuilder, to_centroid
from .frames import Frames


def _sum(values: Tensor, index: Tensor, n: int) -> Tensor:
    return scatter(values, index, dim=0, dim_size=n, reduce="sum")


def _others(d: int, device: torch.device) -> Tensor:
    """``(1, d, d - 1)``: for each axis ``a`` the other axes, by decreasing eigenvalue."""
    idx = [[b for b in range(d) if b != a] for a in range(d)]
    return torch.tensor(idx, dtype=torch.long, device=device).view(1, d, d - 1)


def _first_sign(rules: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Sign of the first rule above ``threshold`` per axis, and whether there was one.

    Shapes:
        rules: ``(N, d, K)`` → sign, decided: ``(N, d)``.
    """
    decisive = rules.abs() > threshold
    first = decisive & (decisive.cumsum(-1) == 1)  # one-hot: the first decisive rule
    return (first * rules.sign()).sum(-1), decisive.any(-1)


class PCAFrames(FrameBuilder):
    r"""Frames from principal axes of each point's neighbourhood.

    For the neighbourhood :math:`\mathcal{N}(i)` (kNN incl. ``i``, or a radius ball) with
    mean :math:`\bar p_i`, the rows of :math:`R_i` are the eigenvectors of

    .. math::
        C_i = \frac{1}{|\mathcal{N}(i)|}\sum_{j\in\mathcal{N}(i)} (p_j-\bar p_i)(p_j-\bar p_i)^\top

    by *decreasing* eigenvalue, so the last row is the PCA normal. With the projected
    offsets :math:`z_{ja} = e_a\cdot(p_j-\bar p_i)` and the neighbourhood's standard
    deviation :math:`\sigma_i = \sqrt{\operatorname{tr} C_i}`, each axis :math:`e_a` gets
    its sign from the first of these (scale-free) rules whose magnitude exceeds ``tol``:

    1. the skewness :math:`\langle z_a^3\rangle / \sigma_i^3`;
    2. the offset of the centre :math:`e_a\cdot(\bar p_i - p_i) / \sigma_i`;
    3. the co-skewness with each other axis :math:`b`, by decreasing eigenvalue,
       :math:`\langle z_a z_b^2\rangle / \sigma_i^3` — for the normal of a saddle, where
       1 and 2 vanish, this is the curvature along the principal tangent :math:`e_b`;
    4. the offset of the whole cloud's centroid :math:`e_a\cdot(\bar p - p_i) / \rho`,
       :math:`\rho` the cloud's RMS radius — for the normal of a planar neighbourhood
       (a CAD face), where every local rule vanishes.

    Every rule is odd in :math:`e_a` and even in every other axis, so it flips with its
    own axis only, and it commutes with :math:`Q \in O(d)`: a decided axis follows
    :math:`e_a \to Q e_a` exactly, reflections included (no cross products).
    An axis with every rule below ``tol`` takes the first rule above the float
    precision floor :math:`\sqrt{\varepsilon}` (still equivariant, less margin against
    rounding; only where :math:`\sqrt{\varepsilon} <` ``tol``, i.e. float64). What is
    left is symmetric under the mirror :math:`e_a \to -e_a` locally and has the
    cloud's centroid on the mirror plane, where no equivariant sign exists. Then,
    deterministically:

    5. if exactly one axis is undecided (``d = 3``): :math:`\det R_i = +1`
       (rotation- but not reflection-equivariant);
    6. otherwise the eigen-solver's sign (deterministic, not equivariant).

    Degenerate neighbourhoods: coincident points give :math:`C_i = 0` and collinear or
    planar ones repeated eigenvalues; the eigenvectors of a repeated eigenvalue are
    arbitrary (but deterministic), so equivariance cannot hold on them — the frames stay
    finite and orthogonal. ``tests/test_frames.py`` measures how often this happens.

    Args:
        k: neighbours (incl. the point itself) when ``r`` is ``None``.
        r: optional radius instead of kNN (capped at ``k`` nearest inside the ball).
        tol: relative threshold below which a sign rule is considered undecided.
    """

    def __init__(self, k: int = 16, r: float | None = None, tol: float = 1e-4) -> None:
        super().__init__()
        self.k, self.r, self.tol = k, r, tol

    @property
    def knn_k(self) -> int | None:
        return self.k if self.r is None else None

    def forward(
        self, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Frames:
        n, d = pos.shape
        pos = pos.detach()
        if edge_index is None and self.r is None:
            edge_index = graph.knn_graph(pos, self.k, batch, loop=True)
        elif edge_index is None:
            edge_index = graph.radius(pos, pos, self.r, batch, batch, max_num_neighbors=self.k)
        src, dst = edge_index
        count = _sum(torch.ones_like(src, dtype=pos.dtype), dst, n).clamp_min(1).unsqueeze(-1)
        mean = _sum(pos[src], dst, n) / count  # (N, d)
        off = pos[src] - mean[dst]  # (E, d)
        cov = _sum(off.unsqueeze(-1) * off.unsqueeze(-2), dst, n) / count.unsqueeze(-1)
        scale2 = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)  # (N,) total variance
        # a tiny isotropic shift keeps eigh well-conditioned without changing eigenvectors
        _, vecs = symmetric_eigh(cov + 1e-12 * torch.eye(d, dtype=pos.dtype, device=pos.device))
        axes = vecs.flip(-1).transpose(-1, -2)  # (N, d, d): rows by decreasing eigenvalue

        z = (axes[dst] @ off.unsqueeze(-1)).squeeze(-1)  # (E, d)
        # third moments <z_a z_b^2>: odd in axis a, even in axis b; a = b is the skewness
        m3 = _sum(z.unsqueeze(-1) * z.pow(2).unsqueeze(-2), dst, n) / count.unsqueeze(-1)
        m1 = (axes @ (mean - pos).unsqueeze(-1)).squeeze(-1)  # (N, d)
        sigma = scale2.clamp_min(torch.finfo(pos.dtype).tiny).sqrt()[:, None, None]  # (N, 1, 1)
        offset, rho = to_centroid(pos, batch)  # (N, d), (N,)
        m_cloud = (axes @ offset.unsqueeze(-1)) / rho[:, None, None]  # (N, d, 1)
        rules = torch.cat(  # (N, d, d + 2): the sign rules of each axis, in order
            [
                torch.diagonal(m3, dim1=-2, dim2=-1).unsqueeze(-1) / sigma.pow(3),
                m1.unsqueeze(-1) / sigma,
                m3.gather(-1, _others(d, pos.device).expand(n, -1, -1)) / sigma.pow(3),
                m_cloud,
            ],
            dim=-1,
        )
        sign, decided = _first_sign(rules, self.tol)
        floor = torch.finfo(pos.dtype).eps ** 0.5
        if floor < self.tol:  # float64: near-symmetric axes still get an equivariant sign
            weak_sign, weak = _first_sign(rules, floor)
            sign, decided = torch.where(decided, sign, weak_sign), decided | weak
        axes = axes * torch.where(decided, sign, 1.0).unsqueeze(-1)
        if d == 3:
            # exactly one undecided axis: choose its sign so that det R = +1
            one_left = (~decided).sum(-1) == 1
            det = torch.linalg.det(axes).sign()
            flip = torch.where(
                one_left.unsqueeze(-1) & ~decided & (det < 0).unsqueeze(-1), -1.0, 1.0
            )
            axes = axes * flip.to(axes.dtype).unsqueeze(-1)
        return Frames(axes)
