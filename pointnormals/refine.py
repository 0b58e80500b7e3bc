r"""Refinement: a robust local plane fit guided by the model's normal.

The network sees a patch at a fixed number of points, so on a dense scan it works at a
coarser resolution than the scan's own spacing (with context scale :math:`s > 1` it sees
only every :math:`s`-th point), and its answer is a regression, not a fit. Classical PCA
is precise where the surface is locally a plane but fails across creases, thin parts
and noise it was not tuned for. :func:`refine_normals` combines them: the model says
*which* plane, the scan's own points say *where exactly*.

For every point :math:`p_i` with guide normal :math:`n_i` (the model's) and its
:math:`k` nearest points :math:`p_j`, the heights over the guide's tangent plane
:math:`h_{ij} = n_i \cdot (p_j - p_i)` give the weights

.. math::
    w_{ij} = \exp\!\big(-(h_{ij} / \tau_i)^2\big), \qquad
    \tau_i = c \cdot \operatorname{median}_j |h_{ij}|,

which keep the points near the guide's plane and drop those across a crease or on the
other side of a thin part. The refined normal is the least-variance axis of the weighted
covariance :math:`\sum_j w_{ij} (p_j - \mu_i)(p_j - \mu_i)^\top`,
:math:`\mu_i = \sum_j w_{ij} p_j / \sum_j w_{ij}`, signed like :math:`n_i`.

Heights change sign under reflections and scale with the cloud, :math:`\tau_i` with
them, so the weights are invariant and the fit is equivariant under rotations,
reflections, translations, uniform scaling and permutations (the neighbourhoods are
distance ranks). Where the roughness is noise (:func:`roughness_is_noise`),
:func:`refine_neighbours` sets :math:`k` from the cloud's invariant noise estimate
:func:`~pointnormals.patching.surface_points` (widened to 256 on lightly noisy panels,
:func:`panel_neighbours`); elsewhere :math:`k` is :data:`CLEAN_NEIGHBOURS`
(:func:`fit_settings`).

Where the slab still holds two sheets (two scans merged out of register, both sides of
a crease), the least-variance axis can lie *in* the sheets and turn the normal by up to
90°: a clean fit whose least variance exceeds :data:`THICK` of the middle one fits again
over a narrower slab (:data:`NARROW_WIDTH`), and keeps the guide if that is still as thick.

On a noisy scan one fit leaves much of the noise in the normals. With ``passes=2`` every
point then moves onto its fitted plane, :math:`p_i \leftarrow p_i + (\mu_i \cdot a_i)\,a_i`
(:math:`\mu_i` taken relative to :math:`p_i`, :math:`a_i` the fitted normal), and the fit
repeats over the moved points, guided by the first fit's normals: a denoising step that
averages the planes of overlapping neighbourhoods. On a clean surface the same step
smooths away real detail, so :func:`fit_settings` turns it on (with a wider slab, ``c = 3``)
only where :func:`roughness_is_noise` says the roughness is noise: on training meshes
(100k points, noise 0.125-1.2 % of the diagonal) the RMSE falls 2-8 %, on clean scans and
ModelNet40 shapes the second pass would raise it 5-35 %.

>>> import torch
>>> xy = torch.rand(2000, 2, dtype=torch.float64)
>>> plane = torch.cat([xy, 0.3 * xy[:, :1]], dim=1)  # the plane z = 0.3 x
>>> truth = torch.tensor([-0.3, 0.0, 1.0], dtype=torch.float64) / 1.09 ** 0.5
>>> guide = torch.nn.functional.normalize(truth + 0.1 * torch.randn(2000, 3).double(), dim=1)
>>> refined = refine_normals(plane, guide, neighbours=32)
>>> bool((refined @ truth).abs().min() > 1 - 1e-9)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from pointnormals import graph
from pointnormals.geometry import symmetric_eigh
from pointnormals.parallel import thread_map
from pointnormals.patching import spread_sample, thickness_and_normal

__all__ = [
    "CLEAN_NEIGHBOURS",
    "FLAT_SPAN",
    "NARROW_WIDTH",
    "NEIGHBOURS_PER_ROOT",
    "NOISY_WIDTH",
    "PANEL_RISE",
    "PANEL_SAMPLES",
    "PLANE_NOISE_RATIO",
    "THICK",
    "WIDTH",
    "fit_settings",
    "height_spread",
    "panel_neighbours",
    "refine_neighbours",
    "refine_normals",
    "roughness_is_noise",
]

NEIGHBOURS_PER_ROOT = 8.0
r"""``k = 8`` :math:`\sqrt{k^*}` neighbours (:func:`refine_neighbours`), at most 256;
calibrated on training meshes (cow, homer; 100k points; noise 0-1.2 %) against
:math:`k^{1/3}` rules, fixed :math:`k` and caps of 128-1024 (beyond 256 the fit gains
under 1.5 % at the highest noise for 2-4x the time of the neighbour search)."""

CLEAN_NEIGHBOURS = 16
r"""``k`` where the roughness is not noise (:func:`roughness_is_noise`): on clean training
meshes and shapes (beast, beetle, beetle-alt, cheburashka, cow, 4 synthetic seeds; 100k
points) ``k`` = 10-20 are within 1 % of each other and 2-6 % below ``k = 32`` (the
:func:`refine_neighbours` of a clean cloud); on 54 ModelNet40 train shapes (10k) ``k = 16``
is 1.8 % below ``k = 32`` (geometric mean of the RMSE; lower on 37)."""

FLAT_SPAN = 1e-12
"""A fit whose middle covariance eigenvalue is at most this share of the largest (the
neighbours are coincident or on a line, so no plane is defined) keeps the guide."""

LINE_SPAN = 0.1
"""``span`` of the fit on scan lines: a neighbourhood whose second spread is under 10 %
of its first (in variance) lies along one or two lines, and the plane across them
follows the lines, not the surface, so the guide stays. Measured on held-out meshes and
synthetic shapes cut into 20, 40 and 100 lines (100k points, 0.05 % noise, guided by the
network's even-sampled patches, 2k neighbours): geometric mean RMSE 13.45° with
:data:`FLAT_SPAN`, 13.31° / 12.94° / 12.77° with 0.01 / 0.1 / 0.3, the network alone
13.84°; 0.1 keeps the fit on 100 lines (0.3 lets the guide stay where the fit was
better)."""

WIDTH = 2.0
r"""``c`` of the weight width :math:`\tau_i = c \cdot \operatorname{median}_j |h_{ij}|`.
Wider slabs (``c = 4``) were 2-5 % better on noisy training scans but up to 18 % worse on
thin CAD parts (ModelNet40 train shapes whose noise estimate reads high: 24.1° at
``c = 2``, 28.6° at ``c = 4``), which :func:`~pointnormals.patching.surface_points`
cannot tell from noise; :func:`roughness_is_noise` can (:func:`fit_settings`)."""


NOISY_WIDTH = 3.0
r"""``c`` where the heights look like noise (:func:`fit_settings`), with a second pass:
with two passes, ``c`` = 2 / 3 / 4 gave mean RMSE 19.7 / 19.4 / 19.4° on the training
meshes' 12 noisy clouds, ``c = 3`` within 1 % of the best on every one."""

THICK = 0.2
r"""A clean fit (:func:`fit_settings`) whose least weighted variance exceeds this share of
the middle one is no plane: its slab holds two sheets (merged scans out of register by
about the neighbourhood's radius) or both sides of a crease or a thin part. It fits again
over a slab :data:`NARROW_WIDTH` wide, and where that is still as thick, the guide stays.
Measured with ``scripts/bench_accuracy.py`` (geometric mean RMSE ÷ oracle PCA): over its
58 clouds 0.883 → 0.874 (ModelNet40 0.811 → 0.781, 1−|cos| 0.0673 → 0.0654; density
gradients 0.825 → 0.835; clean, range scans and the noisy groups, which fit with
:data:`NOISY_WIDTH`, unchanged); ``--groups "merged scans"`` 1.057 → 1.004 (nefertiti
9.30° → 7.97°, PCA k=30 8.52°). With the shipped model's normals as guides, on two
range scans of each held-out mesh merged 0.2 / 0.4 / 0.8 % of the diagonal out of
register: 1.082 → 0.961 at 0.2, 0.984 at 0.3, 1.006 at 0.4 (spot at 0.4 %: 9.94° →
6.18°); on the 30k-point benchmark clouds 0.892 → 0.883 at 0.2, 0.884 at 0.3."""

NARROW_WIDTH = 0.5
r"""``c`` of the second fit of a thick neighbourhood (:data:`THICK`): a slab a quarter as
wide as :data:`WIDTH`'s, which keeps the sheet through the point (``c = 1``, measured at a
threshold of 0.3 without the guide's fallback: 0.886 on the 30k-point benchmark clouds,
1.061 on the merged scans)."""

PLANE_NOISE_RATIO = 1.5
r""":math:`\rho_{16} / \rho_{64}` across PCA planes above which
:func:`roughness_is_noise` calls the roughness noise whatever the guide says (with
:math:`\rho_{16} \ge 0.05`): the verdict must not hang on the network's quality. A weaker
network's normals are rougher at 64 neighbours, which hides the noise from the guide's
ratio: with the shipped weights run with halved neighbourhoods (kNN 8, balls of 16), the
benchmark's clouds at 0.125 % noise read ratios 1.08-1.17 across its normals (the
shipped network's: 1.57-1.64) and were fitted as clean surfaces: 2.2-4.1x the RMSE the
shipped network's normals get, against 1.017x (geometric mean) with this rule.
Across PCA planes the same clouds read 1.73-1.82, the range scans 1.66-1.74 (noise
along the rays; 1.39-1.55 across the shipped normals), scan lines 2.4-3.7; what must stay
clean reads lower: all 110 ModelNet40 train shapes and the 17 test shapes at most 1.39
where :math:`\rho_{16} \ge 0.05` (a vase; 1.60-1.61 below it: a dresser and a tent of flat
faces), the merged scans 1.37-1.57 (1.37: nefertiti's, the one that is clean across the
shipped normals; 1.57: spot's, at :math:`\rho_{16}` = 0.049), clean and density-gradient
clouds :math:`\rho_{16} \le 0.014`. So with the shipped weights no benchmark cloud
changes verdict."""

PANEL_RISE = 1.3
r"""How much more than at the noise estimate's size nested fits may disagree (relative
to their noise) up to 256 neighbours for :func:`panel_neighbours` to widen the fit."""

PANEL_SAMPLES = 1000
"""Centres of :func:`panel_neighbours`' agreement measure."""

CACHE_ELEMENTS = 2**27
"""Neighbour indices kept between passes up to this many (point, neighbour) pairs (512 MB
as int32: noisy clouds of up to 524k points at ``k = 256``); beyond, every pass queries
them again. Measured through :func:`~pointnormals.api.estimate` on noisy (0.6 %) clouds
of the cow mesh against 2^25: 200k points 19.5-21.6 s → 16.3-16.7 s with the same peak
resident memory (840-880 MB); 400k points 39.0 s → 30.7 s, peak 966 → 1122 MB."""


def height_spread(
    points: Tensor,
    normals: Tensor | None,
    ks: Sequence[int],
    search: graph.PatchSearch | None = None,
    samples: int = 512,
) -> list[float]:
    r"""How rough the surface looks at each of ``ks`` neighbours across local planes.

    At ``samples`` centres :math:`i` (:func:`~pointnormals.patching.spread_sample`)
    with normals :math:`n_i`, the
    heights :math:`h_{ij} = n_i \cdot (p_j - p_i)` of the ``k`` nearest points give
    :math:`\rho_i = \operatorname{MAD}_j(h_{ij}) / \max_j \lVert p_j - p_i \rVert`; the result
    is the median over the centres. A clean smooth surface gives :math:`\rho \to 0` at
    small ``k``, rising with ``k`` as curvature enters; noise of standard deviation
    :math:`\sigma` gives :math:`\rho \approx 0.67\sigma / r_k`, falling with ``k``, up
    to about 0.2 when the noise swamps the neighbourhood (an isotropic blob). Invariant
    under rotations, reflections, translations, uniform scaling and permutations (up to
    exact distance ties).

    Args:
        points: ``(N, 3)`` the cloud.
        normals: ``(N, 3)`` unit guide normals, any sign; ``None``: every centre's
            least-variance axis of its ``max(ks)`` nearest points (PCA).
        ks: neighbour counts, one value each.
        search: a :class:`~pointnormals.graph.PatchSearch` of ``points`` to reuse.
        samples: centres.
    """
    centres, offsets = _sampled_neighbourhoods(points, max(ks), samples, search)
    if normals is None:
        _, guide = thickness_and_normal(offsets)  # (S, 3) PCA planes
    else:
        guide = normals[centres].to(points.dtype)
    height = (offsets @ guide.unsqueeze(-1)).squeeze(-1)
    tiny = torch.finfo(points.dtype).tiny
    out = []
    for k in ks:
        h = height[:, :k]
        # quantile, not median: for an even count the lower middle value would change
        # with the sign of the heights, i.e. under reflections
        middle = torch.quantile(h, 0.5, dim=1, keepdim=True)
        spread = torch.quantile((h - middle).abs(), 0.5, dim=1)
        reach = offsets[:, :k].norm(dim=-1).amax(dim=1).clamp_min(tiny)
        out.append(float((spread / reach).median()))
    return out


def roughness_is_noise(
    points: Tensor,
    normals: Tensor | None,
    search: graph.PatchSearch | None = None,
    planes: Sequence[float] | None = None,
) -> bool:
    r"""Whether the heights across local planes look like noise rather than curvature,
    thin parts or close sheets.

    Noise when :math:`\rho_{16} \ge 0.17` (noise swamps 16 neighbours) or
    :math:`\rho_{16} \ge 0.05` and :math:`\rho_{16} \ge 1.2\,\rho_{64}` (roughness that
    falls with the neighbourhood, unlike curvature and thin parts)
    (:func:`height_spread`). The planes are the guide ``normals`` (the model's: a random
    guide reads as noise) or, with ``None``, every centre's PCA plane of its 64 nearest
    points (before the network runs).

    With the model's normals, calibrated on training meshes (cow, teapot, beast, homer;
    100k points; noise 0.125-1.2 %: :math:`\rho_{16}` 0.12-0.29,
    :math:`\rho_{16}/\rho_{64}` 0.98-1.57) and synthetic training shapes (50k points,
    noise 0.125 %: :math:`\rho_{16}` 0.08-0.09 at ratios 1.47-1.55) against 37 ModelNet40
    *train* shapes (10k points: :math:`\rho_{16} \le 0.16` at ratios 0.33-1.12, above
    0.05 only at ratios :math:`\le 1.08`) and clean scans and density gradients
    (:math:`\rho_{16} \le 0.023`). Checked on 54 noisy clouds of other training meshes
    and shapes (alligator, beast, beetle, beetle-alt, cheburashka, 4 synthetic seeds;
    20k and 100k points; noise 0.125 / 0.6 / 1.2 %): noise on every one whose noise
    estimate (:func:`~pointnormals.patching.surface_points`) exceeds 16 points; 55
    ModelNet40 train shapes: not noise on 12 of the 13 whose estimate does (thin parts
    and close sheets read as noise there; ``curtain_0029`` reads as noise here too).

    With PCA planes the same thresholds separate the clouds whose noise estimate reads
    64 points or more (where :func:`~pointnormals.inference.predict_normals` lets the
    verdict choose the context scale): of 48 noisy clouds of training meshes
    (alligator, beast, beetle, cheburashka, cow, homer; 20k and 100k points; noise
    0.125 / 0.3 / 0.6 / 1.2 %) and 8 of synthetic training shapes (4 seeds, 50k points,
    noise 0.125 / 0.6 %), every such cloud reads noise (:math:`\rho_{16} \ge 0.168`,
    and :math:`\ge 0.249` at ratios below 1.2); of 110 ModelNet40 train shapes, none
    does (:math:`\rho_{16} \le 0.166`, ratios :math:`\le 1.17`). Below 64 points PCA
    planes are less reliable than the model's: 2 of the 110 ModelNet40 train shapes
    (thin parts, estimates 16 and 32) read as noise across them (ratios 1.28 and 1.39),
    not across the model's normals (1.07 and 1.11).

    Where the guide's heights do not look like noise, PCA planes get the last word at a
    stricter ratio (:data:`PLANE_NOISE_RATIO`), so that a weaker network (another
    checkpoint) cannot turn a noisy scan into a clean one. ``planes``: the heights across
    PCA planes, ``height_spread(points, None, (16, 64))``, where measured already.
    """

    def across_planes() -> Sequence[float]:
        return planes if planes is not None else height_spread(points, None, (16, 64), search)

    if normals is None:
        rough, coarse = across_planes()
    else:
        rough, coarse = height_spread(points, normals, (16, 64), search)
    if rough >= 0.17 or (rough >= 0.05 and rough >= 1.2 * coarse):
        return True
    if normals is None:
        return False
    # a guide too rough at 64 neighbours hides the noise: PCA planes, a stricter ratio
    rough, coarse = across_planes()
    return rough >= 0.05 and rough >= PLANE_NOISE_RATIO * coarse


def fit_settings(surface: float, noise: bool) -> tuple[int, float, int]:
    r"""``(neighbours, width, passes)`` of :func:`refine_normals` for a cloud whose noise
    estimate reads ``surface`` points (:func:`~pointnormals.patching.surface_points`):
    where the roughness is noise (``noise``, :func:`roughness_is_noise`)
    :func:`refine_neighbours`, :data:`NOISY_WIDTH` and two passes, else
    :data:`CLEAN_NEIGHBOURS`, :data:`WIDTH` and one. With the second pass the fit's RMSE
    is 2-8 % lower on the noisy training meshes and 1-39 % on noisy synthetic training
    shapes; on clean scans, density gradients and ModelNet40 shapes it is 0-35 % higher.

    >>> fit_settings(4096.0, noise=True), fit_settings(4096.0, noise=False)
    ((256, 3.0, 2), (16, 2.0, 1))
    """
    if noise:
        return refine_neighbours(surface), NOISY_WIDTH, 2
    return CLEAN_NEIGHBOURS, WIDTH, 1


def panel_neighbours(
    points: Tensor,
    normals: Tensor,
    neighbours: int,
    width: float = NOISY_WIDTH,
    search: graph.PatchSearch | None = None,
    samples: int = PANEL_SAMPLES,
    highest: int = 256,
) -> int:
    r"""``highest`` where a lightly noisy surface is plane-like well beyond the noise
    estimate's ``neighbours`` (:func:`refine_neighbours`, below 181), else ``neighbours``.

    At ``samples`` centres :math:`i` (:func:`~pointnormals.patching.spread_sample`) the
    first pass of :func:`refine_normals` (slab ``width``, guided by ``normals``) of the
    :math:`k` nearest points gives the axis :math:`a_{ik}`, the weighted covariance's
    eigenvalues :math:`\lambda_0 \le \lambda_1 \le \lambda_2` and the weights' total
    :math:`W`, for :math:`k` from ``neighbours`` up in steps of :math:`\sqrt 2`. Noise
    alone tilts such an axis by about
    :math:`v_{ik} = (\lambda_0 / W)(1/\lambda_1 + 1/\lambda_2)` (squared radians), so

    .. math::
        T_k = \operatorname{median}_i \angle(a_{ik}, a_{ik'})^2 \big/
        \operatorname{median}_i v_{ik}

    (:math:`k'` the next size) measures how much more than noise moves the normal from
    one size to the next: about constant while the neighbourhoods are plane-like,
    rising once curvature, creases or other parts enter. Where :math:`T_k` stays within
    :data:`PANEL_RISE` of its value at ``neighbours`` all the way up to ``highest``, the
    fit takes ``highest`` neighbours: large smooth panels, where the noise estimate's
    size leaves most of the noise in the normals. Measured on the benchmark's 0.125 %,
    range-scan, strays and merged clouds and the training meshes' 0.125 % clouds and
    range scans (100k points), the 34 whose estimate's size is below 181: three are widened,
    all panels (a cone at 0.125 % noise 5.57 → 4.54°, the alligator at 0.125 % 1.86 →
    0.91°, its range scan 1.06 → 0.13°); at 2000 centres their largest ratio was
    1.16-1.24, a cone with 1 % strays 1.28 (not widened at 1000 centres: 5.47°, 4.55° at
    256), every other cloud 1.47-4.52 (curved shapes, merged scans, where a wider fit
    costs: nefertiti at 0.125 % 10.87° at 32, 12.66° at 181). From 181 on the noise has
    set the size already (at 0.6 % noise 256 instead of 181 is within ±2.4 %). The
    measure takes 0.15-0.2 s on 100k points. Angles and ratios of variances: invariant
    under rotations, reflections, translations, uniform scaling and permutations (up to
    exact ties of :math:`T`).

    Shapes:
        points: ``(N, 3)``, normals: ``(N, 3)`` unit guides, any sign → ``neighbours``
        or ``highest``.
    """
    # sqrt(2) steps up to one beyond highest (T of highest compares with it)
    ladder = [round(highest * 2 ** (step / 2)) for step in range(-8, 2)]
    if neighbours >= ladder[-3] or points.size(0) <= highest:  # a step below highest
        return neighbours
    sizes = [neighbours] + [k for k in ladder if k > neighbours]
    centres, offsets = _sampled_neighbourhoods(points, sizes[-1], samples, search)
    height = (offsets @ normals[centres].to(points.dtype).unsqueeze(-1)).squeeze(-1)
    axes, spreads = [], []
    for k in sizes:
        values, axis, _, total = _slab_fit(offsets[:, :k], height[:, :k], width)
        axes.append(axis)
        spreads.append(values[:, 0] / total * (1 / values[:, 1] + 1 / values[:, 2]))
    agreement = []
    for j in range(len(sizes) - 1):
        turn = torch.arccos((axes[j] * axes[j + 1]).sum(-1).abs().clamp(max=1)).square()
        agreement.append(float(turn.median() / spreads[j].median()))
    plane_like = all(t <= PANEL_RISE * agreement[0] for t in agreement)
    return highest if plane_like else neighbours


def refine_neighbours(surface: float, lowest: int = 16, highest: int = 256) -> int:
    r"""Neighbours :math:`k` of the plane fit for a cloud whose neighbourhoods need
    ``surface`` points to look like a surface (:func:`~pointnormals.patching.surface_points`):
    :math:`k = 8\sqrt{k^*}`, clipped to ``[lowest, highest]``. Noise of standard deviation
    :math:`\sigma` gives :math:`k^* \propto \sigma^2`, so :math:`k \propto \sigma`: wider fits
    average more noise, narrower ones keep curvature (32 where the estimate reads a clean
    surface; where the roughness is not noise at all, :data:`CLEAN_NEIGHBOURS`).

    >>> refine_neighbours(16), refine_neighbours(64), refine_neighbours(16384)
    (32, 64, 256)
    """
    return int(min(highest, max(lowest, round(NEIGHBOURS_PER_ROOT * math.sqrt(surface)))))


def refine_normals(
    points: Tensor,
    normals: Tensor,
    neighbours: int,
    width: float = WIDTH,
    passes: int = 1,
    search: graph.PatchSearch | None = None,
    chunk_elements: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    span: float = FLAT_SPAN,
    thick: float | None = None,
) -> Tensor:
    r"""Guided plane fits (see the module docstring) of every point.

    Args:
        points: ``(N, 3)`` the cloud (float64 keeps the fit exactly equivariant).
        normals: ``(N, 3)`` unit guide normals (e.g. the model's), any sign.
        neighbours: ``k``, nearest points of each fit (the point itself included).
        width: ``c`` of the weight width.
        passes: fits in a row; before each further one every point moves onto its
            fitted plane (along the fitted normal, to the plane through the weighted
            mean) and the fit repeats over the moved points with the previous normals
            as guides and the same neighbour sets (a denoising step for noisy scans).
        search: a :class:`~pointnormals.graph.PatchSearch` of ``points`` to reuse.
        chunk_elements: (point, neighbour) pairs per chunk (a pass runs its chunks side
            by side on CPU threads, :func:`~pointnormals.parallel.thread_map`); default
            2^19 on CPU (the chunk's temporaries stay in cache: the arithmetic 1.4-1.7x
            faster than with 2^22 at k = 256, 100k points), 2^22 on CUDA.
        progress: called with ``(points_done, passes * N)`` after every chunk.
        span: a fit whose middle covariance eigenvalue is at most ``span`` times the
            largest spans no plane and keeps the guide (:data:`LINE_SPAN` on scan lines).
        thick: a fit whose least eigenvalue exceeds ``thick`` times the middle one fits
            again over a slab :data:`NARROW_WIDTH` wide, and keeps the guide if that one
            does too (:data:`THICK`, for clean fits); ``None``: one fit.

    Returns:
        ``(N, 3)`` unit normals in the dtype of ``points``, signed like ``normals``; the
        guide itself where the neighbours span no plane (``span``, ``thick``).
    """
    n = points.size(0)
    k = min(neighbours, n)
    search = search or graph.PatchSearch(points)
    guide = normals.to(points.dtype)
    if chunk_elements is None:
        chunk_elements = 2**19 if points.device.type == "cpu" else 2**22
    # chunks of nearby points (the KD-tree's order): their neighbours overlap (cache hits)
    pieces = search.order.split(max(1, chunk_elements // k))
    # neighbour sets kept between passes (the same sets every pass), per chunk
    cache: list[Tensor | None] | None = None
    if passes > 1 and n * k <= CACHE_ELEMENTS:
        cache = [None] * len(pieces)
    moved = points

    def fit_chunk(
        moved: Tensor, guide: Tensor, further: bool, chunk: int
    ) -> tuple[Tensor, Tensor | None]:
        """Normals (and, before a further pass, the moved points) of one chunk."""
        index = pieces[chunk]  # (B,) the chunk's points
        cached = None if cache is None else cache[chunk]
        if cached is not None:
            nearest = cached.long()
        else:
            nearest = search.neighbours_of(index, k)  # (B, k)
            if cache is not None:
                cache[chunk] = nearest.int()
        offsets = moved[nearest] - moved[index].unsqueeze(1)  # (B, k, 3)
        guide_i = guide[index]
        height = (offsets @ guide_i.unsqueeze(-1)).squeeze(-1)  # (B, k)
        values, axis, mean, _ = _slab_fit(offsets, height, width)
        if thick is not None:  # two sheets or a crease in the slab: a narrower one
            again = values[:, 0] > thick * values[:, 1]
            if bool(again.any()):
                fits = _slab_fit(offsets[again], height[again], NARROW_WIDTH)[:3]
                values[again], axis[again], mean[again] = fits
        axis = torch.where((axis * guide_i).sum(-1, keepdim=True) < 0, -axis, axis)
        # coincident or collinear neighbours span no plane, nor do two sheets still in
        # the narrow slab: the guide stays
        no_plane = values[:, 1] <= span * values[:, 2]
        if thick is not None:
            no_plane |= values[:, 0] > thick * values[:, 1]
        axis = torch.where(no_plane.unsqueeze(-1), guide_i, axis)
        if not further:
            return axis, None
        # onto the fitted plane through the weighted mean
        lift = (mean * axis).sum(-1, keepdim=True)  # (B, 1)
        return axis, moved[index] + lift * axis

    for done in range(passes):
        further = done + 1 < passes
        out = torch.empty_like(guide)
        projected = torch.empty_like(points) if further else None
        fit = partial(fit_chunk, moved, guide, further)
        fitted = done * n
        fits = thread_map(fit, range(len(pieces)), points.device)
        for index, (axis, lifted) in zip(pieces, fits, strict=True):
            out[index] = axis
            if projected is not None:
                projected[index] = lifted
            fitted += index.numel()
            if progress is not None:
                progress(fitted, passes * n)
        if projected is not None:
            moved, guide = projected, out
    return out


def _sampled_neighbourhoods(
    points: Tensor, k: int, samples: int, search: graph.PatchSearch | None
) -> tuple[Tensor, Tensor]:
    """``samples`` centres (:func:`~pointnormals.patching.spread_sample`) and the offsets
    of their ``k`` nearest points, nearest first.

    Shapes:
        points: ``(N, 3)`` → centres ``(S,)``, offsets ``(S, min(k, N), 3)``.
    """
    search = search or graph.PatchSearch(points)
    centres = spread_sample(points, samples)
    nearest = search.query(points[centres], min(k, points.size(0)))  # (S, K)
    return centres, points[nearest] - points[centres].unsqueeze(1)


def _slab_fit(
    offsets: Tensor, height: Tensor, width: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""The weighted plane fit of the module docstring over a slab ``width`` wide.

    Shapes:
        offsets: ``(B, k, 3)`` :math:`p_j - p_i`, height: ``(B, k)`` :math:`h_{ij}` →
        covariance eigenvalues ``(B, 3)`` (ascending), the least-variance axis ``(B, 3)``
        (any sign), the weighted mean offset :math:`\mu_i - p_i` ``(B, 3)`` and the
        weights' total ``(B,)``.
    """
    tiny = torch.finfo(offsets.dtype).tiny
    tau = width * height.abs().median(dim=1, keepdim=True).values
    weight = torch.exp(-((height / tau.clamp_min(tiny)) ** 2))  # (B, k)
    total = weight.sum(1, keepdim=True)  # (B, 1)
    weighted = weight.unsqueeze(-1) * offsets  # (B, k, 3)
    mean = weighted.sum(1) / total  # (B, 3)
    # sum_j w_j (o_j - mean)(o_j - mean)^T without a centred copy of the offsets
    # (they are relative to p_i, so nothing large cancels)
    covariance = weighted.transpose(1, 2) @ offsets  # (B, 3, 3)
    covariance -= total.unsqueeze(-1) * mean.unsqueeze(-1) * mean.unsqueeze(-2)
    values, vectors = symmetric_eigh(covariance)  # ascending
    return values, vectors[..., 0], mean, total.squeeze(1)
