"""The synthetic shape generator: determinism, caching, geometry of the labels."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pointnormals import o3d
from pointnormals.data import synthetic
from pointnormals.data.mesh import sample_mesh
from pointnormals.data.synthetic import SyntheticShapes, generate_shape
from pointnormals.geometry import angle_deg


def test_generation_is_deterministic_by_seed():
    a = generate_shape(np.random.default_rng([0, 0, 3]), 512)
    b = generate_shape(np.random.default_rng([0, 0, 3]), 512)
    c = generate_shape(np.random.default_rng([0, 0, 4]), 512)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_all_families_and_primitives_occur():
    kinds = [generate_shape(np.random.default_rng([1, i]), 64)[2] for i in range(120)]
    assert {k.split("-")[0] for k in kinds} == set(synthetic.FAMILIES)
    assert {part for k in kinds for part in k.split("-")[1:]} == set(synthetic.SHAPES)


def test_dataset_items_and_cache(tmp_path, monkeypatch):
    data = SyntheticShapes(tmp_path, "train", num_shapes=5, num_points=300, seed=1)
    assert len(data) == 5 and data.path.parent == tmp_path / "synthetic"
    item = data[2]
    assert item.pos.shape == (300, 3) and item.normal.shape == (300, 3)
    assert str(item.pos.dtype) == "torch.float32" and str(item.normal.dtype) == "torch.float32"
    np.testing.assert_allclose(item.normal.norm(dim=-1).numpy(), 1, atol=1e-6)
    assert item.name.startswith("synthetic/train/0002-") and item.y.tolist() == [-1]
    # a second construction reads the cache and never generates
    monkeypatch.setattr(SyntheticShapes, "generate", staticmethod(lambda *a: 1 / 0))
    again = SyntheticShapes(tmp_path, "train", num_shapes=5, num_points=300, seed=1)
    np.testing.assert_array_equal(again[2].pos.numpy(), item.pos.numpy())
    with pytest.raises(ZeroDivisionError):  # other parameters: another cache file
        SyntheticShapes(tmp_path, "train", num_shapes=5, num_points=300, seed=2)
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticShapes(tmp_path, "validation")


def test_splits_are_different_shapes(tmp_path):
    train = SyntheticShapes(tmp_path, "train", num_shapes=3, num_points=100)
    test = SyntheticShapes(tmp_path, "test", num_shapes=3, num_points=100)
    assert not np.array_equal(train.pos.numpy(), test.pos.numpy())


def test_pca_normals_agree_with_labels():
    """Normal sanity: clean PCA normals match the labels; permuted labels do not."""
    angles, swapped = [], []
    for i in range(24):
        points, normals, _ = generate_shape(np.random.default_rng([2, i]), 4096)
        pca = o3d.estimate_normals_pca(points, k=30)
        angles.append(angle_deg(pca, normals))
        swapped.append(angle_deg(pca, normals[:, [1, 2, 0]]))
    assert np.median(np.concatenate(angles)) < 15
    assert np.median(np.concatenate(swapped)) > 15  # the check can fail


def test_union_keeps_only_the_outer_surface():
    sphere = o3d.primitive_mesh("sphere", radius=1.0, resolution=30)
    moved = sphere.transformed(np.eye(3), offset=np.array([1.0, 0, 0]))

    def inner_distance(points: np.ndarray) -> np.ndarray:
        """Distance to the nearer centre: about 1 on the union's surface, < 1 inside."""
        return np.minimum(
            np.linalg.norm(points, axis=1), np.linalg.norm(points - [1, 0, 0], axis=1)
        )

    points, normals = synthetic._sample_union([sphere, moved], 4000, np.random.default_rng(0))
    assert points.shape == (4000, 3)
    assert (inner_distance(points) > 0.99).all()
    # without the inside test a quarter of each sphere (its cap in the other) is kept
    naive = np.concatenate(
        [sample_mesh(m, 2000, np.random.default_rng(0))[0] for m in (sphere, moved)]
    )
    assert np.mean(inner_distance(naive) < 0.99) == pytest.approx(0.25, abs=0.03)
    # outward normals of the union, and a uniform split between the two parts
    first = np.linalg.norm(points, axis=1) < np.linalg.norm(points - [1, 0, 0], axis=1)
    centre = np.where(first[:, None], 0.0, [1.0, 0, 0])
    assert (((points - centre) * normals).sum(1) > 0).all()
    assert np.mean(first) == pytest.approx(0.5, abs=0.03)


def test_special_primitives():
    dodecahedron = synthetic._dodecahedron()
    assert len(dodecahedron.vertices) == 20 and len(dodecahedron.triangles) == 36
    np.testing.assert_allclose(np.linalg.norm(dodecahedron.vertices, axis=1), 1)
    capsule = synthetic._capsule(radius=0.5, length=2.0)
    points, normals = sample_mesh(capsule, 5000, np.random.default_rng(0))
    radial = np.linalg.norm(points[:, :2], axis=1)
    side = np.abs(points[:, 2]) < 0.95
    np.testing.assert_allclose(radial[side], 0.5, atol=0.01)  # a cylinder in the middle
    assert capsule.vertices[:, 2].max() == pytest.approx(1.5)
    assert (((points - np.clip(points * [0, 0, 1], -1, 1)) * normals).sum(1) > 0).all()


@pytest.mark.slow
def test_default_set_generates_fast_and_caches(tmp_path):
    start = time.perf_counter()
    sizes = {"train": 512, "val": 64, "test": 64}  # the defaults of conf/data/synthetic.yaml
    for split, size in sizes.items():
        SyntheticShapes(tmp_path, split, num_shapes=size, num_points=4096)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for split, size in sizes.items():
        SyntheticShapes(tmp_path, split, num_shapes=size, num_points=4096)
    second = time.perf_counter() - start
    assert first < 45 and second < 1.0, (first, second)
