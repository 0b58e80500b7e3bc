r"""Normals of clouds of any size with a trained model: overlapping local patches.

A scan of millions of points does not fit the model's training regime (patches of about
a thousand points) nor its memory, so :func:`predict_normals` covers the cloud with
overlapping patches (:mod:`pointnormals.patching`, the same cut as training) and runs
the model on batches of them:

1. **Scale**: with noise, a patch must see more surface. The *context scale*
   :math:`s \in \{1, 2, 4, 8\}` comes from an invariant noise estimate (how many
   points a neighbourhood needs to look like a surface, :func:`choose_scale`) unless
   given: a patch spans the :math:`K = sP` nearest points
   of its centre and the model sees :math:`P` of them at fixed distance ranks. Thin
   parts and close sheets can read as noise to that estimate; where the heights across
   local PCA planes do not look like noise
   (:func:`~pointnormals.refine.roughness_is_noise`, decided before the network runs),
   the cloud gets the context of a clean surface (scale 1). Scan lines (dense along
   lines, sparse across) get at least the scale ``k / 4`` (:data:`SCAN_LINE_SCALE`)
   where ``k`` nearest points first span two directions
   (:func:`~pointnormals.anisotropy.spread_points`), and there the model sees a
   farthest point sampling of every patch (:func:`~pointnormals.patching.even_samples`)
   instead of fixed ranks: an evenly sampled piece of surface, not lines.
2. **Centres** :math:`c_1, \dots, c_C`: farthest point sampling,
   :math:`C = \lceil \text{overlap} \cdot N / K \rceil`, plus extra centres until
   every point is in a patch. Isolated points (stray returns,
   :func:`~pointnormals.outliers.isolated_points`) are kept out of the first centres
   and out of the noise estimate's samples: farthest point sampling would pick them
   first.
3. **Predictions**: every patch is normalised by the model (centred, unit ball: no
   dependence on units); the points of the context it did not see take the prediction of
   their nearest seen point.
4. **Blending**: every point's normal is the sign-aligned, depth-weighted mean of the
   predictions of all patches that contain it (:func:`~pointnormals.patching.blend`).
5. **Refinement**: a robust plane fit of every point's nearest points, weighted by their
   height over the blended normal's tangent plane (:mod:`pointnormals.refine`): the model
   says which plane, the scan's points say where exactly; where the roughness is noise
   its size follows the noise (256 where lightly noisy fits stay plane-like that far,
   :func:`~pointnormals.refine.panel_neighbours`) and a second pass fits again over the
   points moved onto their planes, elsewhere it takes
   :data:`~pointnormals.refine.CLEAN_NEIGHBOURS` points
   (:func:`~pointnormals.refine.fit_settings`), and on scan lines at least
   twice the ``k`` at which neighbourhoods span two directions, in one pass, keeping
   the model's normal where the neighbours still lie along lines
   (:data:`~pointnormals.refine.LINE_SPAN`).

Each step commutes with rotations, reflections, translations, uniform scaling and
permutations of the input (farthest point sampling starts at an invariant point,
neighbourhoods are distance ranks), so the predicted normals transform exactly like the
scan. To keep that true in floating point, the geometry (centring, neighbourhoods,
sampling, frames) runs in float64 and only the model's MLPs in float32
(``precision="mixed"``, :mod:`pointnormals.nn.precision`); there, exactly equal
distances (quantised coordinates: a 1 mm grid) stay equal under rotation and go by an
invariant rule (:func:`~pointnormals.graph.tie_key`) instead of by rounding. Coordinates are
centred in float64 first, so scans in far-away global coordinates keep their precision.
The patch neighbourhoods and the plane fit's neighbours come from a KD-tree
(:class:`~pointnormals.graph.PatchSearch`), on a GPU too: built on the CPU, its indices
move to the device.

>>> import torch
>>> from pointnormals.nn import TFPointNet
>>> model = TFPointNet([dict(reps="4x0n+2x1n", ratio=1.0, k=8)]).eval()
>>> normals = predict_normals(model, torch.randn(3000, 3), patch_points=512)
>>> normals.shape
torch.Size([3000, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from pointnormals import graph
from pointnormals.anisotropy import spread_points
from pointnormals.geometry import normalize_cloud
from pointnormals.nn.precision import float32_mlps
from pointnormals.outliers import isolated_points
from pointnormals.parallel import thread_map, workers
from pointnormals.patching import (
    CLEAN_SURFACE,
    SCALES,
    Patches,
    blend,
    context_ranks,
    depth_weights,
    even_samples,
    flat_patch_normals,
    plan_patches,
    surface_points,
)
from pointnormals.refine import (
    FLAT_SPAN,
    LINE_SPAN,
    THICK,
    fit_settings,
    height_spread,
    panel_neighbours,
    refine_normals,
    roughness_is_noise,
)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "MIN_POINTS",
    "PRECISIONS",
    "SURFACE_FACTOR",
    "choose_scale",
    "load_pretrained",
    "orient_outward",
    "predict_normals",
    "resolve_device",
    "validate_points",
]

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tf_pointnet.ckpt"
"""The checkpoint shipped with the package (recipe: ``experiment=pretrained_cpu``, then
``pretrained_scans`` from it; the recipe is stored inside)."""

MIN_POINTS = 8
"""Smallest cloud a normal can be estimated for (a neighbourhood needs a few points)."""


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
    """The shipped model (or the checkpoint at ``path``), in eval mode on ``device``, its
    batch norms folded into the layers before them (for inference only,
    :func:`~pointnormals.nn.fold_norms.fold_batch_norms`)."""
    from pointnormals.nn.checkpoint import load_model  # torch only, no Lightning
    from pointnormals.nn.fold_norms import fold_batch_norms

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        model = load_model(path, map_location=device)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a pointnormals checkpoint ({first})") from None
    fold_batch_norms(model)  # the same function, one pass less per layer
    return model


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


SURFACE_FACTOR = 32.0
"""``scale=None``: the context spans at least this many times the points a neighbourhood
needs to look like a surface (:func:`~pointnormals.patching.surface_points`). Calibrated
for accuracy per second by ``scripts/calibrate_scale.py`` (30k and 150k points) on
training meshes (cow, teapot, beast, homer; noise 0-1.2 %), with the plane fit
(:mod:`pointnormals.refine`) after the network: the RMSE of the chosen scale is 1.0031x
that of the best scale per cloud (geometric mean; worst 1.018x) while the network sees
0.51x the points of scale 1; factor 16 gives 1.0024x at 0.58x, factor 64 1.0050x at
0.44x (worst 1.045x: a mildly noisy cloud at scale 2), a fixed scale 1 1.0020x. Under
noise the fit decides and the scale hardly matters; clean scans (16 points) keep
scale 1."""


SCAN_LINE_SCALE = 4
"""On scan lines the context scale is at least ``k / SCAN_LINE_SCALE`` where ``k``
nearest points first span two directions (:func:`~pointnormals.anisotropy.spread_points`,
16-128), with the patches sampled evenly (:func:`~pointnormals.patching.even_samples`):
up to scale 32, beyond the scales of training, but an evenly sampled patch looks like
any piece of surface to the model. Measured on 2 held-out synthetic shapes and the 3
held-out meshes cut into 20, 40 and 100 lines (100k points, 0.05 % noise; RMSE after the
plane fit, geometric mean ÷ oracle PCA): ranks at ``k / 16`` (at most 8) 1.437, even
samples at ``k / 8`` 1.216 (better on 14 of 15 clouds), at ``k / 4`` 1.160 (better on 14;
against ``k / 8`` up to 26 % better, at most 4 % worse)."""


def choose_scale(surface: float, patch_points: int, factor: float = SURFACE_FACTOR) -> int:
    """The smallest context scale ``s`` of :data:`~pointnormals.patching.SCALES` with
    ``s * patch_points >= factor * surface`` (the largest when none is)."""
    for scale in SCALES:
        if scale * patch_points >= factor * surface:
            return scale
    return SCALES[-1]


@torch.inference_mode()
def predict_normals(
    model: nn.Module,
    points: Tensor,
    patch_points: int = 1024,
    scale: int | None = None,
    overlap: float = 1.5,
    batch_points: int | None = None,
    precision: str = "mixed",
    refine: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    fit_neighbours: int | None = None,
) -> Tensor:
    """Unit normals ``(N, 3)`` of ``points`` ``(N, 3)`` (any size, pose, scale, units).

    Args:
        model: a normal regressor ``model(pos, batch) -> (N, 3)``, e.g.
            :func:`load_pretrained`; it runs on its own device.
        points: the cloud, any floating dtype (float64 keeps far-away coordinates exact).
        patch_points: ``P``, points the model sees per patch.
        scale: context scale ``s``: a patch spans the ``sP`` nearest points (see
            :mod:`pointnormals.patching`); ``None`` chooses it from the cloud's noise
            (:func:`choose_scale`).
        overlap: average number of patches per point; every point's normal blends the
            predictions of all patches that contain it.
        batch_points: points per model call (patches are batched up to this); default
            8192 on CPU (the layers' edge tensors stay near the cache: 1.35x faster than
            32768 on 2 cores), 262144 on CUDA.
        precision: ``mixed`` (default: geometry in float64, the model's MLPs in its own
            dtype: exactly equivariant), ``float64`` (the same; pass a float64 model to
            run everything in float64) or ``float32`` (all float32: fastest, not exact).
        refine: follow the model with a robust plane fit that it guides
            (:func:`~pointnormals.refine.refine_normals`, its size from the noise).
        progress: called as ``progress(stage, done, total)``: ``("predicting", patches
            done, patches)`` after every model call, ``("fitting planes", points done,
            points)`` after every chunk of the plane fit.
        fit_neighbours: ``k`` of the plane fit as given (its width and passes still
            follow the noise), e.g. more for large smooth panels; ``None``: from the
            noise (step 5 of the module docstring).

    Returns:
        Unoriented unit normals on the device of ``points``, in its dtype.
    """
    validate_points(points)
    report = progress or _quiet
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if fit_neighbours is not None and fit_neighbours < 1:
        raise ValueError(f"fit_neighbours must be at least 1, got {fit_neighbours}")
    n = points.size(0)
    device = next(model.parameters()).device
    dtype = torch.float32 if precision == "float32" else torch.float64
    # centred and scaled to the unit ball in float64 before any rounding (far-away
    # coordinates keep their precision); the model normalises every patch itself
    pos = normalize_cloud(points.to(device, torch.float64), eps=1e-300)[0].to(dtype)
    search = graph.PatchSearch(pos)
    # stray points: no patch centres, no samples of the noise estimate (the nearest-point
    # table this computes is the clean plane fit's neighbours too)
    isolated = isolated_points(search)
    core = ~isolated if bool(isolated.any()) else None
    surface = 0.0  # the noise estimate: what the scale and the plane fit are sized by
    chosen = scale is None and n > patch_points  # the scale is ours to choose
    if refine or chosen:
        surface = surface_points(pos, SCALES[-1] * patch_points, search=search, core=core)
    # scan lines: neighbourhoods need more points to span the surface's two directions
    measure = refine or n > patch_points
    spread = spread_points(pos, search) if measure else CLEAN_SURFACE
    lines = spread > CLEAN_SURFACE  # scan lines
    planes = None  # the heights across local PCA planes, once measured
    if chosen:
        scale = choose_scale(surface, patch_points)
        clean = choose_scale(CLEAN_SURFACE, patch_points)
        # thin parts and close sheets can read as noise to the estimate, not to the
        # heights across local (PCA) planes: they get the context of a clean surface
        if scale > clean:
            planes = height_spread(pos, None, (16, 64), search)
            if not roughness_is_noise(pos, None, search=search, planes=planes):
                scale = clean
        if lines:  # patches of evenly sampled surface
            scale = max(scale, spread // SCAN_LINE_SCALE)
    with _mlps_in_own_dtype(model, dtype):
        if n <= patch_points:
            normals = model(pos, torch.zeros(n, dtype=torch.long, device=device))
            report("predicting", 1, 1)
        else:
            patches = plan_patches(pos, scale * patch_points, overlap, search=search, core=core)
            counted = partial(report, "predicting")
            # on scan lines the model sees even samples
            normals = _run_patches(model, pos, patches, patch_points, batch_points, counted, lines)
    normals = normals.to(dtype)
    if refine:
        # sized by the heights across the model's planes (they follow thin parts and
        # creases more closely than PCA's)
        noise = roughness_is_noise(pos, normals, search=search, planes=planes)
        neighbours, width, passes = fit_settings(surface, noise)
        span = FLAT_SPAN
        thick = None if noise else THICK  # clean fits: two sheets in a slab fit narrower
        if lines:  # fit over several of them, keep the
            # guide where the neighbours still lie along lines, and fit once (the lines
            # read as noise; moving points onto planes across them smooths the surface)
            neighbours, span, passes = max(neighbours, 2 * spread), LINE_SPAN, 1
        elif noise and fit_neighbours is None:  # large smooth panels: a wider fit
            neighbours = panel_neighbours(pos, normals, neighbours, width, search)
        if fit_neighbours is not None:  # the user's
            neighbours = fit_neighbours
        normals = refine_normals(
            pos,
            normals,
            neighbours,
            width=width,
            passes=passes,
            search=search,
            progress=partial(report, "fitting planes"),
            span=span,
            thick=thick,
        )
    return normals.to(points.device, points.dtype)


PRECISIONS = ("mixed", "float64", "float32")


def _quiet(stage: str, done: int, total: int) -> None:
    """The progress callback when none is given."""


@contextmanager
def _mlps_in_own_dtype(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    if next(model.parameters()).dtype == dtype:
        yield
        return
    handles = float32_mlps(model)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _run_patches(
    model: nn.Module,
    pos: Tensor,
    patches: Patches,
    patch_points: int,
    batch_points: int | None,
    progress: Callable[[int, int], None],
    even: bool = False,
) -> Tensor:
    """Predict every patch (batched), spread to its unseen points, blend per point.

    The model sees every patch's points at :func:`~pointnormals.patching.context_ranks`,
    or with ``even`` its :func:`~pointnormals.patching.even_samples` (scan lines).

    The model calls run side by side on CPU threads (:func:`~pointnormals.parallel.thread_map`).
    """
    device, n = pos.device, pos.size(0)
    k = patches.context.size(1)
    ranks = context_ranks(k, patch_points).to(device)
    seen = ranks.numel()
    if batch_points is None:
        batch_points = 262_144 if device.type == "cuda" else 8_192
    total = patches.num_patches
    # calls of at most batch_points, their count rounded up to a multiple of the threads
    # and the patches shared out evenly (12 patches, 8 a call, 2 threads: 6 + 6, not 8 + 4)
    threads = workers(device)
    calls = -(-total // max(1, batch_points // seen))
    calls = min(total, -(-calls // threads) * threads)
    starts = [total * call // calls for call in range(calls + 1)]
    out_point, out_patch = patches.outside
    bounds = torch.searchsorted(out_patch, torch.tensor(starts, device=device))

    def predict_call(call: int) -> tuple[Tensor, Tensor, Tensor]:
        """Points, predictions and blending weights of the patches of one model call."""
        start, stop = starts[call], starts[call + 1]
        b = stop - start
        centres = pos[patches.centres[start:stop]]  # (B, 3)
        context = patches.context[start:stop]  # (B, K)
        local = pos[context] - centres.unsqueeze(1)  # (B, K, 3)
        batch = _repeat(b, seen, device)
        if even:  # (every point where the context is no larger than the patch)
            visible = local.take_along_dim(even_samples(local, seen).unsqueeze(-1), dim=1)
        else:
            visible = local[:, ranks]
        visible = visible.reshape(-1, 3)  # (B * P, 3)
        pred = model(visible, batch)  # (B * P, 3)
        pred = flat_patch_normals(visible.view(b, seen, 3), pred.view(b, seen, 3)).view(-1, 3)
        # every context point, then every attached outside point, takes the prediction
        # of the nearest point the model saw in its patch
        lo, hi = int(bounds[call]), int(bounds[call + 1])
        extra = out_point[lo:hi]
        extra_patch = out_patch[lo:hi] - start
        extra_local = pos[extra] - centres[extra_patch]
        if seen == k:  # the model saw every point of the context
            src = torch.arange(b * k, device=device)
        else:
            src, _ = graph.knn(visible, local.reshape(-1, 3), 1, batch, _repeat(b, k, device))
        src_extra = extra_patch  # (empty)
        if extra.numel():
            src_extra, _ = graph.knn(visible, extra_local, 1, batch, extra_patch)  # sorted
        distance = torch.cat([local.norm(dim=-1).reshape(-1), extra_local.norm(dim=-1)])
        radius = local.norm(dim=-1).amax(dim=1)  # (B,)
        target_batch = torch.cat([_repeat(b, k, device), extra_patch])
        return (
            torch.cat([context.reshape(-1), extra]),
            pred[torch.cat([src, src_extra])].to(pos.dtype),
            depth_weights(distance, radius[target_batch]),
        )

    points, preds, weights = [], [], []
    for call, (point, pred, weight) in enumerate(thread_map(predict_call, range(calls), device)):
        points.append(point)
        preds.append(pred)
        weights.append(weight)
        progress(starts[call + 1], total)
    return blend(torch.cat(points), torch.cat(weights), torch.cat(preds), n)


def _repeat(patches: int, points: int, device: torch.device) -> Tensor:
    """The batch vector of ``patches`` patches of ``points`` points each (sorted)."""
    return torch.arange(patches, device=device).repeat_interleave(points)


def orient_outward(points: Tensor, normals: Tensor) -> Tensor:
    r"""Flip normals to point away from the centroid: :math:`n_i (p_i - \bar p) \ge 0`.

    Right for closed, roughly star-shaped objects (a scanned part, a statue); for scenes
    seen from a sensor, orient towards the sensor instead. Equivariant like the rest.
    """
    sign = ((points - points.mean(0)) * normals).sum(-1) < 0
    return torch.where(sign.unsqueeze(-1), -normals, normals)
