"""pointnormals.cloudio, PCD and LAS/LAZ: every field, header and VLR survives a round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pointnormals.cloudio import check_writable, read_cloud, write_cloud

laspy = pytest.importorskip("laspy")
plyfile = pytest.importorskip("plyfile")
N = 500
RNG = np.random.default_rng(11)


def unit(n: int = N) -> np.ndarray:
    v = RNG.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


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
    out = plyfile.PlyData.read(str(tmp_path / "out.ply"))["vertex"].data
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
