"""Neighbour search beyond torch_cluster's limits."""

from __future__ import annotations

import pytest
import torch

from pointnormals import graph


def test_dense_knn_equals_torch_cluster_knn_in_chunks():
    """The GPU path for k > 100 (patches) gives torch_cluster's answer, nearest first."""
    g = torch.Generator().manual_seed(0)
    src, dst = torch.rand(3000, 3, generator=g), torch.rand(50, 3, generator=g)
    expected = graph.knn(src, dst, 300)
    got = graph.knn_dense(src, dst, 300, chunk_elements=7 * 3000)  # 8 chunks of 7 rows
    assert torch.equal(got, expected)
    assert graph.Neighbourhood.knn(src, dst, 300).degree == 300
    assert graph.knn_dense(src[:20], dst, 300).shape == (2, 50 * 20)  # k capped at N


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fps_of_equal_clouds_picks_what_torch_cluster_picks(dtype):
    """Equal-size clouds (a batch of patches) are sampled together on CPU: the same
    picks in the same order as torch_cluster's kernel, exact distance ties included
    (float32; float64 near-ties follow tie_key, tested below)."""
    import torch_cluster

    g = torch.Generator().manual_seed(1)
    for clouds, n, ratio, ties in [(32, 1024, 0.25, False), (7, 300, 0.37, True),
                                   (1, 5000, 0.013, False), (5, 9, 1.0, True)]:  # fmt: skip
        pos = torch.randn(clouds * n, 3, generator=g, dtype=dtype)
        if ties:  # a coarse grid: many equal distances (0.1 is not exact: near-ties too)
            if dtype == torch.float64:
                continue
            pos = pos.round(decimals=1)
        batch = torch.arange(clouds).repeat_interleave(n)
        want = torch_cluster.fps(pos, batch, ratio=ratio, random_start=False)
        assert torch.equal(graph._fps_equal_clouds(pos.view(clouds, n, 3), ratio), want)
    # farthest_point_sample takes this path for equal clouds and torch_cluster's for
    # unequal ones; both start at the point farthest from the centroid
    pos = torch.randn(400, 3, generator=g, dtype=dtype)
    for batch in (torch.arange(4).repeat_interleave(100), (torch.arange(400) >= 150).long()):
        idx = graph.farthest_point_sample(pos, 0.25, batch)
        assert idx.unique().numel() == idx.numel()
        for cloud in batch.unique():
            inside = (batch == cloud).nonzero().squeeze(1)
            picked = idx[torch.isin(idx, inside)]
            assert picked.numel() == -(-inside.numel() // 4)  # ceil(0.25 n)
            first = picked[0]
            offsets = pos[inside] - pos[inside].mean(0)
            assert first == inside[offsets.norm(dim=1).argmax()]


def test_repeat_to_a_fixed_degree_keeps_every_edge_and_each_receiver_group():
    g = torch.Generator().manual_seed(2)
    src, dst = torch.rand(500, 3, generator=g), torch.rand(40, 3, generator=g)
    nbhd = graph.Neighbourhood.radius(src, dst, 0.2, max_num_neighbors=12)
    fixed = nbhd.repeat_to(12)
    assert fixed.degree == 12 and fixed.edge_index.size(1) == 12 * 40
    assert torch.equal(fixed.edge_index[1], torch.arange(40).repeat_interleave(12))
    pairs = {tuple(e) for e in nbhd.edge_index.t().tolist()}
    assert {tuple(e) for e in fixed.edge_index.t().tolist()} == pairs  # repeats only
    far = torch.cat([dst, torch.full((1, 3), 9.0)])  # a receiver with no source in reach
    lonely = graph.Neighbourhood.radius(src, far, 0.2, max_num_neighbors=12)
    assert lonely.repeat_to(12) is lonely
    assert nbhd.repeat_to(2) is nbhd  # more edges than 2 somewhere: nothing dropped
    shuffled = graph.Neighbourhood(nbhd.edge_index.flip(1), 500, 40)  # not grouped
    assert shuffled.repeat_to(12) is shuffled


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [(300, 200), (300, 5)])  # the second cloud below k
def test_radius_keeps_the_nearest_sources_inside_the_ball_nearest_first(sizes, dtype):
    """Against brute force: per receiver, the sources of its cloud strictly within r,
    nearest first, cut to the cap; receivers in order."""
    g = torch.Generator().manual_seed(7)
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    src = torch.rand(len(batch), 3, generator=g, dtype=dtype)
    dst_batch = torch.cat([torch.full((40,), i) for i in range(len(sizes))])
    dst = torch.rand(len(dst_batch), 3, generator=g, dtype=dtype)
    for r, cap in ((0.15, 12), (0.4, 12), (2.0, 16)):
        edges = graph.radius(src, dst, r, batch, dst_batch, max_num_neighbors=cap).t().tolist()
        expected = []
        for i in range(len(dst)):
            dist = (src - dst[i]).pow(2).sum(-1)
            inside = ((dist < r * r) & (batch == dst_batch[i])).nonzero().squeeze(1)
            nearest = inside[torch.sort(dist[inside], stable=True).indices][:cap]
            expected += [[j, i] for j in nearest.tolist()]
        assert edges == expected
    on_edge = torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=dtype)
    edges = graph.radius(on_edge, on_edge[:1], 0.5, max_num_neighbors=3)  # 0.5 away: out
    assert edges.tolist() == [[0, 1], [0, 0]]


def test_patch_search_finds_the_nearest_and_orders_the_points_by_place():
    g = torch.Generator().manual_seed(3)
    pos = torch.rand(4000, 3, generator=g, dtype=torch.float64)
    search = graph.PatchSearch(pos)
    nearest = search.query(pos[:50], 10)
    brute = torch.cdist(pos[:50], pos).topk(10, largest=False).indices
    assert torch.equal(nearest, brute)
    order = search.order
    assert torch.equal(order.sort().values, torch.arange(4000))  # a permutation
    step = (pos[order[1:]] - pos[order[:-1]]).norm(dim=1).mean()
    assert step < 0.25 * (pos[1:] - pos[:-1]).norm(dim=1).mean()  # neighbours adjacent


def test_patch_search_keeps_every_points_nearest_for_the_plane_fit():
    g = torch.Generator().manual_seed(4)
    pos = torch.rand(3000, 3, generator=g, dtype=torch.float64)
    search = graph.PatchSearch(pos)
    index = torch.tensor([0, 7, 2999])
    asked = search.neighbours_of(index, 12)  # no table yet: a query
    assert torch.equal(asked, search.query(pos[index], 12))
    table = search.nearest(16)
    assert table.dtype == torch.int32 and table.shape == (3000, 16)
    assert torch.equal(table.long(), search.query(pos, 16))
    assert torch.equal(table[:, 0].long(), torch.arange(3000))  # itself first
    assert torch.equal(search.neighbours_of(index, 12), asked)  # now rows of the table
    assert torch.equal(search.nearest(8), table[:, :8])  # the same table, not a new query
    assert torch.equal(search.neighbours_of(index, 20), search.query(pos[index], 20))


def _lattice(n: int, seed: int, step: float = 0.125) -> torch.Tensor:
    """``(n, 3)`` float64 points on a coarse lattice: many exactly equal distances."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-6, 7, (n, 3), generator=g).double().mul(step).unique(dim=0)


def _tie_rule_knn(src: torch.Tensor, dst: torch.Tensor, k: int, same: torch.Tensor) -> list:
    """Brute force: per receiver, the sources ``same[i]`` allows, ordered by (tie_key of
    the distance, tie_key of the squared norm, index), the first ``k``."""
    edges = []
    norm = graph.tie_key(src.pow(2).sum(-1)).tolist()
    for i in range(len(dst)):
        dist = graph.tie_key((src - dst[i]).pow(2).sum(-1)).tolist()
        allowed = same[i].nonzero().squeeze(1).tolist()
        edges += [[j, i] for j in sorted(allowed, key=lambda j: (dist[j], norm[j], j))[:k]]
    return edges


@pytest.mark.parametrize("k", [3, 7, 16])
def test_knn_in_float64_follows_the_tie_rule_whole_tie_groups_included(k):
    """On a lattice the k-th place falls inside groups of equal distances (6 at one step,
    12 at √2 ...), often wider than the k + 1 candidates first queried: the rows are
    widened until the group is whole. Batched, with a cloud of fewer than k points (the
    other path) too."""
    pos = _lattice(900, seed=k)
    for sizes in ((len(pos),), (300, len(pos) - 300), (len(pos) - k + 2, k - 2)):
        batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
        edges = graph.knn(pos, pos[::5], k, batch, batch[::5]).t().tolist()
        assert edges == _tie_rule_knn(pos, pos[::5], k, batch[::5, None] == batch[None])
    search = graph.PatchSearch(pos)
    rows = search.query(pos[::5], k).tolist()
    want = _tie_rule_knn(pos, pos[::5], k, torch.ones(len(pos[::5]), len(pos), dtype=bool))
    assert [[j, i] for i, row in enumerate(rows) for j in row] == want


def test_neighbours_and_samples_on_quantised_coordinates_commute_with_rotations():
    """ModelNet40-like coordinates (a 0.1 grid: not exact in binary): rotating and
    reflecting the cloud breaks its many exact ties by rounding. In float64 every
    neighbour set, ball, farthest-point pick and patch-search rank stays the same;
    torch_cluster's own kNN does not (what this guards against)."""
    import torch_cluster

    from pointnormals.geometry import random_orthogonal

    g = torch.Generator().manual_seed(11)
    pos = torch.randint(-15, 16, (3000, 3), generator=g).double().div(10).unique(dim=0)
    pos = pos[:2400] - pos[:2400].mean(0)
    batch = (torch.arange(2400) >= 1200).long()  # two equal clouds (a batch of patches)
    q = random_orthogonal(1, dtype=torch.float64, generator=g)[0]
    q = q if torch.linalg.det(q) < 0 else -q  # a reflection
    moved = pos @ q.T

    def answers(p: torch.Tensor) -> list[torch.Tensor]:
        return [
            graph.knn(p, p[::3], 10, batch, batch[::3]),
            graph.knn_graph(p, 6, batch),  # no self-loops: k + 1, itself dropped
            graph.radius(p, p[::7], 0.25, batch, batch[::7], max_num_neighbors=12),
            graph.farthest_point_sample(p, 0.1, batch),
            graph.farthest_point_sample(p[:1000], 0.1),
            graph.PatchSearch(p).query(p[::11], 40),
        ]

    for got, want in zip(answers(moved), answers(pos), strict=True):
        assert torch.equal(got, want)
    raw = [torch_cluster.knn(p, p[::3], 10, batch, batch[::3])[1] for p in (pos, moved)]
    assert not torch.equal(*raw)
