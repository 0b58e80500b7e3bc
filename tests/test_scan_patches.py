"""Training patches of simulated scans: the dense-cloud cache with its range scans, and cuts."""

from __future__ import annotations

import numpy as np
import pytest

from pointnormals.data.dense import build_dense_clouds
from pointnormals.data.scan_patches import ScanPatches
from pointnormals.o3d import primitive_mesh


def _write_obj(path, mesh) -> None:
    lines = [f"v {x:.9f} {y:.9f} {z:.9f}" for x, y, z in mesh.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.triangles]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def clouds(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    meshes = root / "meshes"
    meshes.mkdir()
    _write_obj(meshes / "ball.obj", primitive_mesh("sphere", radius=1.0, resolution=40))
    _write_obj(meshes / "spot.obj", primitive_mesh("box"))  # a held-out name: never used
    kwargs = dict(
        cache_dir=root, synthetic_shapes=1, synthetic_points=3000, meshes_dir=meshes,
        mesh_points=3000, range_scans=2, range_scan_points=(3000, 6000),
    )  # fmt: skip
    first = build_dense_clouds(**kwargs)
    again = build_dense_clouds(**kwargs)  # from the cache
    assert list(first.names) == list(again.names)
    np.testing.assert_array_equal(first.pos, again.pos)
    np.testing.assert_array_equal(first.origins, again.origins)
    return first


def test_range_scans_of_training_meshes_keep_their_sensor(clouds):
    names = [str(n) for n in clouds.names]
    assert names[1:] == ["mesh/ball", "scan/ball-0", "scan/ball-1"]
    assert names[0].startswith("synthetic/")
    assert clouds.origin(0) is None and clouds.origin(1) is None
    sizes = clouds.sizes()
    for index in (2, 3):
        origin = clouds.origin(index)
        pos, normal = clouds.cloud(index)
        assert 2500 < sizes[index] < 7000
        assert np.linalg.norm(origin) == pytest.approx(3.0, rel=0.01)  # 3 radii away
        assert (pos @ (origin / np.linalg.norm(origin)) > 0).all()  # the near side only
        assert np.abs((normal * pos).sum(1)).min() > 0.98  # exact, radial normals
    assert not np.allclose(clouds.origin(2), clouds.origin(3))  # two viewpoints


def test_a_clean_range_scan_patch_is_the_scans_own_nearest_points(clouds):
    patches = ScanPatches(
        clouds, 8, patch_points=256, scales=[1], clean_prob=1.0, artefact_prob=0.0,
        mix={"scan": 1.0}, seed=3,
    )  # fmt: skip
    for i in range(4):
        points, _ = patches.cut(np.random.default_rng(i))
        index = next(j for j in (2, 3) if _contains(clouds.cloud(j)[0], points[0]))
        scan = clouds.cloud(index)[0].astype(np.float64)
        nearest = np.argsort(((scan - points[0]) ** 2).sum(1), kind="stable")[:256]
        # not thinned: the grid of rays survives, the K = P nearest scan points exactly
        np.testing.assert_array_equal(np.sort(points, axis=0), np.sort(scan[nearest], axis=0))


def test_a_range_scan_is_noisy_along_its_rays_other_clouds_in_every_direction(clouds):
    patches = ScanPatches(clouds, 8, clean_prob=0.0, artefact_prob=0.0, max_noise=0.05)
    rng = np.random.default_rng(0)
    origin = clouds.origin(2)
    points = clouds.cloud(2)[0][:500].astype(np.float64)
    normals = clouds.cloud(2)[1][:500]
    for sensor in (origin, None):
        noisy, _ = patches._artefacts(points, normals, points[0], 2.0, sensor, rng)
        moved = np.linalg.norm(noisy - points, axis=1)
        assert np.median(moved) > 1e-3
        ray = (points - origin) / np.linalg.norm(points - origin, axis=1, keepdims=True)
        across = np.linalg.norm(np.cross(noisy - points, ray), axis=1)
        if sensor is None:
            assert np.median(across / moved) > 0.3  # isotropic: mostly across the ray
        else:
            assert across.max() < 1e-9  # only along each point's own ray


def _contains(cloud: np.ndarray, point: np.ndarray) -> bool:
    return bool((np.abs(cloud.astype(np.float64) - point).max(1) == 0).any())


def _line_ratio(points: np.ndarray) -> float:
    """Median λ₂/λ₁ of the 16-nearest neighbourhoods: small on single scan lines."""
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    near = points[np.argsort(d, axis=1)[:, :16]]
    near = near - near.mean(1, keepdims=True)
    eigen = np.linalg.eigvalsh(near.transpose(0, 2, 1) @ near)
    return float(np.median(eigen[:, 1] / eigen[:, 2]))


def test_scan_lines_keep_points_near_parallel_planes_of_the_asked_spacing(clouds):
    # lines 15 point spacings apart on the 3000-point ball: about 13 circles
    common = dict(patch_points=64, scales=[1], clean_prob=1.0, artefact_prob=0.0,
                  mix={"mesh": 1.0}, scan_points=(3000, 3000))  # fmt: skip
    plain = ScanPatches(clouds, 8, **common)
    lines = ScanPatches(clouds, 8, scan_line_prob=1.0, line_spacing=(15.0, 15.0), **common)
    ratios = {}
    for name, patches in (("plain", plain), ("lines", lines)):
        cuts = [patches.cut(np.random.default_rng(i))[0] for i in range(6)]
        assert all(len(c) >= 60 for c in cuts)  # the region grows until K points remain
        ratios[name] = np.median([_line_ratio(c) for c in cuts])
    assert ratios["plain"] > 0.3 and ratios["lines"] < 0.15, ratios


def test_scan_lines_on_a_grid_keep_one_point_spacing_in_every_five():
    from pointnormals.data.scan_patches import _on_lines

    grid = np.stack(np.meshgrid(np.arange(-60.0, 61), np.arange(-60.0, 61)), -1).reshape(-1, 2)
    grid = (
        np.concatenate([grid, np.zeros((len(grid), 1))], 1)
        @ np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    )  # a unit grid on a tilted plane
    dist = (grid**2).sum(1)
    share = [_on_lines(grid, grid[0] * 0, dist, 5.0, np.random.default_rng(i)).mean()
             for i in range(20)]  # fmt: skip
    assert 0.17 < np.mean(share) < 0.23  # bands of one point spacing every 5
