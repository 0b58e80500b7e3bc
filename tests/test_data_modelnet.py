"""ModelNet40 readers: both layouts on trees written here, and on modelnet40_mini."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointnormals import o3d
from pointnormals.data import modelnet
from pointnormals.data.mesh import Mesh, sample_mesh
from pointnormals.data.modelnet import ModelNet40, detect_layout
from pointnormals.geometry import angle_deg

CLASSES = ["airplane", "night_stand"]


def write_off(path: Path, mesh: Mesh, glued: bool) -> None:
    """Write ``mesh`` as ``.off``; ``glued`` reproduces ModelNet's ``OFF8 12 0`` quirk."""
    counts = f"{len(mesh.vertices)} {len(mesh.triangles)} 0"
    lines = [f"OFF{counts}"] if glued else ["OFF", counts]
    lines += [" ".join(f"{x:.6f}" for x in v) for v in mesh.vertices]
    lines += ["3 " + " ".join(str(i) for i in t) for t in mesh.triangles]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def off_root(tmp_path) -> Path:
    """``ModelNet40/<class>/{train,test}/<class>_NNNN.off``: boxes, one glued header."""
    root = tmp_path / "ModelNet40"
    box = o3d.primitive_mesh("box", width=1.0, height=2.0, depth=0.5)
    for c, cls in enumerate(CLASSES):
        for split, number in (("train", 1), ("train", 2), ("test", 3)):
            glued = (c, number) == (0, 1)
            write_off(root / cls / split / f"{cls}_{number:04d}.off", box, glued=glued)
    return root


@pytest.fixture
def resampled_root(tmp_path) -> Path:
    """``modelnet40_normal_resampled/`` with two classes of sampled boxes."""
    root = tmp_path / "modelnet40_normal_resampled"
    box = o3d.primitive_mesh("box", width=1.0, height=2.0, depth=0.5)
    rng = np.random.default_rng(0)
    names = {"train": [], "test": []}
    for cls in CLASSES:
        for split, number in (("train", 1), ("train", 2), ("test", 3)):
            name = f"{cls}_{number:04d}"
            points, normals = sample_mesh(box, 3000, rng)
            o3d.write_point_cloud(root / cls / f"{name}.txt", points, normals)
            names[split].append(name)
    (root / "modelnet40_shape_names.txt").write_text("\n".join(CLASSES) + "\n")
    for split, split_names in names.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(split_names) + "\n")
    return root


def test_detect_layout(off_root, resampled_root, tmp_path):
    assert detect_layout(off_root) == ("off", off_root)
    assert detect_layout(resampled_root) == ("resampled", resampled_root)
    assert detect_layout(tmp_path) == ("resampled", resampled_root)  # the parent works too
    (resampled_root / "modelnet40_shape_names.txt").unlink()
    assert detect_layout(tmp_path) == ("off", off_root)


@pytest.mark.parametrize("make", ["missing", "empty", "junk"])
def test_bad_root_gives_one_line_error_with_instructions(tmp_path, make):
    root = tmp_path / "nowhere"
    if make != "missing":
        (root / "airplane").mkdir(parents=True)
    if make == "junk":
        (root / "airplane" / "a.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError) as info:
        ModelNet40(root)
    message = str(info.value)
    assert "\n" not in message and str(root) in message
    assert "modelnet40_normal_resampled" in message and "download_modelnet40.py" in message


def test_off_layout_samples_meshes_with_face_normals(off_root, tmp_path):
    data = ModelNet40(off_root, "train", cache_dir=tmp_path / "cache", num_points=2000)
    assert data.layout == "off" and data.classes == CLASSES
    assert data.names == ["airplane_0001", "airplane_0002", "night_stand_0001", "night_stand_0002"]
    item = data[0]  # the glued header
    assert item.pos.shape == (2000, 3) and item.y.tolist() == [0] and item.name == "airplane_0001"
    pos, normal = item.pos.numpy(), item.normal.numpy()
    # every normal is a face normal of the box and its point lies on that face
    axis = np.abs(normal).argmax(1)
    np.testing.assert_allclose(np.abs(normal[np.arange(2000), axis]), 1, atol=1e-3)
    extent = np.array([1.0, 2.0, 0.5])[axis]
    coordinate = pos[np.arange(2000), axis]
    assert (np.isclose(coordinate, 0, atol=1e-5) | np.isclose(coordinate, extent, atol=1e-5)).all()
    assert len(ModelNet40(off_root, "test", cache_dir=tmp_path / "cache")) == 2


def test_cache_is_written_once_and_reused(off_root, tmp_path, monkeypatch):
    data = ModelNet40(off_root, "train", cache_dir=tmp_path / "cache", num_points=500)
    first = data[1]
    cached = sorted(data.cache_dir.glob("*.npz"))
    assert [p.name for p in cached] == ["airplane_0002.npz"]
    assert cached[0].stat().st_size < 500 * 3 * (4 + 2) + 1000  # float32 pos, float16 normal
    monkeypatch.setattr(o3d, "read_triangle_mesh", lambda path: 1 / 0)
    again = ModelNet40(off_root, "train", cache_dir=tmp_path / "cache", num_points=500)[1]
    np.testing.assert_array_equal(again.pos.numpy(), first.pos.numpy())
    np.testing.assert_allclose(again.normal.numpy(), first.normal.numpy())
    with pytest.raises(ZeroDivisionError):  # another sampling size is another cache
        ModelNet40(off_root, "train", cache_dir=tmp_path / "cache", num_points=400)[1]


def test_resampled_layout_is_read_and_turned_z_up(resampled_root, tmp_path):
    data = ModelNet40(resampled_root, "train", cache_dir=tmp_path / "cache")
    assert data.layout == "resampled" and len(data) == 4 and data.classes == CLASSES
    item = data[2]
    assert item.name == "night_stand_0001" and item.y.tolist() == [1]  # class with "_"
    raw = np.loadtxt(resampled_root / "night_stand" / "night_stand_0001.txt", delimiter=",")
    y_up_to_z_up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    np.testing.assert_allclose(item.pos.numpy(), raw[:, :3] @ y_up_to_z_up.T, atol=1e-6)
    np.testing.assert_allclose(item.normal.numpy(), raw[:, 3:] @ y_up_to_z_up.T, atol=2e-3)
    np.testing.assert_allclose(item.normal.norm(dim=-1).numpy(), 1, atol=1e-6)
    assert len(ModelNet40(resampled_root, "test", cache_dir=tmp_path / "cache")) == 2


def test_resampled_layout_errors_name_the_file(resampled_root, tmp_path):
    bad = resampled_root / "airplane" / "airplane_0002.txt"
    bad.write_text("0.1,0.2,0.3\n0.4,0.5,0.6\n")
    data = ModelNet40(resampled_root, "train", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"airplane_0002\.txt: expected 6 columns"):
        data[1]
    bad.write_text("0.1,0.2,0.3,0,0,1\nnan-ish,row\n")
    with pytest.raises(ValueError, match=r"airplane_0002\.txt: malformed"):
        data[1]
    bad.unlink()
    with pytest.raises(ValueError, match=r"listed in modelnet40_train\.txt but missing"):
        ModelNet40(resampled_root, "train", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown ModelNet40 split"):
        ModelNet40(resampled_root, "val")


@pytest.mark.parametrize("layout", ["off", "resampled"])
def test_pca_normals_agree_on_written_trees(layout, off_root, resampled_root, tmp_path):
    root = off_root if layout == "off" else resampled_root
    item = ModelNet40(root, "train", cache_dir=tmp_path / "cache", num_points=3000)[0]
    angle = angle_deg(o3d.estimate_normals_pca(item.pos.numpy()), item.normal.numpy())
    assert np.median(angle) < 15


def test_modelnet40_mini(modelnet_mini, tmp_path):
    """Normal sanity on real data: PCA vs labels, and a swapped axis order fails it."""
    train = ModelNet40(modelnet_mini, "train", cache_dir=tmp_path)
    test = ModelNet40(modelnet_mini, "test", cache_dir=tmp_path)
    assert train.layout == "resampled" and (len(train), len(test)) == (110, 17)
    assert len(train.classes) == 40 and not set(train.names) & set(test.names)
    angles, swapped = [], []
    for i in range(0, len(train), 5):
        item = train[i]
        assert item.pos.shape == (10_000, 3) and str(item.pos.dtype) == "torch.float32"
        assert train.classes[item.y.item()] == item.name.rsplit("_", 1)[0]
        pca = o3d.estimate_normals_pca(item.pos.numpy(), k=30)
        angles.append(angle_deg(pca, item.normal.numpy()))
        swapped.append(angle_deg(pca, item.normal.numpy()[:, [0, 2, 1]]))
    assert np.median(np.concatenate(angles)) < 15
    assert np.median(np.concatenate(swapped)) > 15


def test_z_up_on_mini(modelnet_mini, tmp_path):
    """Airplanes are flat along the up axis once loaded (z-up convention)."""
    data = ModelNet40(modelnet_mini, "train", cache_dir=tmp_path)
    extents = [
        np.ptp(data[i].pos.numpy(), axis=0)
        for i, n in enumerate(data.names)
        if n.startswith("airplane")
    ]
    assert len(extents) > 3 and all(e.argmin() == 2 for e in extents)
    assert modelnet.LAYOUTS == ("off", "resampled")
