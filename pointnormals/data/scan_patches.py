r"""Training patches cut from simulated scans exactly as ``predict.py`` cuts them.

``predict.py`` feeds the model patches of :math:`P` points taken at fixed distance ranks
(:func:`~pointnormals.patching.context_ranks`) among the :math:`K = sP` points nearest to
a centre of a scan of :math:`N` points. So a training item is:

1. a dense cloud (:class:`~pointnormals.data.dense.DenseClouds`) and a *virtual scan
   size* :math:`N \sim \log\mathcal U(10^4, 5\cdot10^5)` (at most the cloud's size):
   around a random centre, the dense points are thinned to the density of an
   :math:`N`-point scan; a range scan (a cloud with a sensor origin) is not thinned,
   so that its regular grid of rays survives; with probability ``scan_line_prob`` the
   scan is one of *scan lines* instead (a line scanner, mobile or airborne LiDAR): only
   the dense points within half a point spacing :math:`a` of parallel planes
   :math:`h = m a` apart are kept, :math:`m \sim \log\mathcal U` over ``line_spacing``,
   then thinned along the lines to a share :math:`\sim\log\mathcal U(1/4, 1)`;
2. scan artefacts on that region: Gaussian noise of :math:`\sigma` relative to the
   *whole shape's* box diagonal (0 with probability ``clean_prob``, else log-uniform up
   to ``max_noise``), optionally along one viewing direction (on a range scan always
   along each point's ray from the sensor); a density gradient; fewer points at grazing
   angles (not on range scans, which have them already); holes; a few outliers;
3. the :math:`K` nearest (noisy) points of the centre and the :math:`P` of them at the
   ranks ``context_ranks(K, P)``, with their exact normals; then a random rotation or
   reflection.

Randomness comes from one ``numpy`` generator per item (seeded per index for
validation, fresh for training).

Shapes:
    an item is a ``Data`` with ``pos`` ``(P', 3)`` float32 and unit ``normal``
    ``(P', 3)``, :math:`P' \le P` (fewer only when a region is too small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from pointnormals.pyg import Data

from pointnormals.data.dense import DenseClouds
from pointnormals.geometry import haar_orthogonal
from pointnormals.patching import SCALES, context_ranks

__all__ = ["ScanPatches"]


class ScanPatches(Dataset):
    """Patches of simulated scans (see the module docstring).

    Args:
        clouds: the dense clouds to cut from.
        length: items per epoch.
        patch_points: ``P``.
        scales: context scales ``s`` (``K = s P``), one drawn per item.
        scan_points: range of the virtual scan size ``N`` (log-uniform).
        max_noise: largest noise, fraction of the shape's box diagonal.
        clean_prob: probability of no noise.
        artefact_prob: probability of each artefact (gradient, grazing, holes, outliers,
            noise along a viewing ray).
        seed: ``None`` for fresh randomness (training), else item ``i`` uses ``(seed, i)``.
        mix: share of items per source (the prefix of a cloud's name before ``/``:
            ``synthetic``, ``mesh``, ``modelnet``, ``scan``; default 0.4 / 0.3 / 0.3 / 0.15);
            sources absent from ``clouds`` are dropped and the rest renormalised.
        scan_line_prob: probability that a scan (not a range scan) is one of scan lines.
        line_spacing: range of the line spacing in dense point spacings (log-uniform).
    """

    def __init__(
        self,
        clouds: DenseClouds,
        length: int,
        patch_points: int = 1024,
        scales: Sequence[int] = SCALES,
        scan_points: tuple[int, int] = (10_000, 500_000),
        max_noise: float = 0.015,
        clean_prob: float = 0.2,
        artefact_prob: float = 0.2,
        seed: int | None = None,
        mix: dict[str, float] | None = None,
        scan_line_prob: float = 0.0,
        line_spacing: tuple[float, float] = (3.0, 40.0),
    ) -> None:
        self.clouds, self.length, self.patch_points = clouds, length, patch_points
        self.scales = tuple(int(s) for s in scales)
        self.scan_points = scan_points
        self.max_noise, self.clean_prob = max_noise, clean_prob
        self.artefact_prob, self.seed = artefact_prob, seed
        self.scan_line_prob, self.line_spacing = scan_line_prob, line_spacing
        mix = mix or {"synthetic": 0.4, "mesh": 0.3, "modelnet": 0.3, "scan": 0.15}
        source = np.array([str(name).split("/")[0] for name in clouds.names])
        weight = np.array([mix.get(s, 0.0) / (source == s).sum() for s in source])
        if not weight.sum() > 0:
            raise ValueError(f"ScanPatches: no cloud of the sources {sorted(mix)}")
        self._weights = weight / weight.sum()
        self._diagonals = [
            float(np.linalg.norm(np.ptp(clouds.cloud(i)[0], axis=0))) for i in range(len(clouds))
        ]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Data:
        if self.seed is None:
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
        else:
            rng = np.random.default_rng([self.seed, index])
        pos, normal = self.cut(rng)
        q = haar_orthogonal(rng.normal(size=(3, 3)))  # O(3), reflections included
        pos = (pos - pos[0]) @ q.T  # relative to the centre: float32 keeps detail
        return Data(
            pos=torch.from_numpy(pos.astype(np.float32)),
            normal=torch.from_numpy((normal @ q.T).astype(np.float32)),
        )

    def cut(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One patch: points ``(P', 3)`` (the centre first) and exact normals."""
        index = int(rng.choice(len(self.clouds), p=self._weights))
        pos, normal = self.clouds.cloud(index)
        diagonal = self._diagonals[index]
        n_dense = len(pos)
        lo, hi = self.scan_points
        n_scan = min(n_dense, math.exp(rng.uniform(math.log(lo), math.log(hi))))
        origin = self.clouds.origin(index)
        keep = 1.0 if origin is not None else n_scan / n_dense
        context = self.scales[int(rng.integers(len(self.scales)))] * self.patch_points
        centre = pos[int(rng.integers(n_dense))].astype(np.float64)
        dist = ((pos - centre) ** 2).sum(1)
        lines = self.scan_line_prob > 0 and origin is None and rng.random() < self.scan_line_prob
        if lines:  # scan lines keep about 1 / m of the dense points, thinned along the lines
            spacing = math.exp(rng.uniform(*np.log(self.line_spacing)))
            keep = math.exp(rng.uniform(math.log(0.25), 0.0))
            kept = keep / spacing
        else:
            kept = keep
        # the region: enough dense points that, thinned and holed, K remain
        need = min(n_dense, math.ceil(2.5 * context / kept))
        region = np.argpartition(dist, need - 1)[:need] if need < n_dense else np.arange(n_dense)
        if lines:
            region = region[_on_lines(pos[region], centre, dist, spacing, rng)]
        region = region[rng.random(len(region)) < keep]
        p, n = pos[region].astype(np.float64), normal[region]
        p, n = self._artefacts(p, n, centre, diagonal, origin, rng)
        if len(p) == 0:
            return self.cut(rng)
        # the K nearest of the noisy points, sorted by distance, then the fixed ranks
        start = int(np.argmin(((p - centre) ** 2).sum(1)))
        d = ((p - p[start]) ** 2).sum(1)
        k = min(context, len(p))
        near = np.argpartition(d, k - 1)[:k] if k < len(p) else np.arange(len(p))
        near = near[np.argsort(d[near], kind="stable")]
        members = near[context_ranks(k, self.patch_points).numpy()]
        return p[members], n[members]

    def _artefacts(
        self, p: np.ndarray, n: np.ndarray, centre: np.ndarray, diagonal: float,
        origin: np.ndarray | None, rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        chance = self.artefact_prob
        extent = np.sqrt(((p - centre) ** 2).sum(1).max(initial=0.0)) + 1e-12
        view = _unit(rng.normal(size=3))
        drop = np.zeros(len(p), dtype=bool)
        if rng.random() < chance:  # density gradient along a random direction
            t = (p - centre) @ _unit(rng.normal(size=3)) / extent  # in [-1, 1]
            drop |= rng.random(len(p)) > np.interp(t, [-1, 1], [rng.uniform(0.1, 0.5), 1.0])
        if rng.random() < chance and origin is None:  # fewer points seen at grazing angles
            drop |= rng.random(len(p)) > 0.1 + 0.9 * np.abs(n @ view)
        if rng.random() < chance:  # holes
            for _ in range(int(rng.integers(1, 4))):
                hole = p[int(rng.integers(len(p)))]
                radius = rng.uniform(0.05, 0.25) * extent
                drop |= ((p - hole) ** 2).sum(1) < radius**2
        p, n = p[~drop], n[~drop]
        if rng.random() >= self.clean_prob:
            sigma = diagonal * math.exp(rng.uniform(math.log(2e-4), math.log(self.max_noise)))
            if origin is not None:  # a range scan: noise along each ray
                ray = (p - origin) / np.linalg.norm(p - origin, axis=1, keepdims=True)
                p = p + rng.normal(scale=sigma * math.sqrt(3), size=(len(p), 1)) * ray
            elif rng.random() < chance:  # noise along one viewing direction
                p = p + rng.normal(scale=sigma * math.sqrt(3), size=(len(p), 1)) * view
            else:
                p = p + rng.normal(scale=sigma, size=p.shape)
        if rng.random() < chance and len(p):  # a few outliers in the region's box
            count = max(1, int(len(p) * rng.uniform(0.001, 0.01)))
            idx = rng.choice(len(p), count, replace=False)
            lo, hi = p.min(0), p.max(0)
            p = p.copy()
            p[idx] = lo + rng.random((count, 3)) * (hi - lo)
        return p, n


def _on_lines(
    p: np.ndarray, centre: np.ndarray, dist: np.ndarray, spacing: float, rng: np.random.Generator
) -> np.ndarray:
    """Mask of the points ``p`` within half a point spacing of parallel planes ``spacing``
    point spacings apart (random direction and phase); the point spacing is measured at
    the centre from ``dist``, the squared distances of all dense points to it."""
    near = 256
    radius = math.sqrt(float(np.partition(dist, near)[near]))  # disc of ~256 points
    step = radius * math.sqrt(math.pi / near)  # dense point spacing a
    t = (p - centre) @ _unit(rng.normal(size=3)) / (spacing * step) + rng.random()
    return np.abs(t - np.round(t)) * spacing < 0.5


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)
