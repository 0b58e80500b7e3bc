"""Dense clouds with exact normals, generated once and cached: what scan patches are cut from.

Four sources, each optional:

* synthetic shapes (:func:`~pointnormals.data.synthetic.generate_shape`), sampled at
  ``synthetic_points``; seeds of the ``train`` split only (benchmarks use other seeds);
* the shared triangle meshes (``../shared/data/meshes``) sampled at ``mesh_points``,
  except those in :data:`HELDOUT_MESHES`, which the accuracy benchmark keeps for itself;
* ModelNet40 shapes (10k points each in the resampled layout);
* range scans of the same training meshes (:func:`~pointnormals.data.range_scan.range_scan`):
  ``range_scans`` random viewpoints per mesh, each at a resolution drawn log-uniformly
  in ``range_scan_points``; the near side only, on a regular grid of rays, with the
  sensor's position kept so that noise can be added along each ray.

All clouds are stored in one ``.npz``: concatenated ``pos`` float32 and ``normal``
float16, with ``offsets`` (start of every cloud), ``names`` (``source/...``) and
``origins`` (the sensor of a range scan, NaN for the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointnormals import o3d
from pointnormals.data.cache import load_npz, params_key, save_npz
from pointnormals.data.mesh import Mesh, sample_mesh
from pointnormals.data.range_scan import range_scan, sensor_origin

__all__ = ["HELDOUT_MESHES", "DenseClouds", "build_dense_clouds", "mesh_names"]

HELDOUT_MESHES = ("nefertiti", "rocker-arm", "spot")
"""Meshes never trained on: a museum scan, a CAD part, a sculpted figure."""

_VERSION = 2


def mesh_names(meshes_dir: str | Path, heldout: bool = False) -> list[str]:
    """Stems of the ``.obj`` meshes in ``meshes_dir``: training ones or held-out ones."""
    root = Path(meshes_dir)
    if not root.is_dir():
        return []
    stems = sorted(p.stem for p in root.glob("*.obj"))
    return [s for s in stems if (s in HELDOUT_MESHES) == heldout]


def sample_mesh_file(path: str | Path, num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` uniform samples of a mesh file with exact face normals (float64)."""
    mesh = o3d.read_triangle_mesh(path)
    return sample_mesh(mesh, num_points, np.random.default_rng(seed))


def random_range_scans(
    mesh: Mesh, views: int, points: tuple[int, int], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``views`` range scans from random directions, sizes log-uniform in ``points``.

    Returns:
        per view: ``points`` ``(M, 3)``, unit face ``normals`` ``(M, 3)`` and the sensor
        ``origin`` ``(3,)`` (float64).
    """
    scans = []
    for _ in range(views):
        view = rng.normal(size=3)
        size = int(np.exp(rng.uniform(np.log(points[0]), np.log(points[1]))))
        p, n, _ = range_scan(mesh, size, view)
        scans.append((p, n, sensor_origin(mesh, view)))
    return scans


@dataclass(frozen=True)
class DenseClouds:
    """Variable-size clouds in flat arrays.

    Shapes:
        pos: ``(M, 3)`` float32, normal: ``(M, 3)`` float16 (unit up to rounding),
        offsets: ``(C + 1,)`` int64, names: ``(C,)`` str, origins: ``(C, 3)`` float64
        (a range scan's sensor; NaN for clouds that are not range scans).
    """

    pos: np.ndarray
    normal: np.ndarray
    offsets: np.ndarray
    names: np.ndarray
    origins: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def cloud(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(N, 3)`` float32 and unit normals ``(N, 3)`` float32 of cloud ``index``."""
        lo, hi = self.offsets[index], self.offsets[index + 1]
        normal = self.normal[lo:hi].astype(np.float32)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-6)
        return self.pos[lo:hi], normal

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def origin(self, index: int) -> np.ndarray | None:
        """The sensor ``(3,)`` of cloud ``index`` if it is a range scan, else ``None``."""
        origin = self.origins[index]
        return origin if np.isfinite(origin).all() else None


def build_dense_clouds(
    cache_dir: str | Path,
    synthetic_shapes: int = 96,
    synthetic_points: int = 100_000,
    meshes_dir: str | Path | None = None,
    mesh_points: int = 300_000,
    modelnet_root: str | Path | None = None,
    range_scans: int = 0,
    range_scan_points: tuple[int, int] = (20_000, 300_000),
    seed: int = 0,
) -> DenseClouds:
    """Generate (first call) or load (later calls) the cached dense clouds.

    Args:
        cache_dir: cache directory (``<cache_dir>/dense/*.npz``).
        synthetic_shapes: number of synthetic shapes (``0``: none).
        synthetic_points: points per synthetic shape.
        meshes_dir: the shared meshes (``None`` or missing: none); held-out ones skipped.
        mesh_points: points per mesh.
        modelnet_root: ModelNet40 root, either layout (``None`` or missing: none); its
            ``train`` split is used.
        range_scans: range scans per training mesh (``0``: none).
        range_scan_points: range of a range scan's size (log-uniform).
        seed: generation seed.
    """
    meshes = mesh_names(meshes_dir) if meshes_dir else []
    modelnet = modelnet_root if modelnet_root and Path(modelnet_root).is_dir() else None
    key = params_key(
        v=_VERSION, s=synthetic_shapes, sp=synthetic_points, m=meshes, mp=mesh_points,
        mn=str(modelnet), rs=range_scans, rsp=list(range_scan_points), seed=seed,
    )  # fmt: skip
    path = Path(cache_dir) / "dense" / f"dense-{key}.npz"
    if not path.is_file():
        pos, normal, names, origins = _generate(
            synthetic_shapes, synthetic_points, meshes_dir, meshes, mesh_points, modelnet,
            range_scans, tuple(range_scan_points), seed, cache_dir,
        )  # fmt: skip
        if not names:
            raise ValueError("build_dense_clouds: no source gave any cloud")
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in pos])]).astype(np.int64)
        save_npz(
            path,
            pos=np.concatenate(pos).astype(np.float32),
            normal=np.concatenate(normal).astype(np.float16),
            offsets=offsets,
            names=np.array(names),
            origins=np.array(origins, dtype=np.float64).reshape(-1, 3),
        )
    a = load_npz(path)
    return DenseClouds(a["pos"], a["normal"], a["offsets"], a["names"], a["origins"])


def _generate(
    synthetic_shapes: int, synthetic_points: int, meshes_dir: str | Path | None,
    meshes: list[str], mesh_points: int, modelnet: str | Path | None, range_scans: int,
    range_scan_points: tuple[int, int], seed: int, cache_dir: str | Path,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[np.ndarray]]:  # fmt: skip
    from pointnormals.data.modelnet import ModelNet40
    from pointnormals.data.synthetic import generate_shape

    pos, normal, names, origins = [], [], [], []
    none = np.full(3, np.nan)
    for i in range(synthetic_shapes):
        rng = np.random.default_rng([seed, 101, i])  # not the benchmark's seeds
        p, n, kind = generate_shape(rng, synthetic_points)
        pos.append(p), normal.append(n), names.append(f"synthetic/{i:04d}-{kind}")
        origins.append(none)
    for i, stem in enumerate(meshes):
        mesh = o3d.read_triangle_mesh(Path(meshes_dir) / f"{stem}.obj")
        p, n = sample_mesh(mesh, mesh_points, np.random.default_rng(seed * 1000 + i))
        pos.append(p), normal.append(n), names.append(f"mesh/{stem}"), origins.append(none)
        rng = np.random.default_rng([seed, 202, i])
        for v, (p, n, origin) in enumerate(
            random_range_scans(mesh, range_scans, range_scan_points, rng)
        ):
            pos.append(p), normal.append(n), names.append(f"scan/{stem}-{v}")
            origins.append(origin)
    if modelnet is not None:
        dataset = ModelNet40(modelnet, "train", cache_dir)
        for i, name in enumerate(dataset.names):
            p, n = dataset.load(i)
            pos.append(p), normal.append(n.astype(np.float32)), names.append(f"modelnet/{name}")
            origins.append(none)
    return pos, normal, names, origins
