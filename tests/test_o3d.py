"""Open3D touch points: point-cloud and mesh files, sampling, PCA normals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointnormals import o3d
from pointnormals.data.mesh import sample_mesh
from pointnormals.geometry import angle_deg

CUBE_OFF = """{header}
0 0 0
1 0 0
1 1 0
0 1 0
0 0 1
1 0 1
1 1 1
0 1 1
3 0 2 1
3 0 3 2
3 4 5 6
3 4 6 7
3 0 1 5
3 0 5 4
3 2 3 7
3 2 7 6
3 1 2 6
3 1 6 5
3 0 4 7
3 0 7 3
"""


def write_cube_off(path: Path, glued: bool) -> Path:
    """A unit cube ``[0, 1]^3`` as ``.off``, with a normal or a glued header."""
    header = "OFF8 12 0" if glued else "OFF\n8 12 0"
    path.write_text(CUBE_OFF.format(header=header))
    return path


def sphere_points(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def test_importing_the_package_does_not_import_open3d_or_lightning():
    code = (
        "import sys, pointnormals.o3d, pointnormals.data;"
        "print('open3d' in sys.modules, 'lightning' in sys.modules);"
        "import pointnormals.data.datamodule;"
        "print('open3d' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".xyzn", ".txt"])
def test_point_cloud_round_trip_keeps_normals(tmp_path, suffix):
    points = np.random.default_rng(0).normal(size=(100, 3))
    normals = sphere_points(100, seed=1)
    path = tmp_path / f"cloud{suffix}"
    o3d.write_point_cloud(path, points, normals)
    points_read, normals_read = o3d.read_point_cloud(path)
    np.testing.assert_allclose(points_read, points, atol=1e-5)
    assert normals_read is not None
    np.testing.assert_allclose(normals_read, normals, atol=1e-5)


def test_xyz_has_no_normals_and_refuses_to_drop_them(tmp_path):
    points = np.random.default_rng(0).normal(size=(50, 3))
    o3d.write_point_cloud(tmp_path / "a.xyz", points)
    points_read, normals_read = o3d.read_point_cloud(tmp_path / "a.xyz")
    np.testing.assert_allclose(points_read, points, atol=1e-5)
    assert normals_read is None
    with pytest.raises(ValueError, match=r"\.xyzn"):
        o3d.write_point_cloud(tmp_path / "b.xyz", points, sphere_points(50))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.ply", None, "no such file"),
        ("empty.ply", "", "no points"),
        ("bad.txt", "1,2,3\n4,5,oops\n", "malformed"),
        ("cols.txt", "1,2,3,4\n5,6,7,8\n", "expected rows"),
        ("cloud.obj", "v 0 0 0\n", "unsupported suffix"),
    ],
)
def test_bad_point_cloud_files_raise_one_line_value_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        o3d.read_point_cloud(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_glued_off_header_is_read_like_a_regular_one(tmp_path):
    glued = write_cube_off(tmp_path / "glued.off", glued=True)
    regular = write_cube_off(tmp_path / "regular.off", glued=False)
    # the quirk is real: plain Open3D returns an empty mesh for the glued header
    assert len(o3d._open3d().io.read_triangle_mesh(str(glued)).triangles) == 0
    mesh_glued, mesh_regular = o3d.read_triangle_mesh(glued), o3d.read_triangle_mesh(regular)
    assert mesh_glued.vertices.shape == (8, 3) and mesh_glued.triangles.shape == (12, 3)
    np.testing.assert_array_equal(mesh_glued.vertices, mesh_regular.vertices)
    np.testing.assert_array_equal(mesh_glued.triangles, mesh_regular.triangles)


@pytest.mark.parametrize("content", ["", "OFF\n", "garbage\n1 2 3\n", "OFF\n3 1 0\n0 0 0\n"])
def test_bad_mesh_files_raise_value_error(tmp_path, content):
    path = tmp_path / "bad.off"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"bad\.off"):
        o3d.read_triangle_mesh(path)
    with pytest.raises(ValueError, match="no such file"):
        o3d.read_triangle_mesh(tmp_path / "missing.off")


def test_sample_mesh_is_uniform_on_the_surface_with_face_normals(tmp_path):
    box = o3d.primitive_mesh("box", width=1.0, height=2.0, depth=3.0)
    points, normals = sample_mesh(box, 60_000, np.random.default_rng(0))
    extent = np.array([1.0, 2.0, 3.0])
    on_face = np.isclose(points, 0, atol=1e-9) | np.isclose(points, extent, atol=1e-9)
    assert on_face.any(1).all()  # every point lies on a face
    axis = np.abs(normals).argmax(1)
    assert on_face[np.arange(len(points)), axis].all()  # ... the face of its normal
    outward = np.where(np.isclose(points[np.arange(len(points)), axis], 0), -1, 1)
    np.testing.assert_allclose(normals[np.arange(len(points)), axis], outward)
    # uniform: the share of points with normal along x, y, z is proportional to area
    area = np.array([2 * 3, 1 * 3, 1 * 2], dtype=float)
    share = np.bincount(axis, minlength=3) / len(points)
    np.testing.assert_allclose(share, area / area.sum(), atol=0.01)
    again, _ = sample_mesh(box, 60_000, np.random.default_rng(0))
    np.testing.assert_array_equal(points, again)


def test_reflected_mesh_keeps_outward_normals():
    sphere = o3d.primitive_mesh("sphere", radius=1.0, resolution=20)
    mirrored = sphere.transformed(np.diag([-1.0, 1.0, 1.0]), offset=np.array([2.0, 0, 0]))
    points, normals = sample_mesh(mirrored, 2000, np.random.default_rng(0))
    assert (((points - [2.0, 0, 0]) * normals).sum(1) > 0).all()


def test_convex_hull_is_closed_and_outward():
    hull = o3d.convex_hull(sphere_points(200))
    points, normals = sample_mesh(hull, 3000, np.random.default_rng(0))
    assert ((points * normals).sum(1) > 0).all()
    assert o3d.inside_mesh(hull, np.zeros((1, 3)))[0]


def test_inside_mesh():
    sphere = o3d.primitive_mesh("sphere", radius=1.0, resolution=20)
    query = sphere_points(200) * np.r_[np.full(100, 0.5), np.full(100, 1.5)][:, None]
    np.testing.assert_array_equal(o3d.inside_mesh(sphere, query), np.arange(200) < 100)


def test_subdivide_and_vertex_normals():
    sphere = o3d.primitive_mesh("sphere", radius=1.0, resolution=10)
    fine = o3d.subdivide(sphere, 2)
    assert len(fine.triangles) == 16 * len(sphere.triangles)
    normals = o3d.vertex_normals(fine)
    radial = fine.vertices / np.linalg.norm(fine.vertices, axis=1, keepdims=True)
    assert np.median((normals * radial).sum(1)) > 0.99
    with pytest.raises(ValueError, match="unknown primitive"):
        o3d.primitive_mesh("teapot")


def test_pca_normals_on_plane_and_sphere():
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(-1, 1, (2000, 2)), np.zeros(2000)].astype(np.float32)
    normals = o3d.estimate_normals_pca(plane, k=20)
    assert normals.dtype == np.float32 and normals.shape == (2000, 3)
    np.testing.assert_allclose(np.abs(normals[:, 2]), 1, atol=1e-5)
    sphere = sphere_points(5000)
    angle = angle_deg(o3d.estimate_normals_pca(sphere, k=30), sphere)
    assert np.median(angle) < 2
