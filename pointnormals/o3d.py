"""What the package asks of Open3D: point-cloud and mesh files, primitives, PCA normals.

Open3D is imported lazily (:func:`_open3d`), so importing :mod:`pointnormals` never
loads it. Every function takes and returns plain NumPy arrays or the small
:class:`~pointnormals.data.mesh.Mesh` value object; no Open3D type leaks out.
(:mod:`pointnormals.cloudio` reads and writes the files of ``predict.py``, keeping
every attribute; the mesh sampling is in :mod:`pointnormals.data.mesh`.)

Errors on unreadable or malformed files are :class:`ValueError` with a one-line
message that names the file and the problem.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pointnormals.data.mesh import Mesh

__all__ = [
    "POINT_CLOUD_SUFFIXES",
    "available",
    "cast_rays",
    "convex_hull",
    "estimate_normals_pca",
    "inside_mesh",
    "primitive_mesh",
    "read_point_cloud",
    "read_triangle_mesh",
    "subdivide",
    "vertex_normals",
    "write_point_cloud",
]

POINT_CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".pts", ".txt")
_PRIMITIVES = tuple("sphere box cylinder cone torus tetrahedron octahedron icosahedron".split())


def _open3d() -> ModuleType:
    """Import Open3D on first use (it is slow to import and needs ``libusb-1.0``)."""
    import open3d

    return open3d


def available() -> bool:
    """Whether Open3D imports here (a GPU image may hold PyTorch and lack Open3D)."""
    try:
        _open3d()
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Open3D warnings; failures are detected and raised by the caller."""
    o3d = _open3d()
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        yield


def _to_legacy(mesh: Mesh) -> Any:
    o3d = _open3d()
    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.ascontiguousarray(mesh.vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.ascontiguousarray(mesh.triangles, dtype=np.int32)),
    )


def _mesh(vertices: np.ndarray, triangles: np.ndarray) -> Mesh:
    from pointnormals.data.mesh import Mesh  # not at import time: pointnormals.data uses us

    return Mesh(vertices, triangles)


def _from_legacy(mesh: Any) -> Mesh:
    vertices = np.asarray(mesh.vertices, dtype=np.float64).copy()
    return _mesh(vertices, np.asarray(mesh.triangles, dtype=np.int64).copy())


def read_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read points and, when the file has them, normals.

    ``.txt`` is read with NumPy (comma- or space-separated ``x y z [nx ny nz]``, the
    ``modelnet40_normal_resampled`` format); the other suffixes go through Open3D.

    Returns:
        ``points`` ``(N, 3)`` float64 and ``normals`` ``(N, 3)`` float64 or ``None``.
    """
    path = Path(path)
    if path.suffix.lower() not in POINT_CLOUD_SUFFIXES:
        raise ValueError(f"{path}: unsupported suffix, expected one of {POINT_CLOUD_SUFFIXES}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".txt":
        return _read_txt(path)
    with _quiet():
        cloud = _open3d().io.read_point_cloud(str(path))
    points = np.asarray(cloud.points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError(f"{path}: no points could be read (empty or malformed file)")
    normals = np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None
    return points, normals


def _read_txt(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with path.open() as f:
        delimiter = "," if "," in f.readline() else None
    try:
        table = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: malformed point table ({str(err).splitlines()[0]})") from None
    if table.shape[0] == 0 or table.shape[1] not in (3, 6):
        raise ValueError(f"{path}: expected rows 'x,y,z[,nx,ny,nz]', got shape {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError(f"{path}: non-finite values")
    return table[:, :3].copy(), (table[:, 3:].copy() if table.shape[1] == 6 else None)


def write_point_cloud(
    path: str | Path, points: np.ndarray, normals: np.ndarray | None = None
) -> None:
    """Write points (and normals) to ``.ply``/``.pcd``/``.xyzn``/``.xyz``/``.pts``/``.txt``.

    Open3D's ``.xyz`` writer silently drops normals, so writing normals to ``.xyz`` is
    refused: use ``.xyzn``, ``.ply`` or ``.txt`` (``x,y,z,nx,ny,nz`` rows).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_CLOUD_SUFFIXES:
        raise ValueError(f"{path}: unsupported suffix, expected one of {POINT_CLOUD_SUFFIXES}")
    if normals is not None and suffix in (".xyz", ".pts"):
        raise ValueError(f"{path}: {suffix} cannot store normals, use .xyzn, .ply or .txt")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".txt":
        table = points if normals is None else np.hstack([points, np.reshape(normals, (-1, 3))])
        np.savetxt(path, table, fmt="%.6f", delimiter=",")
        return
    o3d = _open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64).reshape(-1, 3))
    if not o3d.io.write_point_cloud(str(path), cloud):
        raise ValueError(f"{path}: Open3D could not write the point cloud")


def read_triangle_mesh(path: str | Path) -> Mesh:
    """Read a triangle mesh (``.off``, ``.obj``, ``.ply``, ``.stl`` …).

    ModelNet40 ships ``.off`` files whose keyword is glued to the counts
    (``OFF490 518 0``); Open3D reads those as an empty mesh, so such a header is
    rewritten into a temporary copy first.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with contextlib.ExitStack() as stack:
        source = path
        if path.suffix.lower() == ".off":
            source = _fixed_off(path, stack)
        with _quiet():
            legacy = _open3d().io.read_triangle_mesh(str(source))
    mesh = _from_legacy(legacy)
    if len(mesh.vertices) == 0 or len(mesh.triangles) == 0:
        raise ValueError(f"{path}: no triangles could be read (empty or malformed mesh)")
    if mesh.triangles.max() >= len(mesh.vertices) or not np.isfinite(mesh.vertices).all():
        raise ValueError(f"{path}: invalid vertex indices or coordinates")
    return mesh


def _fixed_off(path: Path, stack: contextlib.ExitStack) -> Path:
    """``path`` itself, or a temporary copy whose glued ``OFFv f e`` header is split."""
    with path.open("rb") as f:
        head = f.readline().strip()
        if not head.startswith(b"OFF") or head == b"OFF":
            return path  # a regular header (or not OFF at all: Open3D will say so)
        rest = head[3:]
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory())) / path.name
        with tmp.open("wb") as out:
            out.write(b"OFF\n" + rest + b"\n")
            out.write(f.read())
    return tmp


def primitive_mesh(name: str, **params: Any) -> Mesh:
    """An Open3D primitive, e.g. ``primitive_mesh("torus", torus_radius=1, tube_radius=.3)``.

    Args:
        name: one of ``sphere, box, cylinder, cone, torus, tetrahedron, octahedron,
            icosahedron`` (``TriangleMesh.create_<name>``).
        **params: keyword arguments of the Open3D constructor.
    """
    if name not in _PRIMITIVES:
        raise ValueError(f"unknown primitive {name!r}, expected one of {_PRIMITIVES}")
    o3d = _open3d()
    return _from_legacy(getattr(o3d.geometry.TriangleMesh, f"create_{name}")(**params))


def convex_hull(points: np.ndarray) -> Mesh:
    """The convex hull of ``points`` ``(N, 3)`` as a closed, outward-oriented mesh."""
    o3d = _open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    hull = _from_legacy(cloud.compute_convex_hull()[0])
    # make every face normal point away from the centroid (the hull is convex)
    a, b, c = (hull.vertices[hull.triangles[:, i]] for i in range(3))
    outward = np.einsum("fi,fi->f", np.cross(b - a, c - a), a - hull.vertices.mean(0)) > 0
    triangles = np.where(outward[:, None], hull.triangles, hull.triangles[:, ::-1])
    return _mesh(hull.vertices, triangles)


def subdivide(mesh: Mesh, iterations: int = 1) -> Mesh:
    """Midpoint subdivision: every triangle becomes four, the surface is unchanged."""
    return _from_legacy(_to_legacy(mesh).subdivide_midpoint(number_of_iterations=iterations))


def vertex_normals(mesh: Mesh) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of ``mesh``."""
    legacy = _to_legacy(mesh)
    legacy.compute_vertex_normals()
    return np.asarray(legacy.vertex_normals, dtype=np.float64).copy()


def inside_mesh(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """Boolean mask ``(N,)``: which ``points`` lie strictly inside the closed ``mesh``."""
    o3d = _open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, dtype=np.uint32)),
    )
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return scene.compute_occupancy(query, nthreads=1).numpy() > 0.5


def cast_rays(
    mesh: Mesh, origins: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The first hit of every ray on ``mesh`` (Open3D's ``RaycastingScene``, float32).

    Args:
        mesh: the triangles.
        origins: ``(R, 3)`` ray origins.
        directions: ``(R, 3)`` unit ray directions.

    Returns:
        ``distance`` ``(R,)`` along the ray (``inf`` where it misses) and the unit
        ``normals`` ``(R, 3)`` of the triangles hit (float64; unoriented).
    """
    o3d = _open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, dtype=np.uint32)),
    )
    rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
    hits = scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)))
    distance = hits["t_hit"].numpy().astype(np.float64)
    normals = hits["primitive_normals"].numpy().astype(np.float64)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return distance, normals / np.where(length > 0, length, 1.0)


def estimate_normals_pca(points: np.ndarray, k: int = 30) -> np.ndarray:
    r"""Classical PCA normals: Open3D ``estimate_normals`` with a kNN search.

    The normal of :math:`p_i` is the eigenvector of the smallest eigenvalue of the
    covariance of its :math:`k` nearest neighbours,
    :math:`C_i = \frac1k\sum_j (p_j - \bar p_i)(p_j - \bar p_i)^\top`. The sign is
    arbitrary (unoriented).

    Args:
        points: ``(N, 3)`` array.
        k: neighbourhood size.

    Returns:
        Unit normals ``(N, 3)`` in the floating dtype of ``points`` (float64 otherwise).
    """
    points = np.asarray(points)
    dtype = points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64
    o3d = _open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    return np.asarray(cloud.normals).astype(dtype)
