r"""Normals of clouds of any size with a trained model: overlapping local patches.

A scan of millions of points does not fit the model's training regime (clouds of about
a thousand points) nor its memory, so :func:`predict_normals` covers the cloud with
overlapping patches and runs the model on batches of them:

1. **Centres** :math:`c_1, \dots, c_C`: farthest point sampling, with
   :math:`C = \lceil \text{overlap} \cdot N / P \rceil` (``P`` = ``patch_points``).
2. **Patches**: the :math:`P` points nearest to every centre.
3. **Owner**: every point takes the prediction of the patch, among those that contain
   it, whose centre is nearest (the point is deepest inside it, far from the patch's
   border). Points in no patch yet become extra centres (farthest point sampling among
   them) until every point is covered.
4. Every patch is normalised by the model (centred, scaled to the unit ball), so the
   result does not depend on the scan's units.

Each step commutes with rotations, reflections, translations, uniform scaling and
permutations of the input (farthest point sampling starts at an invariant point,
neighbourhoods are distances), so the predicted normals transform exactly like the
scan, up to exact distance ties. Coordinates are centred in float64 before any float32
arithmetic, so scans in far-away global coordinates keep their precision. On a GPU the
patch neighbourhoods (``k`` in the thousands) come from
:func:`~pointnormals.graph.knn_dense`.

>>> import torch
>>> from pointnormals.nn import TFPointNet
>>> model = TFPointNet([dict(reps="4x0n+2x1n", ratio=1.0, k=8)]).eval()
>>> normals = predict_normals(model, torch.randn(3000, 3), patch_points=512)
>>> normals.shape
torch.Size([3000, 3])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from pointnormals import graph

__all__ = [
    "DEFAULT_CHECKPOINT",
    "MIN_POINTS",
    "Patches",
    "load_pretrained",
    "orient_outward",
    "plan_patches",
    "predict_normals",
    "resolve_device",
    "validate_points",
]

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tf_pointnet.ckpt"
"""The checkpoint shipped with the package (recipe: ``experiment=pretrained_cpu``)."""

MIN_POINTS = 8
"""Smallest cloud a normal can be estimated for (a neighbourhood needs a few points)."""


@dataclass(frozen=True)
class Patches:
    """A cover of a cloud by overlapping patches.

    Attributes:
        centres: ``(C,)`` index of every patch's centre point.
        members: ``(C, P)`` indices of the points of every patch.
        owner: ``(N,)`` flat index into ``members`` of the (patch, point) pair whose
            prediction every point takes; ``-1`` for the points of ``copies``.
        copies: ``(2, M)`` pairs ``(point, source)``: a point in no patch (only when more
            than ``P`` points coincide) takes the normal of its nearest covered point.
    """

    centres: Tensor
    members: Tensor
    owner: Tensor
    copies: Tensor

    @property
    def num_patches(self) -> int:
        return self.members.size(0)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU → ``ValueError``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return device


def load_pretrained(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The shipped model (or the checkpoint at ``path``), in eval mode on ``device``."""
    from pointnormals.training.checkpoint import load_model  # torch only, no Lightning

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        return load_model(path, map_location=device)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a pointnormals checkpoint ({first})") from None


def plan_patches(
    pos: Tensor, patch_points: int, overlap: float = 2.0, max_rounds: int = 8
) -> Patches:
    """Cover ``pos`` ``(N, 3)`` with patches of ``patch_points`` nearest points.

    See the module docstring for the construction; needs ``N > patch_points``. After
    ``max_rounds`` rounds of extra centres, points still in no patch (possible only when
    more than ``patch_points`` points share one position) copy a covered neighbour.
    """
    n = pos.size(0)
    if n <= patch_points:
        raise ValueError(f"plan_patches: {n} points fit in one patch of {patch_points}")
    centres = pos.new_empty(0, dtype=torch.long)
    members = pos.new_empty(0, patch_points, dtype=torch.long)
    best = torch.full((n,), math.inf, dtype=pos.dtype, device=pos.device)
    owner = torch.full((n,), -1, dtype=torch.long, device=pos.device)
    candidates = torch.arange(n, device=pos.device)
    for _ in range(max_rounds):
        if not candidates.numel():
            break
        ratio = min(
            1.0, math.ceil(overlap * candidates.numel() / patch_points) / candidates.numel()
        )
        new = candidates[graph.farthest_point_sample(pos[candidates], ratio)]
        new_pos = pos[new]
        src, dst = graph.knn(pos, new_pos, patch_points)  # dst: patch, src: point
        new_members = src.view(new.numel(), patch_points)
        dist = (pos[src] - new_pos[dst]).pow(2).sum(-1)
        flat = dst * patch_points + torch.arange(src.numel(), device=pos.device) % patch_points
        flat = flat + members.numel()
        # per point, the pair of smallest centre distance (exact ties: lowest pair index)
        nearest = torch.full_like(best, math.inf).scatter_reduce(0, src, dist, "amin")
        tie = dist == nearest[src]
        pick = torch.full_like(owner, flat.max() + 1).scatter_reduce(0, src[tie], flat[tie], "amin")
        better = nearest < best
        best = torch.where(better, nearest, best)
        owner = torch.where(better, pick, owner)
        centres = torch.cat([centres, new])
        members = torch.cat([members, new_members])
        candidates = (owner < 0).nonzero().squeeze(1)
    copies = torch.empty(2, 0, dtype=torch.long, device=pos.device)
    if candidates.numel():  # > P coincident points crowd some centres out of every patch
        covered = (owner >= 0).nonzero().squeeze(1)
        source, target = graph.knn(pos[covered], pos[candidates], 1)
        copies = torch.stack([candidates[target], covered[source]])
    return Patches(centres, members, owner, copies)


def validate_points(points: Tensor) -> None:
    """``ValueError`` naming the problem unless ``points`` is a finite ``(N, 3)`` cloud
    with at least :data:`MIN_POINTS` points (shared by every estimation method)."""
    if points.ndim != 2 or points.size(1) != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    n = points.size(0)
    if n < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} points, got {n}")
    if not torch.isfinite(points).all():
        bad = int((~torch.isfinite(points)).any(-1).sum())
        raise ValueError(f"{bad} of {n} points have non-finite (NaN/inf) coordinates")


@torch.inference_mode()
def predict_normals(
    model: nn.Module,
    points: Tensor,
    patch_points: int = 1024,
    batch_points: int | None = None,
    overlap: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Unit normals ``(N, 3)`` of ``points`` ``(N, 3)`` (any size, pose, scale, units).

    Args:
        model: a normal regressor ``model(pos, batch) -> (N, 3)``, e.g.
            :func:`load_pretrained`; it runs on its own device and dtype.
        points: the cloud, any floating dtype (float64 keeps far-away coordinates exact).
        patch_points: points per patch; clouds up to this size run as one patch.
        batch_points: points per model call (patches are batched up to this); default
            32768 on CPU, 262144 on CUDA.
        overlap: average number of patches per point.
        progress: called with ``(patches_done, patches_total)`` after every model call.

    Returns:
        Unoriented unit normals on the device of ``points``, in its dtype.
    """
    validate_points(points)
    n = points.size(0)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    pos64 = points.to(device, torch.float64)
    pos64 = pos64 - pos64.mean(0)  # exact centring before any rounding to float32
    # unit scale for the neighbour search (torch_cluster's CUDA kNN ignores squared
    # distances above 5e4); the model normalises every patch itself
    pos = (pos64 / pos64.norm(dim=-1).max().clamp_min(1e-300)).to(dtype)
    if n <= patch_points:
        normals = model(pos, torch.zeros(n, dtype=torch.long, device=device))
        if progress is not None:
            progress(1, 1)
        return normals.to(points.device, points.dtype)

    patches = plan_patches(pos, patch_points, overlap)
    is_owner = torch.zeros(patches.members.numel(), dtype=torch.bool, device=device)
    is_owner[patches.owner[patches.owner >= 0]] = True
    normals = torch.empty(n, 3, dtype=dtype, device=device)
    if batch_points is None:
        batch_points = 262_144 if device.type == "cuda" else 32_768
    per_call = max(1, batch_points // patch_points)
    total = patches.num_patches
    for start in range(0, total, per_call):
        stop = min(start + per_call, total)
        members = patches.members[start:stop]
        keep = is_owner[start * patch_points : stop * patch_points]
        if not keep.any():
            continue
        # patch coordinates relative to their centre, in float64 before the cast
        local = pos64[members] - pos64[patches.centres[start:stop]].unsqueeze(1)
        batch = torch.arange(stop - start, device=device).repeat_interleave(patch_points)
        pred = model(local.reshape(-1, 3).to(dtype), batch)
        normals[members.reshape(-1)[keep]] = pred[keep]
        if progress is not None:
            progress(stop, total)
    target, source = patches.copies
    normals[target] = normals[source]
    return normals.to(points.device, points.dtype)


def orient_outward(points: Tensor, normals: Tensor) -> Tensor:
    r"""Flip normals to point away from the centroid: :math:`n_i (p_i - \bar p) \ge 0`.

    Right for closed, roughly star-shaped objects (a scanned part, a statue); for scenes
    seen from a sensor, orient towards the sensor instead. Equivariant like the rest.
    """
    sign = ((points - points.mean(0)) * normals).sum(-1) < 0
    return torch.where(sign.unsqueeze(-1), -normals, normals)
