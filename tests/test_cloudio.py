"""pointnormals.cloudio, PLY and text tables: every attribute survives; damage is refused.

PCD and LAS/LAZ: ``test_cloudio_pcd_las.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointnormals.cloudio import read_cloud, write_cloud

plyfile = pytest.importorskip("plyfile")
N = 500
RNG = np.random.default_rng(7)


def unit(n: int = N) -> np.ndarray:
    v = RNG.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def coloured_vertices(coord: str = "f8", n: int = N) -> np.ndarray:
    names = ("x", "y", "z", "red", "green", "blue", "intensity")
    v = np.empty(n, dtype=list(zip(names, [coord] * 3 + ["u1"] * 3 + ["f4"], strict=True)))
    for c in "xyz":
        v[c] = RNG.normal(size=n) * 1e3 + 4e6
    for c in ("red", "green", "blue"):
        v[c] = RNG.integers(0, 256, n)
    v["intensity"] = RNG.random(n)
    return v


def write_ply(path: Path, vertex: np.ndarray, *, text=False, byte_order="<", extra=()) -> Path:
    elements = [plyfile.PlyElement.describe(vertex, "vertex"), *extra]
    ply = plyfile.PlyData(elements, text=text, byte_order=byte_order, comments=["scanner A"])
    ply.obj_info = ["units mm"]
    ply.write(str(path))
    return path


def read_vertex(path: Path) -> tuple[object, np.ndarray]:
    ply = plyfile.PlyData.read(str(path))
    return ply, ply["vertex"].data


@pytest.mark.parametrize(("text", "byte_order"), [(False, "<"), (False, ">"), (True, "=")])
def test_ply_round_trip_keeps_every_field_byte_for_byte(tmp_path, text, byte_order):
    vertex = coloured_vertices()
    src = write_ply(tmp_path / "in.ply", vertex, text=text, byte_order=byte_order)
    before = src.read_bytes()
    cloud = read_cloud(src)
    assert cloud.format == "ply" and cloud.normals is None and cloud.viewpoint is None
    np.testing.assert_array_equal(cloud.points, np.column_stack([vertex[c] for c in "xyz"]))
    normals = unit()
    write_cloud(tmp_path / "out.ply", cloud, normals)
    assert src.read_bytes() == before  # the input is only read
    ply, out = read_vertex(tmp_path / "out.ply")
    assert out.dtype.names == (*vertex.dtype.names, "nx", "ny", "nz")
    for name in vertex.dtype.names:
        assert out[name].dtype.newbyteorder("=") == vertex[name].dtype, name
        assert out[name].astype(vertex[name].dtype).tobytes() == vertex[name].tobytes(), name
    assert out["nx"].dtype.kind == "f" and out["nx"].dtype.itemsize == 8  # double coordinates
    np.testing.assert_array_equal(np.column_stack([out[c] for c in ("nx", "ny", "nz")]), normals)
    assert (ply.text, ply.comments, ply.obj_info) == (text, ["scanner A"], ["units mm"])
    assert ply.byte_order == byte_order


def test_ply_existing_float32_normals_replaced_in_place(tmp_path):
    names = ("x", "y", "z", "nx", "ny", "nz", "quality")
    vertex = np.zeros(N, dtype=[(n, "f4") for n in names])
    for c in "xyz":
        vertex[c] = RNG.normal(size=N)
    vertex["nx"], vertex["quality"] = 1.0, RNG.random(N)
    cloud = read_cloud(write_ply(tmp_path / "in.ply", vertex))
    np.testing.assert_array_equal(cloud.normals, np.tile([1.0, 0, 0], (N, 1)))
    normals = unit()
    write_cloud(tmp_path / "out.ply", cloud, normals)
    _, out = read_vertex(tmp_path / "out.ply")
    assert out.dtype == vertex.dtype  # same properties, same order, still float32
    np.testing.assert_array_equal(out["ny"], normals[:, 1].astype(np.float32))
    assert out["quality"].tobytes() == vertex["quality"].tobytes()


def test_ply_faces_and_camera_kept_camera_is_viewpoint(tmp_path):
    vertex = coloured_vertices("f4", n=4)
    faces = np.array([([0, 1, 2],), ([0, 2, 3],)], dtype=[("vertex_indices", "i4", (3,))])
    cam = np.array(
        [(1.5, -2.0, 3.25, 7.0)], dtype=[(n, "f4") for n in ("view_px", "view_py", "view_pz", "k")]
    )
    extra = [
        plyfile.PlyElement.describe(faces, "face", len_types={"vertex_indices": "u1"}),
        plyfile.PlyElement.describe(cam, "camera"),
    ]
    cloud = read_cloud(write_ply(tmp_path / "in.ply", vertex, text=True, extra=extra))
    np.testing.assert_array_equal(cloud.viewpoint, [1.5, -2.0, 3.25])
    write_cloud(tmp_path / "out.ply", cloud, unit(4))
    ply = plyfile.PlyData.read(str(tmp_path / "out.ply"))
    assert [e.name for e in ply.elements] == ["vertex", "face", "camera"]
    assert [list(f) for f in ply["face"]["vertex_indices"]] == [[0, 1, 2], [0, 2, 3]]
    assert ply["camera"].data.tobytes() == cam.tobytes()
    assert ply["vertex"]["nx"].dtype == np.float32  # float coordinates -> float normals


def test_damaged_ply_is_refused(tmp_path):
    good = write_ply(tmp_path / "good.ply", coloured_vertices()).read_bytes()
    cases = {
        "short.ply": (good[:-1000], "truncated binary PLY: header says 500 'vertex'"),
        "long.ply": (good + b"\0" * 64, "data after the last element"),
        "header.ply": (good.replace(b"property uchar red", b"property uchr red"), "malformed PLY"),
        "empty.ply": (
            b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
            b"property float y\nproperty float z\nend_header\n",
            "no points",
        ),
        "nan.ply": (
            b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty "
            b"float y\nproperty float z\nend_header\n0 0 0\n1 nan 0\n",
            "non-finite",
        ),
        "word.ply": (
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty "
            b"float y\nproperty float z\nend_header\n0 zero 0\n",
            "malformed ascii PLY",
        ),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message) as err:
            read_cloud(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "sep"), [("scan.txt", ","), ("scan.xyz", " ")])
def test_tables_keep_every_column_and_insert_normals(tmp_path, name, sep):
    rows = [
        sep.join(["4000000.125", "2.5", "-1e-3", "17", "0.25"]),
        sep.join(["1", "2", "3", "18", "0.5"]),
    ]
    (tmp_path / name).write_text("\n".join(rows) + "\n")
    cloud = read_cloud(tmp_path / name)
    np.testing.assert_array_equal(cloud.points, [[4000000.125, 2.5, -1e-3], [1, 2, 3]])
    assert cloud.normals is None
    normals = np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]])
    write_cloud(tmp_path / f"out{Path(name).suffix}", cloud, normals)
    lines = (tmp_path / f"out{Path(name).suffix}").read_text().splitlines()
    assert lines == [
        sep.join(["4000000.125", "2.5", "-1e-3", "0.0", "0.6", "0.8", "17", "0.25"]),
        sep.join(["1", "2", "3", "1.0", "0.0", "0.0", "18", "0.5"]),
    ]
    again = read_cloud(tmp_path / f"out{Path(name).suffix}")
    np.testing.assert_array_equal(again.normals, normals)  # found: unit vectors in columns 3-5
    write_cloud(tmp_path / "out.ply", again, normals[::-1])
    _, vertex = read_vertex(tmp_path / "out.ply")
    np.testing.assert_array_equal(vertex["scalar_7"], [0.25, 0.5])


def test_named_table_columns_and_damaged_tables(tmp_path):
    (tmp_path / "cc.txt").write_text(
        "//X,Y,Z,R,G,B,Nx,Ny,Nz\n1,2,3,255,0,9,0,0,1\n4,5,6,1,2,3,1,0,0\n"
    )
    cloud = read_cloud(tmp_path / "cc.txt")
    np.testing.assert_array_equal(cloud.normals, [[0, 0, 1], [1, 0, 0]])
    write_cloud(tmp_path / "cc.pcd", cloud, cloud.normals[::-1])
    out = read_cloud(tmp_path / "cc.pcd")
    np.testing.assert_array_equal(out.fields()["red"], [255, 1])
    np.testing.assert_array_equal(out.normals, [[1, 0, 0], [0, 0, 1]])
    cases = {
        "ragged.xyz": "1 2 3\n4 5\n",
        "word.txt": "1,2,3\n4,five,6\n",
        "nan.xyz": "1 2 3\nnan 1 1\n",
        "count.pts": "3\n1 2 3\n4 5 6\n",
        "two.xyz": "1 2\n3 4\n",
        "blank.xyz": "\n\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=name):
            read_cloud(tmp_path / name)


def test_bad_output_and_normals_are_refused(tmp_path):
    (tmp_path / "a.xyz").write_text("1 2 3\n4 5 6\n")
    cloud = read_cloud(tmp_path / "a.xyz")
    with pytest.raises(ValueError, match=r"cannot write \.obj"):
        write_cloud(tmp_path / "a.obj", cloud, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"expected normals of shape \(2, 3\)"):
        write_cloud(tmp_path / "b.ply", cloud, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no such file"):
        read_cloud(tmp_path / "missing.ply")


def test_importing_cloudio_loads_no_backend():
    backends = "{'plyfile', 'laspy', 'lazrs', 'lzf', 'open3d'}"
    code = f"import sys, pointnormals.cloudio; print(sorted({backends} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
