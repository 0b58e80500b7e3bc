"""Robust, batched Gram–Schmidt: frames from two vectors and an orientation anchor."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _fallback_axis(e1: Tensor) -> Tensor:
    """The global coordinate axis least aligned with ``e1`` (deterministic)."""
    idx = e1.abs().argmin(dim=-1)
    return torch.nn.functional.one_hot(idx, e1.size(-1)).to(e1.dtype)


def _reject(v: Tensor, e: Tensor) -> Tensor:
    """Component of ``v`` orthogonal to the unit vector ``e`` (two passes: "twice is
    enough" keeps float32 results orthogonal when ``v`` is nearly parallel to ``e``)."""
    v = v - (v * e).sum(-1, keepdim=True) * e
    return v - (v * e).sum(-1, keepdim=True) * e


def _normalize(v: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    norm = v.norm(dim=-1, keepdim=True)
    ok = norm > eps
    return v / norm.clamp_min(eps), ok


def gram_schmidt_frames(
    v1: Tensor, v2: Tensor, anchor: Tensor, eps: float = 1e-6, fallbacks: Sequence[Tensor] = ()
) -> Tensor:
    r"""Orthonormal frames (rows) from two direction vectors and an anchor, in 3-D.

    .. math::
        e_1 = \frac{v_1}{\lVert v_1\rVert},\quad
        e_2 = \frac{v_2 - (v_2\cdot e_1) e_1}{\lVert\cdot\rVert},\quad
        e_3 = s\, e_1\times e_2,\quad s = \operatorname{sign}\big((e_1\times e_2)\cdot a\big)

    For equivariant inputs (:math:`v_k \to Q v_k`, :math:`a \to Q a`) the result is
    :math:`R \to R Q^\top` for every :math:`Q \in O(3)`: the cross product picks up
    :math:`\det Q` and so does :math:`s`, hence :math:`\det R = s` follows reflections.

    Degenerate inputs (documented fallback, deterministic, never NaN):
        * :math:`\lVert v_1\rVert \le \epsilon`: :math:`e_1` from ``anchor``; if that
          vanishes too, the global x-axis (not equivariant).
        * :math:`v_2 \parallel e_1`: :math:`e_2` from ``anchor``, then from the global
          axis least aligned with :math:`e_1` (not equivariant).
        * :math:`|(e_1\times e_2)\cdot a| \le \epsilon \lVert a\rVert`: the sign comes
          from the first of ``fallbacks`` (more equivariant vectors, e.g. from a wider
          neighbourhood) that is not in the plane of :math:`e_1, e_2` either; if none
          is: :math:`s = +1` (rotation-, but not reflection-equivariant).

    Shapes:
        v1, v2, anchor, each of fallbacks: ``(N, 3)`` → frames ``(N, 3, 3)``.
    """
    e1, ok1 = _normalize(v1, eps)
    a1, ok_a = _normalize(anchor, eps)
    x_axis = torch.zeros_like(v1)
    x_axis[:, 0] = 1.0
    e1 = torch.where(ok1, e1, torch.where(ok_a, a1, x_axis))

    u2, ok2 = _normalize(_reject(v2, e1), eps)
    ua, ok_a2 = _normalize(_reject(anchor, e1), eps)
    u_fb, _ = _normalize(_reject(_fallback_axis(e1), e1), eps)
    e2 = torch.where(ok2, u2, torch.where(ok_a2, ua, u_fb))

    c = torch.linalg.cross(e1, e2)
    # |c·a| below eps·|a| counts as zero: e.g. a planar neighbourhood, where rounding
    # noise would otherwise pick the orientation at random
    dot, tol = (c * anchor).sum(-1, keepdim=True), eps * anchor.norm(dim=-1, keepdim=True)
    for other in fallbacks:  # a coplanar anchor: ask the next vector
        dot2, tol2 = (c * other).sum(-1, keepdim=True), eps * other.norm(dim=-1, keepdim=True)
        undecided = dot.abs() <= tol
        dot, tol = torch.where(undecided, dot2, dot), torch.where(undecided, tol2, tol)
    s = torch.where(dot < -tol, -1.0, 1.0).to(c.dtype)
    return torch.stack([e1, e2, s * c], dim=-2)
