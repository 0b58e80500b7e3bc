"""Normal orientation: outward, towards a viewpoint, consistent (MST) and the dispatcher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointnormals import graph, o3d, orient, spanning
from pointnormals.data.mesh import sample_mesh
from pointnormals.data.synthetic import generate_shape
from pointnormals.inference import orient_outward as inference_orient_outward
from pointnormals.testing import assert_equivariant


def _closed(name: str, num_points: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and exact outward normals of a closed surface, float64."""
    rng = np.random.default_rng(seed)
    if name == "union":  # capsule + octahedron: a crease where they meet
        points, normals, _ = generate_shape(np.random.default_rng(100), num_points)
    else:
        params = {
            "sphere": {"radius": 1.0, "resolution": 20},
            "torus": {"torus_radius": 1.0, "tube_radius": 0.3},
            "box": {"width": 1.0, "height": 0.6, "depth": 0.3},
        }[name]
        points, normals = sample_mesh(o3d.primitive_mesh(name, **params), num_points, rng)
    return torch.from_numpy(points), torch.from_numpy(normals)


def _random_signs(normals: torch.Tensor, seed: int = 1) -> torch.Tensor:
    signs = torch.randint(0, 2, (len(normals), 1), generator=torch.Generator().manual_seed(seed))
    return normals * (2 * signs - 1).to(normals.dtype)


def _agreement(oriented: torch.Tensor, truth: torch.Tensor) -> float:
    return ((oriented * truth).sum(-1) > 0).double().mean().item()


@pytest.mark.parametrize("name", ["sphere", "torus", "box", "union"])
def test_mst_orients_randomly_flipped_exact_normals_outward(name):
    points, truth = _closed(name, 8000)
    flipped = _random_signs(truth)
    assert 0.4 < _agreement(flipped, truth) < 0.6
    assert _agreement(orient.orient_consistent(points, flipped), truth) >= 0.99


def test_mst_orients_noisy_pca_normals():
    points, truth = _closed("torus", 10_000)
    gen = torch.Generator().manual_seed(2)
    noisy = points + 0.006 * 2.9 * torch.randn(points.shape, generator=gen, dtype=points.dtype)
    pca = torch.from_numpy(o3d.estimate_normals_pca(noisy.numpy(), k=30))
    assert _agreement(orient.orient_consistent(noisy, pca), truth) >= 0.97


def test_subtree_flips_repair_a_sharp_union_that_the_plain_tree_gets_wrong():
    """PCA normals of cones + tetrahedron + dodecahedron: one bad tree edge flips a part."""
    points, truth, _ = generate_shape(np.random.default_rng(101), 8000)
    points, truth = torch.from_numpy(points), torch.from_numpy(truth)
    pca = torch.from_numpy(o3d.estimate_normals_pca(points.numpy(), k=30))
    assert _agreement(orient.orient_consistent(points, pca, flip_steps=0), truth) < 0.95
    assert _agreement(orient.orient_consistent(points, pca), truth) >= 0.98


def test_reflection_criterion_sees_through_sharp_edges_and_thin_plates():
    """Hoppe's n_i.n_j is 0 across a right angle; the reflection criterion is not."""
    up, side = torch.tensor([[0.0, 0, 1]]), torch.tensor([[1.0, 0, 0]])
    across_edge = torch.tensor([[0.3, 0, -0.2]])  # from the top face down the side face
    assert orient.agreement(up, side, across_edge, gamma=0).item() == 0
    assert orient.agreement(up, side, across_edge).item() > 0.9
    assert orient.agreement(up, -side, across_edge).item() < -0.9
    # the two sides of a thin plate have opposite outward normals: agreement +1
    assert orient.agreement(up, -up, torch.tensor([[0.01, 0, -0.05]])).item() > 0.9
    # outward normals of a sphere agree exactly, whatever the distance
    a = torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, -0.6, 0.8]], dtype=torch.float64)
    assert orient.agreement(a, b, 5 * (b - a)).item() == pytest.approx(1.0, abs=1e-12)


def test_subsample_and_vote_path():
    points, truth = _closed("torus", 12_000)
    sample = orient.invariant_subsample(points, 3000)
    assert sample.shape == (3000,) and sample.unique().numel() == 3000
    oriented = orient.orient_consistent(points, _random_signs(truth), max_points=3000, k=12)
    assert _agreement(oriented, truth) >= 0.99
    assert oriented.dtype == truth.dtype


@pytest.mark.parametrize("max_points", [100_000, 1500])
def test_mst_is_equivariant_and_permutation_invariant(max_points):
    points, truth = _closed("union", 4000)
    normals = _random_signs(truth)

    def func(pos: torch.Tensor, nrm: torch.Tensor) -> torch.Tensor:
        return orient.orient_consistent(pos, nrm, max_points=max_points)

    # "normal": oriented angles, so one sign that differs is a 180° error
    assert_equivariant(
        func, [points, normals], ["pos", "axis"], "normal", dtypes=(torch.float64,), trials=4
    )
    scaled = func(points * 37.5 + 4.0, normals)
    assert torch.equal(scaled, func(points, normals))


def test_float32_input_keeps_dtype_and_agrees():
    points, truth = _closed("sphere", 3000)
    oriented = orient.orient_consistent(points.float(), _random_signs(truth).float())
    assert oriented.dtype == torch.float32
    assert _agreement(oriented.double(), truth) >= 0.99


def test_outward_matches_inference_and_points_away_from_centroid():
    points, truth = _closed("sphere", 2000)
    points = points + torch.tensor([10.0, -3.0, 2.0])
    flipped = _random_signs(truth)
    out = orient.orient_outward(points, flipped)
    assert torch.equal(out, inference_orient_outward(points, flipped))
    assert _agreement(out, truth) == 1.0


def test_viewpoint_flips_normals_towards_the_sensor():
    gen = torch.Generator().manual_seed(3)
    points = torch.rand(500, 3, generator=gen) * torch.tensor([10.0, 10.0, 0.0])  # z = 0
    normals = _random_signs(torch.tensor([[0.0, 0.0, 1.0]]).repeat(500, 1))
    view = torch.tensor([5.0, 5.0, 20.0])
    out = orient.orient_towards(points, normals, view)
    assert (out[:, 2] == 1).all()
    assert (orient.orient_towards(points, normals, -view)[:, 2] == -1).all()
    assert torch.equal(orient.orient(points, normals, "viewpoint", view), out)
    assert torch.equal(orient.orient(points, normals, "auto", view), out)
    with pytest.raises(ValueError, match="viewpoint"):
        orient.orient_towards(points, normals, torch.tensor([1.0, float("nan"), 0]))


def test_dispatcher_modes_and_errors():
    points, truth = _closed("sphere", 1000)
    flipped = _random_signs(truth)
    assert orient.orient(points, flipped, "none") is flipped
    outward = orient.orient_outward(points, flipped)
    assert torch.equal(orient.orient(points, flipped, "outward"), outward)
    mst = orient.orient_consistent(points, flipped)
    assert torch.equal(orient.orient(points, flipped, "mst"), mst)
    assert torch.equal(orient.orient(points, flipped, "auto"), mst)
    with pytest.raises(ValueError, match="unknown mode"):
        orient.orient(points, flipped, "inward")
    with pytest.raises(ValueError, match="needs a viewpoint"):
        orient.orient(points, flipped, "viewpoint")
    with pytest.raises(ValueError, match="shape"):
        orient.orient(points, flipped[:10], "mst")
    with pytest.raises(ValueError, match="NaN"):
        orient.orient(points, flipped * float("nan"), "outward")


def test_tiny_and_degenerate_clouds():
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    normals = torch.tensor([[-1.0, 0, 0], [-1.0, 0, 0]])
    assert orient.orient_consistent(points, normals)[1, 0] == 1  # falls back to outward
    same = torch.zeros(50, 3)  # coincident points: no crash, unit normals stay unit
    out = orient.orient_consistent(same, _random_signs(torch.tensor([[0.0, 1, 0]]).repeat(50, 1)))
    assert out.abs().sum(-1).eq(1).all()


@pytest.mark.cuda
def test_cuda_matches_cpu():
    points, truth = _closed("torus", 6000)
    flipped = _random_signs(truth)
    cpu = orient.orient_consistent(points, flipped, max_points=2000)
    cuda = orient.orient_consistent(points.cuda(), flipped.cuda(), max_points=2000)
    assert cuda.is_cuda and (cuda.cpu() == cpu).all(-1).double().mean() > 0.999


def _ancestors(parent: np.ndarray, v: int) -> list[int]:
    path = [v]
    while parent[path[-1]] != path[-1]:
        path.append(int(parent[path[-1]]))
    return path


def test_spanning_forest_ranges_and_common_ancestors_match_brute_force():
    gen = torch.Generator().manual_seed(4)
    points = torch.rand(600, 3, generator=gen, dtype=torch.float64)
    points[:80] += 3  # a second component
    j, i = graph.knn_graph(points, 5)
    length = (points[j] - points[i]).norm(dim=-1).numpy()
    forest = spanning.spanning_forest(i.numpy(), j.numpy(), length, 600)
    assert len(np.unique(forest.labels)) == 2
    ancestors = [_ancestors(forest.parent, v) for v in range(600)]
    size = np.bincount(np.concatenate(ancestors), minlength=600)
    assert (forest.end - forest.pre == size).all()  # contiguous subtrees in preorder
    for v in range(0, 600, 7):
        assert all(v in ancestors[w] for w in forest.order[forest.pre[v] : forest.end[v]])
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 600, (2, 500))
    a, b = a[forest.labels[a] == forest.labels[b]], b[forest.labels[a] == forest.labels[b]]
    for x, y, z in zip(a, b, forest.common_ancestors(a, b), strict=True):
        assert z == next(t for t in ancestors[x] if t in set(ancestors[y]))


def test_flip_subtrees_repairs_a_wrongly_flipped_subtree():
    points, truth = _closed("sphere", 3000)
    j, i = graph.knn_graph(points, 10)
    score = orient.agreement(truth[i], truth[j], points[j] - points[i]).numpy()
    length = (points[j] - points[i]).norm(dim=-1).numpy()
    forest = spanning.spanning_forest(i.numpy(), j.numpy(), length, len(points))
    sizes = forest.end - forest.pre
    v = int(np.argmin(np.abs(sizes - 1000)))  # a subtree of about a third of the sphere
    flip = np.zeros(len(points), dtype=bool)
    flip[forest.order[forest.pre[v] : forest.end[v]]] = True
    a, b = i.numpy(), j.numpy()
    assert flip.sum() > 300
    assert np.array_equal(spanning.flip_subtrees(forest, a, b, score, flip, 0), flip)  # no step
    assert not spanning.flip_subtrees(forest, a, b, score, flip, 4).any()  # repaired
