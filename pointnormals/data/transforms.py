r"""Point-cloud transforms with an explicit random generator.

Every transform is a callable ``(data, generator) -> data`` on a
:class:`torch_geometric.data.Data` with ``pos`` ``(N, 3)`` and unit ``normal``
``(N, 3)``. Randomness only comes from the ``torch.Generator`` argument, so a test
protocol is a fixed seed and training augmentation is the same code with a fresh seed.

Transforms never modify their input in place (use :func:`apply` or clone first).
Under a rotation or reflection :math:`Q \in O(3)` points and normals transform alike,
:math:`p \mapsto Q p`, :math:`n \mapsto Q n` (normals are not pseudo-vectors here:
a mirrored surface has the mirrored normal).
"""

from __future__ import annotations

import math

import torch
from torch import Generator, Tensor
from pointnormals.pyg import Data

from pointnormals.geometry import normalize_cloud, rotation_from_quaternion

__all__ = [
    "DENSITY_MODES",
    "PCPNET_NOISE",
    "ROTATION_MODES",
    "add_noise",
    "crop_patch",
    "denormalize",
    "normalize",
    "random_orthogonal",
    "rotate",
    "subsample",
    "vary_density",
]

ROTATION_MODES = ("none", "z", "so3", "o3")
DENSITY_MODES = ("none", "gradient", "stripes")
PCPNET_NOISE = {"noise_low": 0.00125, "noise_med": 0.0065, "noise_high": 0.012}
r"""PCPNet noise levels: :math:`\sigma` as a fraction of the bounding-box diagonal."""

_POINT_KEYS = ("pos", "normal")


def _select(data: Data, index: Tensor) -> Data:
    out = data.clone()
    for key in _POINT_KEYS:
        if key in data:
            out[key] = data[key][index]
    return out


def normalize(data: Data) -> Data:
    r"""Centre on the centroid and scale into the unit ball
    (:func:`~pointnormals.geometry.normalize_cloud`).

    :math:`p_i \mapsto (p_i - c) / s`; the centroid :math:`c` and the radius :math:`s`
    are stored as ``center`` ``(1, 3)`` and ``scale`` ``(1,)`` so that
    :func:`denormalize` can undo the map; normals are unchanged.
    """
    out = data.clone()
    out.pos, out.center, out.scale = normalize_cloud(data.pos)
    return out


def denormalize(pos: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`normalize`: ``pos * scale + center``.

    For one cloud pass its ``center`` ``(1, 3)`` and ``scale`` ``(1,)``; for a PyG batch
    pass ``center[batch]`` ``(N, 3)`` and ``scale[batch]`` ``(N,)``.
    """
    return pos * scale.reshape(-1, 1) + center.reshape(-1, 3)


def subsample(data: Data, num_points: int | None, generator: Generator) -> Data:
    """A uniformly random subset of ``num_points`` points (all of them if fewer)."""
    n = data.pos.size(0)
    if num_points is None or n <= num_points:
        return data.clone()
    return _select(data, torch.randperm(n, generator=generator)[:num_points])


def random_orthogonal(mode: str, generator: Generator, axis: int = 2) -> Tensor:
    r"""A random ``(3, 3)`` float64 orthogonal matrix.

    Args:
        mode: ``none`` (identity), ``z`` (uniform angle about ``axis``), ``so3`` (Haar
            on :math:`SO(3)`) or ``o3`` (Haar on :math:`O(3)`: a Haar rotation times the
            reflection :math:`\mathrm{diag}(-1, 1, 1)` with probability 1/2).
        generator: source of randomness.
        axis: the rotation axis of mode ``z`` (all loaders return z-up clouds).
    """
    if mode not in ROTATION_MODES:
        raise ValueError(f"unknown rotation mode {mode!r}, expected one of {ROTATION_MODES}")
    eye = torch.eye(3, dtype=torch.float64)
    if mode == "none":
        return eye
    if mode == "z":
        theta = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64)
        c, s = torch.cos(theta), torch.sin(theta)
        i, j = [a for a in range(3) if a != axis]
        rot = eye.clone()
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        return rot
    # a uniform unit quaternion: Haar on SO(3) without LAPACK (see rotation_from_quaternion)
    q = rotation_from_quaternion(torch.randn(4, generator=generator, dtype=torch.float64))
    reflect = torch.rand((), generator=generator) < 0.5
    if mode == "o3" and reflect:
        q = q * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # q @ diag(-1, 1, 1)
    return q


def rotate(data: Data, mode: str, generator: Generator, axis: int = 2) -> Data:
    r"""Apply a random :math:`Q` (see :func:`random_orthogonal`) to points and normals.

    :math:`p \mapsto Q p`, :math:`n \mapsto Q n`; :math:`Q` is stored as ``rotation``
    ``(1, 3, 3)`` (identity for ``none``), so ``pos @ rotation[0]`` recovers the input.
    """
    rot = random_orthogonal(mode, generator, axis)
    out = data.clone()
    rot_t = rot.to(data.pos.dtype)
    out.pos = data.pos @ rot_t.T
    if "normal" in data:
        out.normal = data.normal @ rot_t.T
    out.rotation = rot_t.unsqueeze(0)
    return out


def add_noise(data: Data, level: float, generator: Generator) -> Data:
    r"""Gaussian noise relative to the bounding-box diagonal (PCPNet protocol).

    .. math::
        p_i \mapsto p_i + \sigma \varepsilon_i, \quad \varepsilon_i \sim \mathcal N(0, I_3),
        \quad \sigma = \text{level} \cdot \lVert \max_i p_i - \min_i p_i \rVert.

    Normals stay those of the clean surface; ``noise_sigma`` ``(1,)`` records
    :math:`\sigma`. Apply before any rotation: the box diagonal is not rotation
    invariant.
    """
    out = data.clone()
    diagonal = (data.pos.max(0).values - data.pos.min(0).values).norm()
    sigma = float(level) * diagonal
    noise = torch.randn(data.pos.shape, generator=generator, dtype=data.pos.dtype)
    out.pos = data.pos + sigma * noise
    out.noise_sigma = sigma.reshape(1)
    return out


def vary_density(
    data: Data,
    mode: str,
    generator: Generator,
    min_keep: float = 0.1,
    num_stripes: int = 4,
    direction: Tensor | None = None,
) -> Data:
    r"""Drop points to create PCPNet-style density variation (kept points keep normals).

    With a uniform random direction :math:`d` and :math:`t_i \in [0, 1]` the position of
    :math:`p_i` along :math:`d` (0 at the lowest, 1 at the highest point), point
    :math:`i` is kept with probability

    * ``gradient``: :math:`1 - (1 - k_{\min})\, t_i` (linear fall-off along :math:`d`);
    * ``stripes``: :math:`k_{\min}` in the odd ones of :math:`2 m` equal bands
      across :math:`d` (:math:`m` = ``num_stripes``) and 1 in the even ones.

    Args:
        mode: ``none``, ``gradient`` or ``stripes``.
        min_keep: :math:`k_{\min}`, the keep probability at the sparsest place.
        num_stripes: number of sparse bands of ``stripes``.
        direction: :math:`d` (default: uniformly random).
    """
    if mode not in DENSITY_MODES:
        raise ValueError(f"unknown density mode {mode!r}, expected one of {DENSITY_MODES}")
    if mode == "none":
        return data.clone()
    if direction is None:
        direction = torch.randn(3, generator=generator, dtype=data.pos.dtype)
    direction = direction.to(data.pos.dtype)
    height = data.pos @ (direction / direction.norm())
    t = (height - height.min()) / (height.max() - height.min()).clamp_min(1e-12)
    if mode == "gradient":
        keep_prob = 1 - (1 - min_keep) * t
    else:
        band = torch.clamp((t * 2 * num_stripes).long(), max=2 * num_stripes - 1)
        keep_prob = torch.where(band % 2 == 1, min_keep, 1.0).to(t.dtype)
    keep = torch.rand(t.shape, generator=generator, dtype=t.dtype) < keep_prob
    if int(keep.sum()) < 16:  # degenerate tiny clouds: leave them alone
        return data.clone()
    return _select(data, keep.nonzero().squeeze(1))


def crop_patch(data: Data, fraction: float, generator: Generator) -> Data:
    r"""A local surface patch: the :math:`\lceil f N \rceil` points nearest a random point.

    With :math:`c` a uniformly drawn point of the cloud and :math:`f` = ``fraction``,
    keep the :math:`\lceil f N \rceil` points closest to :math:`c`. This is what the
    inference application feeds the model on large scans (one patch of nearby points
    per centre), so training on patches teaches the model partial surfaces at every
    scale; distances commute with rotations, so the crop does too. ``fraction >= 1``
    returns the whole cloud and draws nothing.
    """
    n = data.pos.size(0)
    if fraction >= 1:
        return data.clone()
    if fraction <= 0:
        raise ValueError(f"patch fraction must be > 0, got {fraction}")
    keep = max(1, min(n, math.ceil(fraction * n)))
    center = data.pos[int(torch.randint(n, (), generator=generator))]
    dist = (data.pos - center).square().sum(-1)
    return _select(data, dist.topk(keep, largest=False).indices.sort().values)
