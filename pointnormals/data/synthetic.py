r"""Procedural shapes with exact normals: the offline default dataset.

Every shape is one of four families, built from Open3D primitives (sphere, box,
cylinder, cone, torus, capsule, tetra-/octa-/icosa-/dodecahedron):

* ``primitive``: one primitive (boxes may be thin plates, cylinders thin rods);
* ``affine``: a primitive under a random linear map :math:`A = R_1 \mathrm{diag}(s) R_2`;
* ``displaced``: a subdivided primitive with a smooth random displacement along its
  vertex normals, :math:`v \mapsto v + f(v)\, n_v`,
  :math:`f(x) = \sum_k a_k \sin(\omega_k \cdot x + \varphi_k)`;
* ``union``: 2-4 transformed primitives attached to each other; points of one part
  that lie inside another are discarded, which leaves the surface of the union with
  its sharp intersection creases and thin parts.

Points are sampled uniformly on the faces with the exact face normal (outward).
Shape ``i`` of a split depends only on ``(seed, split, i)``; a generated split is cached
as one ``.npz`` under ``<root>/synthetic/`` keyed by all its parameters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from pointnormals.pyg import Data

from pointnormals import o3d
from pointnormals.data.cache import load_npz, params_key, save_npz
from pointnormals.data.mesh import Mesh, sample_mesh
from pointnormals.geometry import haar_orthogonal

__all__ = ["FAMILIES", "SHAPES", "SyntheticShapes", "generate_shape", "random_primitive"]

SHAPES = (
    "sphere",
    "box",
    "cylinder",
    "cone",
    "torus",
    "capsule",
    "tetrahedron",
    "octahedron",
    "icosahedron",
    "dodecahedron",
)
FAMILIES = ("primitive", "affine", "displaced", "union")
_FAMILY_PROB = (0.15, 0.25, 0.25, 0.35)
_SPLITS = {"train": 0, "val": 1, "test": 2}
_VERSION = 1  # bump when the generator changes: old caches are then ignored


def _centred(mesh: Mesh) -> Mesh:
    box_centre = (mesh.vertices.min(0) + mesh.vertices.max(0)) / 2
    return Mesh(mesh.vertices - box_centre, mesh.triangles)


def _dodecahedron() -> Mesh:
    phi = (1 + math.sqrt(5)) / 2
    cube = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    ring = [(0, a / phi, b * phi) for a in (-1, 1) for b in (-1, 1)]
    cyc = [p for r in ring for p in (r, (r[1], r[2], r[0]), (r[2], r[0], r[1]))]
    return o3d.convex_hull(np.array(cube + cyc, dtype=np.float64) / math.sqrt(3))


def _capsule(radius: float, length: float) -> Mesh:
    """A sphere cut at its equator and pulled apart (odd resolution: no equator ring)."""
    sphere = o3d.primitive_mesh("sphere", radius=radius, resolution=41)
    v = sphere.vertices.copy()
    v[:, 2] += np.sign(v[:, 2]) * length / 2
    return Mesh(v, sphere.triangles)


def random_primitive(rng: np.random.Generator, thin_prob: float = 0.3) -> tuple[str, Mesh]:
    """A random primitive of size about 1, centred, with random proportions."""
    name = SHAPES[rng.integers(len(SHAPES))]
    thin = rng.random() < thin_prob
    u = rng.uniform
    if name == "sphere":
        mesh = o3d.primitive_mesh("sphere", radius=1.0, resolution=40)
    elif name == "box":
        extents = u(0.2, 1.5, 3)
        if thin:  # a plate
            extents[rng.integers(3)] = u(0.02, 0.06)
        mesh = o3d.primitive_mesh("box", width=extents[0], height=extents[1], depth=extents[2])
    elif name == "cylinder":
        radius = u(0.02, 0.06) if thin else u(0.2, 0.7)
        kw = {"height": u(0.5, 2.0), "resolution": 64, "split": 4}
        mesh = o3d.primitive_mesh("cylinder", radius=radius, **kw)
    elif name == "cone":
        kw = {"height": u(0.5, 2.0), "resolution": 64, "split": 4}
        mesh = o3d.primitive_mesh("cone", radius=u(0.3, 1.0), **kw)
    elif name == "torus":
        tube = u(0.04, 0.08) if thin else u(0.15, 0.5)
        kw = {"radial_resolution": 64, "tubular_resolution": 32}
        mesh = o3d.primitive_mesh("torus", torus_radius=1.0, tube_radius=tube, **kw)
    elif name == "capsule":
        mesh = _capsule(u(0.05, 0.1) if thin else u(0.2, 0.6), u(0.5, 1.5))
    elif name == "dodecahedron":
        mesh = _dodecahedron()
    else:
        mesh = o3d.primitive_mesh(name, radius=1.0)
    return name, _centred(mesh)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q = haar_orthogonal(rng.normal(size=(3, 3)))
    return q if np.linalg.det(q) > 0 else -q


def _affine(rng: np.random.Generator, low: float = 0.4, high: float = 1.6) -> np.ndarray:
    stretch = np.exp(rng.uniform(math.log(low), math.log(high), 3))
    return _rotation(rng) @ np.diag(stretch) @ _rotation(rng)


def _displaced(mesh: Mesh, rng: np.random.Generator, target_faces: int = 8000) -> Mesh:
    iterations = max(0, math.ceil(math.log(target_faces / len(mesh.triangles), 4)))
    mesh = o3d.subdivide(mesh, iterations) if iterations else mesh
    num_waves = 6
    omega = rng.normal(size=(num_waves, 3)) * rng.uniform(1.0, 3.0)
    phase = rng.uniform(0, 2 * np.pi, num_waves)
    amplitude = rng.uniform(0.03, 0.12) / math.sqrt(num_waves)
    field = amplitude * np.sin(mesh.vertices @ omega.T + phase).sum(1)  # (V,)
    normals = o3d.vertex_normals(mesh)
    return Mesh(mesh.vertices + field[:, None] * normals, mesh.triangles)


def _sample_union(
    parts: list[Mesh], num_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform samples of the boundary of the union of closed ``parts``."""
    area = np.array([_area(p) for p in parts])
    points, normals, total = [], [], 0
    while total < num_points:
        counts = rng.multinomial(2 * num_points, area / area.sum())
        for i, (part, count) in enumerate(zip(parts, counts, strict=True)):
            p, n = sample_mesh(part, int(count), rng)
            outside = np.ones(len(p), dtype=bool)
            for j, other in enumerate(parts):
                if j != i:
                    outside &= ~o3d.inside_mesh(other, p)
            points.append(p[outside])
            normals.append(n[outside])
            total += int(outside.sum())
    keep = rng.choice(total, num_points, replace=False)
    return np.concatenate(points)[keep], np.concatenate(normals)[keep]


def _area(mesh: Mesh) -> float:
    a, b, c = (mesh.vertices[mesh.triangles[:, i]] for i in range(3))
    return float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)


def generate_shape(rng: np.random.Generator, num_points: int) -> tuple[np.ndarray, np.ndarray, str]:
    """One random shape: ``points`` ``(num_points, 3)``, unit ``normals``, a label."""
    family = FAMILIES[rng.choice(len(FAMILIES), p=_FAMILY_PROB)]
    if family == "union":
        parts, names, anchors = [], [], np.zeros((1, 3))
        for _ in range(rng.integers(2, 5)):
            name, mesh = random_primitive(rng)
            offset = anchors[rng.integers(len(anchors))]
            mesh = mesh.transformed(_affine(rng) * rng.uniform(0.3, 0.8), offset)
            parts.append(mesh)
            names.append(name)
            anchors = np.concatenate([anchors, mesh.vertices])
        points, normals = _sample_union(parts, num_points, rng)
        return points, normals, "union-" + "-".join(names)
    name, mesh = random_primitive(rng, thin_prob=0.3 if family == "primitive" else 0.15)
    if family == "affine":
        mesh = mesh.transformed(_affine(rng))
    elif family == "displaced":
        mesh = _displaced(mesh, rng)
    points, normals = sample_mesh(mesh, num_points, rng)
    return points, normals, f"{family}-{name}"


class SyntheticShapes(Dataset):
    """A deterministic, cached set of synthetic shapes.

    Args:
        root: data directory; the cache goes to ``<root>/synthetic/``.
        split: ``train``, ``val`` or ``test`` (independent shapes).
        num_shapes: number of shapes.
        num_points: points sampled per shape.
        seed: generator seed.

    Items are :class:`~torch_geometric.data.Data` with ``pos`` ``(num_points, 3)``,
    unit ``normal`` ``(num_points, 3)`` (float32), ``y = -1`` (no class) and ``name``.
    """

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        num_shapes: int = 256,
        num_points: int = 4096,
        seed: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r}, expected one of {tuple(_SPLITS)}")
        key = params_key(v=_VERSION, split=split, n=num_shapes, p=num_points, seed=seed)
        self.path = Path(root) / "synthetic" / f"{split}-{num_shapes}x{num_points}-{key}.npz"
        if not self.path.is_file():
            save_npz(self.path, **self.generate(split, num_shapes, num_points, seed))
        arrays = load_npz(self.path)
        self.pos = torch.from_numpy(arrays["pos"])
        self.normal = torch.from_numpy(arrays["normal"].astype(np.float32))
        self.names = [f"synthetic/{split}/{i:04d}-{k}" for i, k in enumerate(arrays["kind"])]

    @staticmethod
    def generate(split: str, num_shapes: int, num_points: int, seed: int) -> dict:
        """The arrays of a split: ``pos`` float32, ``normal`` float16, ``kind`` str."""
        pos = np.empty((num_shapes, num_points, 3), dtype=np.float32)
        normal = np.empty((num_shapes, num_points, 3), dtype=np.float16)
        kinds = []
        for i in range(num_shapes):
            rng = np.random.default_rng([seed, _SPLITS[split], i])
            p, n, kind = generate_shape(rng, num_points)
            pos[i], normal[i] = p, n
            kinds.append(kind)
        return {"pos": pos, "normal": normal, "kind": np.array(kinds)}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Data:
        normal = self.normal[index]
        normal = normal / normal.norm(dim=-1, keepdim=True)
        y = torch.full((1,), -1, dtype=torch.long)
        return Data(pos=self.pos[index].clone(), normal=normal, y=y, name=self.names[index])
