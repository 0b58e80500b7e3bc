r"""Small geometric helpers shared by the data, the model side, the CLI and the tests.

* random orthogonal matrices: :func:`haar_orthogonal` (QR of a Gaussian matrix, NumPy
  or torch), :func:`random_orthogonal` (the torch sampler built on it) and
  :func:`rotation_from_quaternion` (the LAPACK-free :math:`SO(3)` map of the augmentation);
* :func:`normalize_cloud`: centre a cloud on its centroid and scale it into the unit ball;
* :func:`angle_deg`: the angle between normals, as vectors or as lines (unoriented);
* :func:`symmetric_eigh`: ``torch.linalg.eigh`` of a large stack of small symmetric
  matrices, in batches that CUDA's solver accepts;
* :func:`distinct_points`: which points of a cloud share their coordinates.

Pure torch and NumPy: no torch_geometric, Lightning or Open3D.

>>> a = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
>>> b = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
>>> angle_deg(a, b)
tensor([ 0.,  0., 90.])
>>> angle_deg(a, b, oriented=True)
tensor([  0., 180.,  90.])
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "angle_deg",
    "distinct_points",
    "haar_orthogonal",
    "normalize_cloud",
    "random_orthogonal",
    "rotation_from_quaternion",
    "symmetric_eigh",
]

Array = TypeVar("Array", Tensor, np.ndarray)


def haar_orthogonal(gaussian: Array) -> Array:
    r"""Haar-random orthogonal matrices from matrices of i.i.d. standard normals.

    QR of a Gaussian matrix with the signs of :math:`\operatorname{diag}(R)` moved into
    :math:`Q` (Mezzadri 2007) is Haar-distributed on :math:`O(d)`: half the samples have
    :math:`\det = -1`. NumPy input is factored by NumPy's LAPACK, torch input by torch's,
    so a caller's random stream and results stay those of its own library.

    Shapes:
        gaussian: ``(..., d, d)`` → ``(..., d, d)``, same type and dtype.
    """
    xp = np if isinstance(gaussian, np.ndarray) else torch
    q, r = xp.linalg.qr(gaussian)
    return q * xp.sign(r.diagonal(0, -2, -1))[..., None, :]


def random_orthogonal(
    n: int,
    d: int = 3,
    *,
    reflections: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``n`` Haar-random orthogonal matrices ``(n, d, d)`` (see :func:`haar_orthogonal`).

    Drawn in float64 on the CPU from ``generator``, then cast. With
    ``reflections=False`` the first row is flipped where needed to land in :math:`SO(d)`.
    """
    dtype = dtype or torch.get_default_dtype()
    q = haar_orthogonal(torch.randn(n, d, d, dtype=torch.float64, generator=generator))
    if not reflections:
        q[:, 0] *= torch.linalg.det(q).sign().unsqueeze(-1)
    return q.to(dtype=dtype, device=device)


def rotation_from_quaternion(wv: Tensor) -> Tensor:
    r"""The rotation ``(3, 3)`` of a non-zero quaternion :math:`(w, v)` (Euler–Rodrigues).

    .. math::
        R = \frac{(w^2 - v^\top v)\, I + 2 v v^\top + 2 w [v]_\times}{w^2 + v^\top v}

    For :math:`(w, v) \sim \mathcal N(0, I_4)` (a uniform unit quaternion) :math:`R` is
    Haar on :math:`SO(3)`, without a LAPACK call (a 3×3 QR costs milliseconds under
    thread contention, a data loader draws one per sample).

    Shapes:
        wv: ``(4,)`` → ``(3, 3)``, same dtype.
    """
    w, v = wv[0], wv[1:]
    cross = torch.zeros(3, 3, dtype=wv.dtype)
    cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
    cross = cross - cross.T  # [v]_x
    eye = torch.eye(3, dtype=wv.dtype)
    return ((w * w - v @ v) * eye + 2 * torch.outer(v, v) + 2 * w * cross) / wv.pow(2).sum()


def normalize_cloud(pos: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor, Tensor]:
    r"""Centre one cloud on its centroid and scale it into the unit ball.

    .. math::
        c = \frac1N \sum_i p_i, \qquad s = \max_i \lVert p_i - c \rVert, \qquad
        p_i \mapsto (p_i - c) / s.

    Both :math:`c` and :math:`s` commute with rotations and reflections, unlike a
    bounding-box centre; :math:`s` is clamped to ``eps``.

    Returns:
        ``(pos - c) / s`` ``(N, 3)``, the centre ``c`` ``(1, 3)`` and the scale ``s``
        ``(1,)``: ``unit * s + c`` gives ``pos`` back.
    """
    center = pos.mean(0, keepdim=True)
    scale = (pos - center).norm(dim=-1).max().clamp_min(eps).reshape(1)
    return (pos - center) / scale, center, scale


EIGH_CUDA_BATCH = 2**14
"""Matrices per ``torch.linalg.eigh`` call on CUDA (see :func:`symmetric_eigh`)."""


def symmetric_eigh(matrices: Tensor, batch: int | None = None) -> tuple[Tensor, Tensor]:
    r"""Eigenvalues (ascending) and eigenvectors of a stack of symmetric matrices.

    The same as ``torch.linalg.eigh(matrices)``, except that the stack goes to the
    solver ``batch`` matrices at a time: by default :data:`EIGH_CUDA_BATCH` on CUDA,
    and all at once on the CPU (LAPACK solves one matrix after another anyway).

    Why: cuSOLVER's batched solver (``cusolverDnXsyevBatched``, which PyTorch calls
    for small matrices) fails with ``CUSOLVER_STATUS_INVALID_VALUE`` above roughly 32k
    matrices per call, an undocumented limit; ``predict.py --device cuda`` met it on
    a 200k-point scan (the plane fit's CUDA chunks hold up to 2^22 / k points). Each
    matrix is decomposed on its own, so the split changes nothing but the number of
    calls.

    Shapes:
        matrices: ``(B, d, d)`` → eigenvalues ``(B, d)``, eigenvectors ``(B, d, d)``
        (columns, as ``torch.linalg.eigh``).
    """
    if batch is None:
        batch = EIGH_CUDA_BATCH if matrices.device.type == "cuda" else len(matrices)
    if len(matrices) <= batch:
        return torch.linalg.eigh(matrices)
    parts = [torch.linalg.eigh(part) for part in matrices.split(batch)]
    return torch.cat([v for v, _ in parts]), torch.cat([w for _, w in parts])


def distinct_points(points: Tensor) -> tuple[Tensor, Tensor] | None:
    r"""The distinct points of a cloud and where each point went, or ``None`` when no two
    points coincide (exactly equal coordinates; ``-0.0 == 0.0``).

    Returns ``(first, inverse)``: ``first`` ``(M,)`` holds the index of the first point of
    every group of coincident points, ascending (the input's order); ``inverse``
    ``(N,)`` the group of every point, so ``points[first][inverse]`` equals ``points``.

    Why: merged scans, overlapping tiles and coordinates quantised on writing (LAS
    stores integers) repeat points, and a neighbourhood of ``k`` nearest points that
    holds ``k`` copies of a few points spans no surface. Coincidence is invariant
    under every isometry and uniform scaling: equal coordinates stay equal through
    the same floating-point rotation.

    Cost: one hash per point and a sort of the hashes (0.02 s per 100k points, 0.18 s
    per million on 2 cores); the exact grouping runs only when two hashes collide.

    Shapes:
        points: ``(N, 3)`` → first ``(M,)``, inverse ``(N,)``, on the device of
        ``points``.
    """
    # float64 holds every float32 exactly; + 0.0 turns -0.0 into 0.0 (equal, other bits)
    coords = np.ascontiguousarray(points.detach().cpu().to(torch.float64).numpy() + 0.0)
    bits = coords.view(np.uint64)  # (N, 3): equal coordinates <=> equal bits
    hashes = np.bitwise_xor.reduce(bits * _HASH_MIX, axis=1)  # (N,); wraps around
    order = np.argsort(hashes, kind="stable")  # a group's first point comes first
    same = hashes[order[1:]] == hashes[order[:-1]]  # (N - 1,) each sorted point as its previous
    if not same.any():
        return None
    if (bits[order[1:]][same] != bits[order[:-1]][same]).any():  # different points collide
        order = np.lexsort(bits.T[::-1])  # stable too: sorted by the coordinates themselves
        same = (bits[order[1:]] == bits[order[:-1]]).all(axis=1)
        if not same.any():
            return None
    starts = np.concatenate([[True], ~same])  # (N,) in sorted order
    group = np.cumsum(starts) - 1
    first = order[starts]  # (M,) ascending within a group, not across groups
    by_input = np.argsort(first)
    rank = np.empty_like(by_input)
    rank[by_input] = np.arange(len(by_input))
    inverse = np.empty(len(coords), dtype=np.int64)
    inverse[order] = rank[group]
    device = points.device
    return torch.from_numpy(first[by_input]).to(device), torch.from_numpy(inverse).to(device)


_HASH_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], np.uint64)
"""Odd 64-bit multipliers mixing a point's three coordinate bit patterns into one hash."""


def angle_deg(a: Array, b: Array, oriented: bool = False) -> Array:
    r"""Angle in degrees between vectors (``oriented``) or the lines they span.

    .. math::
        \theta = \operatorname{atan2}\big(\lVert a \times b \rVert,\ a \cdot b\big),

    with :math:`|a \cdot b|` for lines (:math:`a` and :math:`-a` score the same, so
    :math:`\theta \in [0°, 90°]`). ``atan2`` keeps full precision near 0° where
    ``arccos`` of a cosine does not. Any non-zero lengths; computed in the inputs'
    precision (NumPy arrays, promoted to a common dtype, come back as NumPy).

    Shapes:
        a, b: ``(..., 3)`` → ``(...)``.
    """
    if isinstance(a, np.ndarray):
        dtype = np.result_type(a, b)
        a_t, b_t = (torch.from_numpy(np.ascontiguousarray(x, dtype)) for x in (a, b))
        return angle_deg(a_t, b_t, oriented).numpy()
    dot = (a * b).sum(-1)
    if not oriented:
        dot = dot.abs()
    return torch.rad2deg(torch.atan2(torch.linalg.cross(a, b, dim=-1).norm(dim=-1), dot))
