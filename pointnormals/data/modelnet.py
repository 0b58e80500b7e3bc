r"""ModelNet40 in either of its two published layouts, cached per shape.

* ``off``: the official mesh archive (``ModelNet40.zip``),
  ``ModelNet40/<class>/{train,test}/<class>_NNNN.off``. Each mesh is read with Open3D
  (glued ``OFF490 518 0`` headers included) and sampled once to ``num_points`` points
  with face normals (seeded by the shape name).
* ``resampled``: PointNet++'s ``modelnet40_normal_resampled/`` with
  ``<class>/<class>_NNNN.txt`` rows ``x,y,z,nx,ny,nz``, ``modelnet40_shape_names.txt``
  and ``modelnet40_{train,test}.txt``. Its clouds are y-up; they are rotated to z-up
  (:math:`(x, y, z) \mapsto (x, -z, y)`, a proper rotation) like the mesh archive.

Each shape is cached on first access as a compact ``.npz`` (``pos`` float32,
``normal`` float16) under ``<cache_dir>/modelnet40/<layout>-<key>/``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from pointnormals.pyg import Data

from pointnormals import o3d
from pointnormals.data.cache import load_npz, params_key, save_npz
from pointnormals.data.mesh import sample_mesh

__all__ = ["LAYOUTS", "ModelNet40", "detect_layout"]

LAYOUTS = ("off", "resampled")
_EXPECTED = (
    "expected the mesh archive layout ModelNet40/<class>/{train,test}/<class>_NNNN.off or "
    "PointNet++'s modelnet40_normal_resampled/ (modelnet40_shape_names.txt, "
    "<class>/<class>_NNNN.txt); get one with "
    "`python scripts/download_modelnet40.py --layout off|resampled`"
)
_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """Find which layout ``root`` (or its ``ModelNet40/`` / resampled child) holds.

    Returns:
        ``(layout, directory)`` with ``layout`` in :data:`LAYOUTS`.

    Raises:
        ValueError: one line saying what was expected and how to get it.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"ModelNet40 root {root} does not exist: {_EXPECTED}")
    for candidate in (root, root / "modelnet40_normal_resampled", root / "ModelNet40"):
        if (candidate / "modelnet40_shape_names.txt").is_file():
            return "resampled", candidate
        if any(candidate.glob("*/train/*.off")) or any(candidate.glob("*/test/*.off")):
            return "off", candidate
    raise ValueError(f"ModelNet40 root {root} has no recognised layout: {_EXPECTED}")


class ModelNet40(Dataset):
    """ModelNet40 shapes with ground-truth normals, z-up, in original units.

    Args:
        root: dataset directory (either layout, auto-detected).
        split: ``train`` or ``test``.
        cache_dir: directory of the per-shape cache (``<cache_dir>/modelnet40/...``).
        num_points: points sampled per mesh (``off`` layout only; the resampled layout
            keeps its 10 000 points).

    Items are :class:`~torch_geometric.data.Data` with ``pos`` ``(N, 3)`` and unit
    ``normal`` ``(N, 3)`` (float32), the class index ``y`` ``(1,)`` and ``name``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cache_dir: str | Path = "data",
        num_points: int = 10_000,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"unknown ModelNet40 split {split!r}, expected 'train' or 'test'")
        self.layout, self.root = detect_layout(root)
        self.split, self.num_points = split, num_points
        if self.layout == "resampled":
            self.classes, self.items = self._index_resampled()
        else:
            self.classes, self.items = self._index_off()
        points = num_points if self.layout == "off" else None
        key = params_key(root=str(self.root.resolve()), num_points=points)
        self.cache_dir = Path(cache_dir) / "modelnet40" / f"{self.layout}-{key}"

    def _index_resampled(self) -> tuple[list[str], list[tuple[str, int, Path]]]:
        classes = _read_list(self.root / "modelnet40_shape_names.txt")
        index = {name: i for i, name in enumerate(classes)}
        items = []
        for name in _read_list(self.root / f"modelnet40_{self.split}.txt"):
            cls = name.rsplit("_", 1)[0]
            path = self.root / cls / f"{name}.txt"
            if cls not in index or not path.is_file():
                raise ValueError(
                    f"{path}: listed in modelnet40_{self.split}.txt but missing ({_EXPECTED})"
                )
            items.append((name, index[cls], path))
        return classes, items

    def _index_off(self) -> tuple[list[str], list[tuple[str, int, Path]]]:
        classes = sorted(p.name for p in self.root.iterdir() if (p / "train").is_dir())
        items = [
            (path.stem, i, path)
            for i, cls in enumerate(classes)
            for path in sorted((self.root / cls / self.split).glob("*.off"))
        ]
        if not items:
            raise ValueError(f"ModelNet40 root {self.root} has no {self.split} meshes: {_EXPECTED}")
        return classes, items

    @property
    def names(self) -> list[str]:
        """Shape names such as ``airplane_0001``, in item order."""
        return [name for name, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(N, 3)`` and normals ``(N, 3)`` of a shape, read from or into the cache."""
        name, _, path = self.items[index]
        cached = self.cache_dir / f"{name}.npz"
        if cached.is_file():
            arrays = load_npz(cached)
            return arrays["pos"], arrays["normal"]
        if self.layout == "resampled":
            pos, normal = o3d.read_point_cloud(path)
            if normal is None:
                raise ValueError(f"{path}: expected 6 columns x,y,z,nx,ny,nz, got 3")
            pos, normal = pos @ _Y_UP_TO_Z_UP.T, normal @ _Y_UP_TO_Z_UP.T
        else:
            mesh = o3d.read_triangle_mesh(path)
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            pos, normal = sample_mesh(mesh, self.num_points, rng)
        length = np.linalg.norm(normal, axis=1, keepdims=True)
        valid = length[:, 0] > 1e-6  # drop points without a usable normal
        if not valid.any():
            raise ValueError(f"{path}: no point has a non-zero normal")
        pos = pos[valid].astype(np.float32)
        normal = (normal[valid] / length[valid]).astype(np.float16)
        save_npz(cached, pos=pos, normal=normal)
        return pos, normal

    def __getitem__(self, index: int) -> Data:
        pos, normal = self.load(index)
        normal_t = torch.from_numpy(normal.astype(np.float32))
        normal_t = normal_t / normal_t.norm(dim=-1, keepdim=True)
        name, label, _ = self.items[index]
        y = torch.tensor([label], dtype=torch.long)
        return Data(pos=torch.from_numpy(pos), normal=normal_t, y=y, name=name)


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"{path}: missing ({_EXPECTED})")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
