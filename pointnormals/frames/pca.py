"""PCA frames: eigenvectors of the centred neighbourhood covariance, with robust signs."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from .. import graph
from .base import FrameBuilder
from .frames import Frames


def _sum(values: Tensor, index: Tensor, n: int) -> Tensor:
    return scatter(values, index, dim=0, dim_size=n, reduce="sum")


def _others(d: int, device: torch.device) -> Tensor:
    """``(1, d, d - 1)``: for each axis ``a`` the other axes, by decreasing eigenvalue."""
    idx = [[b for b in range(d) if b != a] for a in range(d)]
    return torch.tensor(idx, dtype=torch.long, device=device).view(1, d, d - 1)


class PCAFrames(FrameBuilder):
    r"""Frames from principal axes of each point's neighbourhood.

    For the neighbourhood :math:`\mathcal{N}(i)` (kNN incl. ``i``, or a radius ball) with
    mean :math:`\bar p_i`, the rows of :math:`R_i` are the eigenvectors of

    .. math::
        C_i = \frac{1}{|\mathcal{N}(i)|}\sum_{j\in\mathcal{N}(i)} (p_j-\bar p_i)(p_j-\bar p_i)^\top

    by *decreasing* eigenvalue, so the last row is the PCA normal. Each axis :math:`e`
    gets its sign from, in order, the first rule that is decisive (above ``tol``):

    1. the third moment (skewness) :math:`\sum_j (e\cdot(p_j-\bar p_i))^3`;
    2. the offset of the centre :math:`e\cdot(\bar p_i - p_i)`;
    3. if exactly one axis is still undecided: the right-hand rule
       :math:`\det R_i = +1` (rotation- but not reflection-equivariant);
    4. otherwise the eigen-solver's sign (deterministic, not equivariant).

    Both moment rules flip with :math:`e` and commute with :math:`Q \in O(3)`, so
    decided axes are exactly equivariant and each axis follows reflections on its own.

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
        _, vecs = torch.linalg.eigh(cov + 1e-12 * torch.eye(d, dtype=pos.dtype, device=pos.device))
        axes = vecs.flip(-1).transpose(-1, -2)  # (N, d, d): rows by decreasing eigenvalue

        proj = (axes[dst] @ off.unsqueeze(-1)).squeeze(-1)  # (E, d)
        # third moments m_ab = <z_a z_b^2>: odd in axis a, even in axis b (m_aa: skewness)
        m3 = _sum(proj.unsqueeze(-1) * proj.pow(2).unsqueeze(-2), dst, n) / count[..., None]
        m1 = (axes @ (mean - pos).unsqueeze(-1)).squeeze(-1)  # (N, d)
        sigma = scale2.clamp_min(torch.finfo(pos.dtype).tiny).sqrt()[:, None, None]  # (N, 1, 1)
        rules = torch.cat(  # (N, d, 2 + d - 1): per axis, the sign rules in order
            [
                torch.diagonal(m3, dim1=-2, dim2=-1).unsqueeze(-1) / sigma.pow(3),
                m1.unsqueeze(-1) / sigma,
                m3.gather(-1, _others(d, pos.device).expand(n, -1, -1)) / sigma.pow(3),
            ],
            dim=-1,
        )
        decisive = rules.abs() > self.tol
        first = decisive & (decisive.cumsum(-1) == 1)  # one-hot: the first decisive rule
        decided = decisive.any(-1)  # (N, d)
        sign = torch.where(decided, (first * rules.sign()).sum(-1), 1.0)
        axes = axes * sign.unsqueeze(-1)
        if d == 3:
            # exactly one undecided axis: choose its sign so that det R = +1
            one_left = (~decided).sum(-1) == 1
            det = torch.linalg.det(axes).sign()
            flip = torch.where(
                one_left.unsqueeze(-1) & ~decided & (det < 0).unsqueeze(-1), -1.0, 1.0
            )
            axes = axes * flip.to(axes.dtype).unsqueeze(-1)
        return Frames(axes)
