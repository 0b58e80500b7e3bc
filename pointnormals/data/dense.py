"""Dense clouds with exact normals, generated once and cached: what scan patches are cut from.

Three sources, each optional:

* synthetic shapes (:func:`~pointnormals.data.synthetic.generate_shape`), sampled at
  ``synthetic_points``; seeds of the ``train`` split only (benchmarks use other seeds);
* the shared triangle meshes (``../shared/data/meshes``) sampled at ``mesh_points``,
  except those in :data:`HELDOUT_MESHES`, which the accuracy benchmark keeps for itself;
* ModelNet40 shapes (10k points each in the resampled layout).

All clouds are stored in one ``.npz``: concatenated ``pos`` float32 and ``normal``
float16, with ``offsets`` (start of every cloud) and ``names``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointnormals import o3d
from pointnormals.data.cache import load_npz, params_key, save_npz
from pointnormals.data.mesh import sample_mesh

__all__ = ["HELDOUT_MESHES", "DenseClouds", "build_dense_clouds", "mesh_names"]

HELDOUT_MESHES = ("nefertiti", "rocker-arm", "spot")
"""Meshes never trained on: a museum scan, a CAD part, a sculpted figure."""

_VERSION = 1


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


@dataclass(frozen=True)
class DenseClouds:
    """Variable-size clouds in flat arrays.

    Shapes:
        pos: ``(M, 3)`` float32, normal: ``(M, 3)`` float16 (unit up to rounding),
        offsets: ``(C + 1,)`` int64, names: ``(C,)`` str.
    """

    pos: np.ndarray
    normal: np.ndarray
    offsets: np.ndarray
    names: np.ndarray

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


def build_dense_clouds(
    cache_dir: str | Path,
    synthetic_shapes: int = 96,
    synthetic_points: int = 100_000,
    meshes_dir: str | Path | None = None,
    mesh_points: int = 300_000,
    modelnet_root: str | Path | None = None,
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
        seed: generation seed.
    """
    meshes = mesh_names(meshes_dir) if meshes_dir else []
    modelnet = modelnet_root if modelnet_root and Path(modelnet_root).is_dir() else None
    key = params_key(
        v=_VERSION, s=synthetic_shapes, sp=synthetic_points, m=meshes, mp=mesh_points,
        mn=str(modelnet), seed=seed,
    )  # fmt: skip
    path = Path(cache_dir) / "dense" / f"dense-{key}.npz"
    if not path.is_file():
        pos, normal, names = _generate(
            synthetic_shapes, synthetic_points, meshes_dir, meshes, mesh_points, modelnet, seed,
            cache_dir,
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
        )
    arrays = load_npz(path)
    return DenseClouds(arrays["pos"], arrays["normal"], arrays["offsets"], arrays["names"])


def _generate(
    synthetic_shapes: int, synthetic_points: int, meshes_dir: str | Path | None,
    meshes: list[str], mesh_points: int, modelnet: str | Path | None, seed: int,
    cache_dir: str | Path,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:  # fmt: skip
    from pointnormals.data.modelnet import ModelNet40
    from pointnormals.data.synthetic import generate_shape

    pos, normal, names = [], [], []
    for i in range(synthetic_shapes):
        rng = np.random.default_rng([seed, 101, i])  # not the benchmark's seeds
        p, n, kind = generate_shape(rng, synthetic_points)
        pos.append(p), normal.append(n), names.append(f"synthetic/{i:04d}-{kind}")
    for i, stem in enumerate(meshes):
        p, n = sample_mesh_file(Path(meshes_dir) / f"{stem}.obj", mesh_points, seed * 1000 + i)
        pos.append(p), normal.append(n), names.append(f"mesh/{stem}")
    if modelnet is not None:
        dataset = ModelNet40(modelnet, "train", cache_dir)
        for i, name in enumerate(dataset.names):
            p, n = dataset.load(i)
            pos.append(p), normal.append(n.astype(np.float32)), names.append(f"modelnet/{name}")
    return pos, normal, names
