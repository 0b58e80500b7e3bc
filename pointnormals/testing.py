"""Equivariance testing shared by every layer and model test (e3nn style).

Argument and output *types* say how a value transforms under ``g = (Q, t, P)`` with
``Q`` in O(d) (reflections included), a translation ``t`` and a node permutation ``P``:

==================  =====================================================  =========
type                transformation                                         permuted
==================  =====================================================  =========
``"pos"``           :math:`x \\to Qx + t`                                  yes
``Reps`` object     :math:`f \\to \\rho(Q) f` (global-frame features)       yes
``"normal"``        :math:`n \\to Qn`, compared as oriented angle (deg)    yes
``"axis"``          :math:`n \\to Qn`, compared up to sign (deg)           yes
``"frames"``        :math:`R \\to R Q^\\top` (a :class:`Frames` or tensor)  yes
``"scalar"``        unchanged (per-node invariant)                         yes
``"batch"``         unchanged (cloud index, permuted within clouds)        yes
``"edge_index"``    node indices renamed by the permutation                no
``None``            unchanged, not per node                                no
==================  =====================================================  =========
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import geometry
from .frames.frames import Frames
from .reps import Reps

__all__ = ["TOLERANCES", "Trial", "angle_deg", "assert_equivariant", "equivariance_errors"]

#: Default tolerances: relative error for features, degrees for normals/axes.
TOLERANCES = {
    torch.float64: {"feature": 1e-9, "angle": 1e-6},
    torch.float32: {"feature": 1e-4, "angle": 1e-2},
}
_PER_NODE = {"pos", "normal", "axis", "frames", "scalar", "batch"}


@dataclass
class Trial:
    """One random group element and the error it produced."""

    dtype: torch.dtype
    det: float
    error: float
    unit: str  # "rel" for features, "deg" for normals

    def __str__(self) -> str:
        name = str(self.dtype).replace("torch.", "")
        return f"{name:8s} det={self.det:+.0f} error={self.error:.3e} {self.unit}"


def _is_node_type(kind: Any) -> bool:
    return isinstance(kind, Reps) or kind in _PER_NODE


def _apply(value: Any, kind: Any, Q: Tensor, t: Tensor, perm: Tensor | None, inv: Tensor | None):
    """Transform one argument by ``g``."""
    if kind == "edge_index":
        return value if inv is None else inv[value]
    if isinstance(value, Frames):
        return Frames(_apply(value.matrices, kind, Q, t, perm, inv))
    if not isinstance(value, Tensor) or kind is None:
        return value
    if perm is not None and _is_node_type(kind):
        value = value[perm]
    if kind == "pos":
        return value @ Q.T + t
    if kind in ("normal", "axis", "frames"):  # v -> Q v (rows of frames: R -> R Q^T)
        return value @ Q.T
    if isinstance(kind, Reps):
        return kind.transform(value, Q.expand(value.size(0), -1, -1))
    return value


def _error(
    out_g: Any, out: Any, kind: Any, Q: Tensor, inv: Tensor | None, share: float = 0.0
) -> tuple[float, str]:
    """Discrepancy between f(g x) and g f(x): the largest over the nodes, or with
    ``share`` > 0 the ``1 - share`` quantile of the per-node discrepancies."""
    if isinstance(out, Frames):
        out, out_g = out.matrices, out_g.matrices
    if inv is not None and _is_node_type(kind):
        out_g = out_g[inv]  # back to the original node order
    if kind in ("normal", "axis"):
        return _worst(angle_deg(out_g, out @ Q.T, oriented=kind == "normal"), share), "deg"
    expected = out if kind in (None, "scalar", "batch") else None
    if kind == "pos":
        raise ValueError("use a Reps('1x1n') type for vector outputs; 'pos' is for inputs")
    if kind == "frames":
        expected = out @ Q.T
    if isinstance(kind, Reps):
        expected = kind.transform(out, Q.expand(out.size(0), -1, -1))
    scale = expected.abs().max().clamp_min(1.0)
    diff = (out_g - expected).abs() / scale
    if kind is None or diff.dim() == 0:  # not per node
        return diff.max().item(), "rel"
    return _worst(diff.reshape(diff.size(0), -1).amax(dim=1), share), "rel"


def _worst(errors: Tensor, share: float) -> float:
    """The largest of the per-node ``errors``, or their ``1 - share`` quantile."""
    if share <= 0.0:
        return errors.max().item()
    return torch.quantile(errors.double(), 1.0 - share).item()


def angle_deg(a: Tensor, b: Tensor, oriented: bool = True) -> Tensor:
    """Angle between vectors (or lines, ``oriented=False``) in degrees, ``(N,)``, in
    float64 whatever the inputs' precision (:func:`pointnormals.geometry.angle_deg`)."""
    return geometry.angle_deg(a.double(), b.double(), oriented)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Frames):
        return value.to(dtype)
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def _permutation(n: int, batch: Tensor | None, gen: torch.Generator) -> Tensor:
    """A random permutation that keeps a (sorted) batch vector sorted."""
    keys = torch.rand(n, generator=gen, dtype=torch.float64)
    if batch is not None:
        keys = keys + batch.cpu().to(torch.float64) * 2.0
    return torch.argsort(keys)


def equivariance_errors(
    func: Callable[..., Any],
    args: Sequence[Any],
    in_types: Sequence[Any],
    out_types: Any | Sequence[Any],
    *,
    trials: int = 4,
    dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32),
    translate: float = 1.0,
    permute: bool = True,
    reflections: bool = True,
    seed: int = 0,
    share: dict[torch.dtype, float] | None = None,
) -> list[Trial]:
    """Errors of ``func`` under random ``g = (Q, t, P)``; see the module docstring.

    Odd trials use a reflection (``det Q = -1``) when ``reflections`` is set. An
    ``nn.Module`` ``func`` is deep-copied and cast to each dtype; a plain callable must
    be dtype-agnostic. Gradients are not needed and are disabled. ``share``: per dtype,
    the share of nodes whose error may exceed the trial's (discrete decisions on
    near-ties that rounding breaks, which ones depending on the CPU's vector
    instructions): the trial's error is then the ``1 - share`` quantile over the nodes.
    """
    multi = isinstance(out_types, list | tuple)
    out_types = list(out_types) if multi else [out_types]
    gen = torch.Generator().manual_seed(seed)
    results: list[Trial] = []
    batch = next((a for a, k in zip(args, in_types, strict=True) if k == "batch"), None)
    n_nodes = next(
        (len(a) for a, k in zip(args, in_types, strict=True) if _is_node_type(k) and k != "batch"),
        None,
    )
    for dtype in dtypes:
        f = copy.deepcopy(func).to(dtype) if isinstance(func, nn.Module) else func
        xs = [_cast(a, dtype) for a in args]
        ref = next((a for a in xs if isinstance(a, Tensor) and a.is_floating_point()), None)
        device = ref.device if ref is not None else torch.device("cpu")
        d = _spatial_dim(xs, in_types)
        with torch.no_grad():
            outs = f(*xs)
            outs = list(outs) if multi else [outs]
            for trial in range(trials):
                Q = geometry.random_orthogonal(1, d, generator=gen, dtype=dtype)[0]
                Q = Q.to(device)
                want_det = -1.0 if (reflections and trial % 2 == 1) else 1.0
                if torch.linalg.det(Q).item() * want_det < 0:
                    Q = Q.clone()
                    Q[0] = -Q[0]
                t = translate * torch.randn(Q.size(0), generator=gen, dtype=dtype).to(device)
                perm = inv = None
                if permute and n_nodes is not None:
                    perm = _permutation(n_nodes, batch, gen).to(device)
                    inv = torch.empty_like(perm)
                    inv[perm] = torch.arange(n_nodes, device=device)
                xs_g = [_apply(a, k, Q, t, perm, inv) for a, k in zip(xs, in_types, strict=True)]
                outs_g = f(*xs_g)
                outs_g = list(outs_g) if multi else [outs_g]
                allowed = (share or {}).get(dtype, 0.0)
                errs = [
                    _error(og, o, k, Q, inv, allowed)
                    for og, o, k in zip(outs_g, outs, out_types, strict=True)
                ]
                err, unit = max(errs, key=lambda e: e[0])
                results.append(Trial(dtype, want_det, err, unit))
    return results


def _spatial_dim(args: Sequence[Any], in_types: Sequence[Any]) -> int:
    for a, k in zip(args, in_types, strict=True):
        if k in ("pos", "normal", "axis") and isinstance(a, Tensor):
            return a.size(-1)
        if k == "frames":
            return (a.matrices if isinstance(a, Frames) else a).size(-1)
        if isinstance(k, Reps):
            return getattr(k, "d", 3)
    return 3


def assert_equivariant(
    func: Callable[..., Any],
    args: Sequence[Any],
    in_types: Sequence[Any],
    out_types: Any | Sequence[Any],
    *,
    tolerances: dict[torch.dtype, dict[str, float]] | None = None,
    **kwargs: Any,
) -> float:
    """Assert equivariance of ``func`` (see :func:`equivariance_errors`); return the max error.

    Raises:
        AssertionError: listing every trial when one exceeds its dtype's tolerance.
    """
    tolerances = tolerances or TOLERANCES
    trials = equivariance_errors(func, args, in_types, out_types, **kwargs)
    failed = [
        tr
        for tr in trials
        if not tr.error <= tolerances[tr.dtype]["angle" if tr.unit == "deg" else "feature"]
    ]
    if failed:
        lines = "\n  ".join(str(tr) for tr in trials)
        raise AssertionError(f"not equivariant ({len(failed)}/{len(trials)} trials):\n  {lines}")
    return max(tr.error for tr in trials)
