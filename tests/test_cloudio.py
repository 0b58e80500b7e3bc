"""pointnormals.cloudio: every attribute survives a round trip; damaged files are refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointnormals.cloudio import check_writable, read_cloud, write_cloud

plyfile = pytest.importorskip("plyfile")
laspy = pytest.importorskip("laspy")
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


def pcd_text(data: str, n: int, body: bytes) -> bytes:
    header = (
        "# .PCD v0.7 - from a test\nVERSION 0.7\nFIELDS x y z rgb intensity\n"
        "SIZE 4 4 4 4 2\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\n"
        "VIEWPOINT 10 -20 30.5 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    )
    return header.format(n=n, data=data).encode() + body


def pcd_points(n: int = N) -> np.ndarray:
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4"), ("intensity", "<u2")]
    data = np.empty(n, dtype=dtype)
    for c in "xyz":
        data[c] = RNG.normal(size=n)
    data["rgb"] = (255 << 24) | RNG.integers(0, 1 << 24, n)  # opaque: a NaN as float32
    data["intensity"] = RNG.integers(0, 65535, n)
    return data


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_pcd_round_trip_keeps_fields_header_and_viewpoint(tmp_path, encoding):
    data = pcd_points()
    rows = "\n".join(f"{r['x']} {r['y']} {r['z']} {r['rgb']} {r['intensity']}" for r in data)
    body = rows.encode() + b"\n" if encoding == "ascii" else data.tobytes()
    src = tmp_path / "in.pcd"
    src.write_bytes(
        pcd_text("binary", N, body) if encoding != "ascii" else pcd_text("ascii", N, body)
    )
    if encoding == "binary_compressed":  # made by our own writer from the binary file
        cloud = read_cloud(src)
        cloud._native = dataclasses.replace(cloud._native, encoding=encoding)
        write_cloud(tmp_path / "c.pcd", cloud, unit())
        src = tmp_path / "c.pcd"
        assert b"DATA binary_compressed\n" in src.read_bytes()
    cloud = read_cloud(src)
    np.testing.assert_array_equal(cloud.viewpoint, [10, -20, 30.5])
    np.testing.assert_array_equal(cloud.points, np.column_stack([data[c] for c in "xyz"]))
    normals = unit()
    write_cloud(tmp_path / "out.pcd", cloud, normals)
    text = (tmp_path / "out.pcd").read_bytes()
    assert f"DATA {encoding}\n".encode() in text and b"VIEWPOINT 10 -20 30.5 1 0 0 0\n" in text
    assert b"FIELDS x y z rgb intensity normal_x normal_y normal_z\n" in text
    out = read_cloud(tmp_path / "out.pcd")
    np.testing.assert_array_equal(out.normals, normals.astype(np.float32))
    got = out._native.data
    for name in data.dtype.names:
        assert got[name].tobytes() == data[name].tobytes(), name
    assert out.fields()["red"].dtype == np.uint8


@pytest.mark.parametrize("encoding", ["binary", "binary_compressed"])
def test_pcd_output_is_read_by_open3d_with_colours_and_normals(tmp_path, encoding):
    o3d = pytest.importorskip("open3d")
    data = pcd_points()
    (tmp_path / "in.pcd").write_bytes(pcd_text("binary", N, data.tobytes()))
    cloud = read_cloud(tmp_path / "in.pcd")
    cloud._native = dataclasses.replace(cloud._native, encoding=encoding)
    normals = unit()
    write_cloud(tmp_path / "out.pcd", cloud, normals)
    assert f"DATA {encoding}".encode() in (tmp_path / "out.pcd").read_bytes()
    got = o3d.io.read_point_cloud(str(tmp_path / "out.pcd"))
    np.testing.assert_allclose(np.asarray(got.normals), normals, atol=1e-6)
    red = (data["rgb"] >> 16) & 255
    np.testing.assert_allclose(np.asarray(got.colors)[:, 0] * 255, red, atol=1e-3)


def test_damaged_pcd_is_refused(tmp_path):
    data = pcd_points(10)
    cases = {
        "short.pcd": (pcd_text("binary", 10, data.tobytes()[:-3]), "DATA binary holds"),
        "long.pcd": (pcd_text("binary", 10, data.tobytes() + b"xx"), "DATA binary holds"),
        "rows.pcd": (pcd_text("ascii", 2, b"0 0 0 1 2\n"), "DATA ascii has 1 rows"),
        "word.pcd": (pcd_text("ascii", 1, b"0 a 0 1 2\n"), "non-numeric"),
        "head.pcd": (b"VERSION 0.7\nFIELDS x y z\nDATA ascii\n0 0 0\n", "header lacks SIZE"),
    }
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=message):
            read_cloud(tmp_path / name)


def write_las(path: Path, n: int = N) -> object:
    header = laspy.LasHeader(point_format=3, version="1.4")
    header.scales, header.offsets = [0.001, 0.001, 0.01], [4_000_000.0, 5_600_000.0, 120.0]
    header.add_extra_dim(laspy.ExtraBytesParams("Amplitude", np.float32, "echo amplitude"))
    header.vlrs.append(laspy.VLR("pointnormals", 42, "a test record", b"keep me"))
    las = laspy.LasData(header)
    las.x = 4_000_000 + RNG.integers(0, 10**6, n) * 0.001 + 2e6  # ~6e6 m, mm steps
    las.y = 5_600_000 + RNG.integers(0, 10**6, n) * 0.001
    las.z = 120 + RNG.integers(0, 1000, n) * 0.01
    las.intensity, las.classification = RNG.integers(0, 65535, n), RNG.integers(0, 20, n)
    las.red, las.gps_time = RNG.integers(0, 65535, n), RNG.random(n) * 1e5
    las.Amplitude = RNG.random(n).astype(np.float32)
    las.write(path)
    return laspy.read(path)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_round_trip_keeps_dimensions_scales_vlrs_and_exact_coordinates(tmp_path, suffix):
    src = tmp_path / f"in{suffix}"
    las = write_las(src)
    cloud = read_cloud(src)
    assert cloud.format == suffix[1:] and cloud.normals is None
    exact = las.X * 0.001 + 4_000_000.0  # the file's integers, scaled in float64
    np.testing.assert_array_equal(cloud.points[:, 0], exact)
    normals = unit()
    write_cloud(tmp_path / f"out{suffix}", cloud, normals)
    out = laspy.read(tmp_path / f"out{suffix}")
    assert out.header.point_format.id == 3 and str(out.header.version) == "1.4"
    np.testing.assert_array_equal(out.header.scales, las.header.scales)
    np.testing.assert_array_equal(out.header.offsets, las.header.offsets)
    assert any(v.record_id == 42 and v.record_data == b"keep me" for v in out.header.vlrs)
    assert list(out.point_format.extra_dimension_names)[-3:] == ["NormalX", "NormalY", "NormalZ"]
    for name in las.point_format.dimension_names:  # X Y Z integers included
        assert np.asarray(out[name]).tobytes() == np.asarray(las[name]).tobytes(), name
    got = np.column_stack([out.NormalX, out.NormalY, out.NormalZ])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, normals.astype(np.float32))
    again = read_cloud(tmp_path / f"out{suffix}")
    np.testing.assert_array_equal(again.points, cloud.points)
    np.testing.assert_array_equal(again.normals, normals.astype(np.float32))


def test_las_to_ply_keeps_attributes_and_double_coordinates(tmp_path):
    las = write_las(tmp_path / "in.las")
    cloud = read_cloud(tmp_path / "in.las")
    write_cloud(tmp_path / "out.ply", cloud, unit())
    _, out = read_vertex(tmp_path / "out.ply")
    np.testing.assert_array_equal(out["x"], cloud.points[:, 0])
    assert out["x"].dtype == np.float64 and out["nx"].dtype == np.float64
    for name in ("intensity", "classification", "red", "gps_time", "Amplitude"):
        np.testing.assert_array_equal(out[name], np.asarray(las[name]), err_msg=name)
    with pytest.raises(ValueError, match="LAS/LAZ output needs a LAS/LAZ input"):
        check_writable(tmp_path / "x.las", "ply")


def test_damaged_las_is_refused(tmp_path):
    write_las(tmp_path / "in.las")
    write_las(tmp_path / "in.laz")
    raw, packed = (tmp_path / "in.las").read_bytes(), (tmp_path / "in.laz").read_bytes()
    cases = {
        "short.las": (raw[:-50], "declares 500 points"),
        "long.las": (raw + bytes(40), "declares 500 points"),
        "short.laz": (packed[: len(packed) // 2], "unreadable LAS/LAZ"),
        "tiny.las": (raw[:20], "unreadable"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message):
            read_cloud(tmp_path / name)


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
