"""Neighbourhood graphs and sampling: the only module that imports ``torch_cluster``.

All functions work on CPU and CUDA tensors and accept PyG ``batch`` vectors so that
clouds of different sizes are processed together without mixing.

Edges follow PyG's ``source_to_target`` convention: ``edge_index[0]`` are the
neighbours ``j`` (sources), ``edge_index[1]`` the receivers ``i`` (targets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_cluster
from torch import Tensor

__all__ = [
    "Neighbourhood",
    "PatchSearch",
    "farthest_point_sample",
    "knn",
    "knn_dense",
    "knn_graph",
    "radius",
    "rank_by_distance",
    "tie_key",
]


@dataclass(frozen=True)
class Neighbourhood:
    r"""Edges ``j → i`` from ``num_src`` sources to ``num_dst`` receivers, and their layout.

    ``degree`` is ``k`` when receiver ``i`` has exactly the ``k`` consecutive edges
    ``k·i … k·i + k − 1`` (a kNN graph): tensorial layers then move all ``k`` messages
    of a receiver with one matrix. Build it with :meth:`knn` or :meth:`radius`; a
    hand-made one has ``degree=None``, the safe default for any edge order.

    Shapes:
        edge_index: ``(2, E)``, row 0 the sources ``j``, row 1 the receivers ``i``.
    """

    edge_index: Tensor
    num_src: int
    num_dst: int
    degree: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(num_src, num_dst)``, PyG's ``size`` argument of ``propagate``."""
        return self.num_src, self.num_dst

    @classmethod
    def knn(
        cls,
        pos_src: Tensor,
        pos_dst: Tensor,
        k: int,
        batch_src: Tensor | None = None,
        batch_dst: Tensor | None = None,
    ) -> Neighbourhood:
        """The :func:`knn` graph. torch_cluster groups its output by receiver (ascending)
        with at most ``k`` edges each, so ``E == k·num_dst`` proves the fixed degree
        without a host sync."""
        edge_index = knn(pos_src, pos_dst, k, batch_src, batch_dst)
        n_dst = pos_dst.size(0)
        degree = k if edge_index.size(1) == k * n_dst else None
        return cls(edge_index, pos_src.size(0), n_dst, degree)

    @classmethod
    def radius(
        cls,
        pos_src: Tensor,
        pos_dst: Tensor,
        r: float,
        batch_src: Tensor | None = None,
        batch_dst: Tensor | None = None,
        max_num_neighbors: int = 64,
    ) -> Neighbourhood:
        """The :func:`radius` graph (any number of edges per receiver, nearest first)."""
        edge_index = radius(pos_src, pos_dst, r, batch_src, batch_dst, max_num_neighbors)
        return cls(edge_index, pos_src.size(0), pos_dst.size(0))

    def repeat_to(self, k: int) -> Neighbourhood:
        r"""Every receiver's edges (grouped by receiver, at most ``k`` each, as
        :meth:`radius` gives them), its last one repeated up to ``k``: a fixed degree.

        Only for aggregations that ignore repeated messages (max, min): there the result
        is the same, and a layer moves all ``k`` messages of a receiver with one matrix
        instead of one per edge. Returned unchanged where that cannot hold: a receiver
        without edges (nothing to repeat) or with more than ``k``, or edges not grouped
        by receiver.

        >>> nbhd = Neighbourhood(torch.tensor([[4, 2, 3, 0], [0, 0, 1, 2]]), 5, 3)
        >>> nbhd.repeat_to(2).edge_index.tolist(), nbhd.repeat_to(2).degree
        ([[4, 2, 3, 3, 0, 0], [0, 0, 1, 1, 2, 2]], 2)
        """
        dst = self.edge_index[1]
        counts = torch.bincount(dst, minlength=self.num_dst)
        if self.num_dst == 0:
            return self
        grouped = (dst[1:] >= dst[:-1]).all() & (counts > 0).all() & (counts <= k).all()
        if not bool(grouped):
            return self
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(k, device=dst.device).unsqueeze(0)  # (1, k)
        edge = starts.unsqueeze(1) + torch.minimum(slot, (counts - 1).unsqueeze(1))  # (N, k)
        return Neighbourhood(self.edge_index[:, edge.reshape(-1)], self.num_src, self.num_dst, k)


def knn(
    pos_src: Tensor,
    pos_dst: Tensor,
    k: int,
    batch_src: Tensor | None = None,
    batch_dst: Tensor | None = None,
) -> Tensor:
    """The ``k`` nearest source points of every destination point (bipartite).

    In float64, distance ties follow :func:`tie_key`'s rule, so the chosen sets commute
    with rotations, reflections and translations even on quantised coordinates: ``k + 1``
    candidates are queried, ordered by (:func:`tie_key` of the distance, of the source's
    distance to the origin, source index) and cut to ``k`` (:func:`_cut_with_ties`); a
    receiver whose ``k``-th and last candidates tie is queried again, twice as wide.
    Other dtypes keep torch_cluster's answer, and so does a batched CUDA query beyond its
    kernel's :data:`CUDA_KNN_MAX_K` (widening stops there).

    Args:
        pos_src: source points, ``(N, d)``.
        pos_dst: destination points, ``(M, d)``.
        k: neighbours per destination point (fewer if a cloud is smaller).
        batch_src: cloud index of every source point, ``(N,)``.
        batch_dst: cloud index of every destination point, ``(M,)``.

    Returns:
        ``edge_index`` of shape ``(2, E)``: row 0 indexes ``pos_src`` (j), row 1
        indexes ``pos_dst`` (i), grouped by receiver (ascending).
    """
    batched = batch_src is not None or batch_dst is not None
    limit = CUDA_KNN_MAX_K if pos_dst.is_cuda and batched else pos_src.size(0)
    if pos_src.dtype != torch.float64 or k + 1 > limit:
        return _knn_query(pos_src, pos_dst, k, batch_src, batch_dst)
    num_dst, norm_key = pos_dst.size(0), tie_key(pos_src.pow(2).sum(-1))
    edge_index = _knn_query(pos_src, pos_dst, k + 1, batch_src, batch_dst)
    if num_dst == 0 or edge_index.size(1) != (k + 1) * num_dst:  # a cloud of <= k points
        edge_index = _knn_query(pos_src, pos_dst, k + TIE_MARGIN, batch_src, batch_dst)
        return _nearest_with_ties(edge_index, pos_src, pos_dst, k)
    if batched:  # every receiver's cloud size (queries stay unbatched if they were)
        sizes = torch.bincount(batch_src)[batch_dst]
    else:
        sizes = torch.full((num_dst,), pos_src.size(0), device=pos_src.device)

    def widen(queries: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor] | None:
        # the others already hold their whole cloud (width // 2 candidates)
        keep = (sizes[queries] > width // 2).nonzero().squeeze(1)
        if keep.numel() == 0 or width // 2 >= limit:
            return None
        dst = queries[keep]
        width = min(width, limit, int(sizes[dst].min()))
        batch = batch_dst[dst] if batched else None
        src = _knn_query(pos_src, pos_dst[dst], width, batch_src, batch)[0]
        src = src.view(-1, width)
        return keep, src, _sq_dist(pos_src, src, pos_dst[dst].unsqueeze(1))

    src = edge_index[0].view(num_dst, k + 1)
    src = _cut_with_ties(src, _sq_dist(pos_src, src, pos_dst.unsqueeze(1)), norm_key, k, widen)
    dst = torch.arange(num_dst, device=src.device).repeat_interleave(k)
    return torch.stack([src.reshape(-1), dst], dim=0)


def _knn_query(
    pos_src: Tensor, pos_dst: Tensor, k: int, batch_src: Tensor | None, batch_dst: Tensor | None
) -> Tensor:
    """torch_cluster's kNN (``edge_index``, grouped by receiver, any order inside a
    group), or :func:`knn_dense` where its CUDA kernel cannot take ``k``."""
    if pos_dst.is_cuda and k > CUDA_KNN_MAX_K:
        if batch_src is not None or batch_dst is not None:
            raise ValueError(f"knn: k={k} > {CUDA_KNN_MAX_K} on CUDA needs batch=None")
        return knn_dense(pos_src, pos_dst, k)
    dst, src = torch_cluster.knn(pos_src, pos_dst, k, batch_src, batch_dst)
    return torch.stack([src, dst], dim=0)


TIE_BITS = 32
""":func:`tie_key` rounds this many low bits off a float64 squared distance: values that
differ by less than about 2^-20 (1e-6) of themselves fall in one bucket."""

TIE_MARGIN = 8
"""Extra candidates :func:`knn` queries in float64 where a batch holds a cloud of at most
``k`` points (no fixed layout to widen row by row), so that a group of tied distances at
the ``k``-th place is seen whole before the cut."""


def tie_key(sq_dist: Tensor, inplace: bool = False) -> Tensor:
    r"""Sort keys of squared distances that rotations cannot reorder: float64 → ``int64``.

    On quantised coordinates (a 1 mm grid, ModelNet40's 4 decimals) many distances are
    exactly equal. Rotate the cloud and rounding (about 1e-14 of a squared distance)
    breaks every such tie at random, so neighbour cuts and farthest-point picks change.
    The key is the float64 bit pattern (monotone for values ``>= 0``) rounded to its
    :data:`TIE_BITS` lowest bits: equal values, and values within ~1e-6 of each other,
    share a key, and a tie broken by rounding stays one unless it straddles a bucket
    edge (a chance of about 1e-14 / 1e-6 per tie). Rounded, not truncated: short binary
    fractions (0.25, 1.5 ...), common squared distances on a grid, sit at the middle of
    a bucket instead of at an edge that one ulp less would cross. Callers break the
    remaining ties by an invariant key, then by index. Other dtypes are returned
    unchanged (float32 decisions are not exact under rotation anyway). ``inplace``: the
    keys overwrite the float64 buffer, returned as its int64 view (no allocation).

    Shapes:
        sq_dist: any shape, values ``>= 0`` → the same shape.

    >>> tie_key(torch.tensor([1.0, 1.0 + 1e-12, 1.0 - 1e-15, 1.0 + 1e-3], dtype=torch.float64))
    tensor([1072693248, 1072693248, 1072693248, 1072694297])
    """
    if sq_dist.dtype != torch.float64:
        return sq_dist
    bits = sq_dist.view(torch.int64)
    if inplace:
        return bits.add_(1 << (TIE_BITS - 1)).bitwise_right_shift_(TIE_BITS)
    return (bits + (1 << (TIE_BITS - 1))) >> TIE_BITS  # rounded


def _nearest_with_ties(edge_index: Tensor, pos_src: Tensor, pos_dst: Tensor, k: int) -> Tensor:
    """The ``k`` first edges of every receiver in :func:`_tie_order`'s order, grouped by
    receiver, from candidates in any layout (any count per receiver, any order)."""
    src, dst = edge_index
    dist = _sq_dist(pos_src, src, pos_dst.index_select(0, dst))
    key = (tie_key(dist) << 31) | tie_key(pos_src.pow(2).sum(-1))[src]
    order = torch.sort(src, stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    order, rank = _group_by_receiver(dst, order, pos_dst.size(0))
    return edge_index[:, order[rank < k]]


def _cut_with_ties(
    rows: Tensor,
    sq_dist: Tensor,
    norm_key: Tensor,
    k: int,
    widen: Callable[[Tensor, int], tuple[Tensor, Tensor, Tensor] | None],
) -> Tensor:
    """The first ``k`` of every row's candidates in :func:`_tie_order`.

    ``rows`` must hold the ``W`` nearest points of each query (exact distances, any
    order; rows already sorted with no two equal keys, as a KD-tree or torch_cluster
    gives them on continuous coordinates, are kept without a sort). Where the ``k``-th
    and the ``W``-th share a :func:`tie_key`, points beyond the ``W``-th may tie too:
    ``widen(queries, 2 W)`` (row positions) returns the positions into ``queries`` of
    those that have more points, their wider candidates ``(S, W')`` and squared
    distances, or ``None``; the cut repeats on them. ``rows`` is reordered in place.

    Shapes:
        rows, sq_dist: ``(M, W)``; norm_key: ``(N,)`` every point's :func:`tie_key` of
        its squared norm → ``(M, min(k, W))``, nearest first.
    """
    key = tie_key(sq_dist)
    unsorted = (key[:, 1:] <= key[:, :-1]).any(1).nonzero().squeeze(1)  # ties, or out of order
    if unsorted.numel():  # (a KD-tree's rows come sorted: only rows with ties are sorted)
        order = _tie_order(rows[unsorted], key[unsorted], norm_key)
        rows[unsorted] = rows[unsorted].gather(1, order)
        key[unsorted] = key[unsorted].gather(1, order)
    width = rows.size(1)
    if width > k:
        straddle = (key[:, k - 1] == key[:, width - 1]).nonzero().squeeze(1)
        more = widen(straddle, 2 * width) if straddle.numel() else None
        if more is not None:
            keep, wide_rows, wide_sq = more
            sub = straddle[keep]

            def widen_sub(queries: Tensor, width: int):
                return widen(sub[queries], width)

            rows[sub, :k] = _cut_with_ties(wide_rows, wide_sq, norm_key, k, widen_sub)
    return rows[:, :k]


def _sq_dist(pos: Tensor, index: Tensor, centres: Tensor) -> Tensor:
    """``|pos[index] - centres|²`` coordinate by coordinate (3× faster than gathering
    ``(..., 3)`` rows). Shapes: pos ``(N, d)``, index any shape ``S``, centres
    broadcastable to ``S + (d,)`` → ``S``."""
    out = None
    for axis, column in enumerate(pos.t().contiguous()):
        diff = column.take(index) - centres[..., axis]
        out = diff * diff if out is None else out.addcmul_(diff, diff)
    return out


def _tie_order(index: Tensor, dist_key: Tensor, norm_key: Tensor) -> Tensor:
    """Candidates ordered by (:func:`tie_key` of the squared distance, :func:`tie_key` of
    the candidate's squared norm, candidate index): an order that rotations about the
    origin and reflections do not change, nor translations of a centred cloud. Both keys
    fit 31 bits (float64 values ``>= 0``), so they pack into one int64.

    Shapes:
        index: ``(M, W)`` candidates of every query (distinct in a row), dist_key:
        ``(M, W)`` their distances' keys, norm_key: ``(N,)`` every point's → ``(M, W)``
        positions into each row, nearest first.
    """
    key = (dist_key << 31) | norm_key.take(index)
    by_index = index.argsort(dim=1)
    return by_index.gather(1, key.gather(1, by_index).argsort(dim=1, stable=True))


CUDA_KNN_MAX_K = 100
"""torch_cluster's CUDA kNN keeps at most 100 neighbours; :func:`knn` goes dense above."""


def knn_dense(pos_src: Tensor, pos_dst: Tensor, k: int, chunk_elements: int = 2**24) -> Tensor:
    """Exact kNN by chunked pairwise distances and ``topk`` (any ``k``, any device).

    For large ``k`` on a GPU (patches of a scan), where torch_cluster's CUDA kernel stops
    at :data:`CUDA_KNN_MAX_K`. Memory: ``chunk_elements`` distances at a time. Same
    output as :func:`knn` (nearest first per receiver).
    """
    k = min(k, pos_src.size(0))
    rows = max(1, chunk_elements // max(1, pos_src.size(0)))
    cols = []
    for start in range(0, pos_dst.size(0), rows):
        diff = pos_dst[start : start + rows, None, :] - pos_src[None, :, :]
        dist = diff.pow(2).sum(-1)  # exact squared distances (no matmul trick)
        cols.append(dist.topk(k, dim=1, largest=False, sorted=True).indices)
    src = torch.cat(cols).reshape(-1)
    dst = torch.arange(pos_dst.size(0), device=pos_dst.device).repeat_interleave(k)
    return torch.stack([src, dst], dim=0)


class PatchSearch:
    """Many neighbours (``k`` in the thousands) of many points in one large cloud.

    What patch planning and the plane fit need: a KD-tree (SciPy's ``cKDTree``, built
    once; about 10x faster than :func:`knn` at ``k = 1024``, and it scales to millions
    of points), on every device. A CUDA cloud is searched through a CPU copy and the
    indices move to the GPU: a brute-force search there (:func:`knn_dense`) costs
    ``O(N)`` per query point, so ``O(N^2)`` for the plane fit, which queries every point
    (``N^2 / 2^24`` chunks: ~60 000 at a million points). Results are sorted nearest
    first, so distance ranks are well defined. A query uses as many threads as torch's
    intra-op threads (one inside :func:`~pointnormals.parallel.thread_map`).

    Args:
        pos: ``(N, 3)`` the cloud.
    """

    def __init__(self, pos: Tensor) -> None:
        from scipy.spatial import cKDTree

        self.pos = pos
        self._tree = cKDTree(pos.detach().cpu().double().numpy())
        self._nearest: Tensor | None = None
        self._norm_key: Tensor | None = None  # float64 clouds: tie_key of |p|², for ties

    @property
    def order(self) -> Tensor:
        """``(N,)`` the points in an order where neighbours sit close together: the
        KD-tree's leaves one after the other (chunks of points queried in this order
        share their neighbours, so gathers hit the cache)."""
        return torch.from_numpy(self._tree.indices).to(device=self.pos.device, dtype=torch.long)

    def nearest(self, k: int) -> Tensor:
        """``(N, k)`` the ``k`` nearest points of every point of the cloud (itself first,
        unless it has a copy), as :meth:`query` of the whole cloud; computed once and kept
        (int32: 64 bytes a point at ``k = 16``) for every later call with this ``k`` or a
        smaller one. Queried in chunks of 2^18 points in :attr:`order` (consecutive queries
        walk the same branches of the tree: 0.30 -> 0.21 s at k = 17 on a shuffled cloud of
        100k points), so the search's own temporaries (distances and int64 indices) stay
        small on a cloud of millions."""
        n, k = self.pos.size(0), min(k, self.pos.size(0))
        if self._nearest is None or self._nearest.size(1) < k:
            table = torch.empty(n, k, dtype=torch.int32, device=self.pos.device)
            for rows in self.order.split(2**18):
                table[rows] = self.query(self.pos[rows], k).int()
            self._nearest = table
        return self._nearest[:, :k]

    def neighbours_of(self, index: Tensor, k: int) -> Tensor:
        """``(B, k)`` the ``k`` nearest points of the points ``index`` ``(B,)`` of the cloud:
        rows of :meth:`nearest` when it already holds ``k`` columns, else a query."""
        k = min(k, self.pos.size(0))
        if self._nearest is not None and self._nearest.size(1) >= k:
            return self._nearest[index, :k].long()
        return self.query(self.pos[index], k)

    def query(self, centres: Tensor, k: int) -> Tensor:
        """Indices ``(C, k)`` of the ``k`` points nearest to each of ``centres`` ``(C, 3)``.

        A float64 cloud's ties follow :func:`knn`'s rule (``k + 1`` candidates ordered
        by :func:`tie_key`, then distance to the origin, then index; queried wider where
        the cut falls inside a tie), so on quantised coordinates the ranks commute with
        rotations, reflections and translations of a centred cloud."""
        n = self.pos.size(0)
        k = min(k, n)
        query = centres.detach().cpu().double()
        if self.pos.dtype != torch.float64:  # the tree's order (exact ties as it finds them)
            return self._candidates(query, k)[0].to(device=self.pos.device)
        if self._norm_key is None:
            self._norm_key = tie_key(torch.from_numpy(self._tree.data).pow(2).sum(-1))

        def widen(queries: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor] | None:
            if width // 2 >= n:  # every point is a candidate already
                return None
            every = torch.arange(queries.numel())
            return every, *self._candidates(query[queries], min(width, n))

        index = _cut_with_ties(*self._candidates(query, min(k + 1, n)), self._norm_key, k, widen)
        return index.to(device=self.pos.device)

    def _candidates(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest points ``(C, k)`` (int64, CPU) of float64 CPU ``query``
        ``(C, 3)``, nearest first, and their squared distances."""
        dist, index = self._tree.query(query.numpy(), k=k, workers=torch.get_num_threads())
        dist = torch.from_numpy(dist.reshape(len(query), k))
        return torch.from_numpy(index.reshape(len(query), k)), dist.mul_(dist)


def knn_graph(pos: Tensor, k: int, batch: Tensor | None = None, loop: bool = False) -> Tensor:
    """The kNN graph of one (batched) cloud; ``edge_index`` ``(2, N*k)``, j → i. In
    float64 it is :func:`knn` of the cloud to itself (its tie rule), as torch_cluster
    builds it: without self-loops, ``k + 1`` neighbours and the point itself dropped."""
    if pos.dtype == torch.float64:
        edge_index = knn(pos, pos, k if loop else k + 1, batch, batch)
        return edge_index if loop else edge_index[:, edge_index[0] != edge_index[1]]
    return torch_cluster.knn_graph(pos, k, batch, loop=loop, flow="source_to_target")


def radius(
    pos_src: Tensor,
    pos_dst: Tensor,
    r: float,
    batch_src: Tensor | None = None,
    batch_dst: Tensor | None = None,
    max_num_neighbors: int = 64,
) -> Tensor:
    """The at most ``max_num_neighbors`` nearest source points strictly within distance
    ``r`` of every destination point (bipartite), grouped by receiver, nearest first.

    A :func:`knn` query of ``max_num_neighbors`` whose edges outside the ball are
    dropped: the same edges as every source within ``r`` cut to the nearest ones, in
    memory ``O(M k)``. (``torch_cluster.radius`` would keep the *first*
    ``max_num_neighbors`` points in memory order, which depends on the input
    permutation; asked for all of them it sizes its CUDA output ``M × N``.) Ties at the
    cap and on the sphere follow :func:`knn`'s rule (:func:`tie_key`). Where the CUDA kNN
    cannot take ``k`` (batched, ``k >`` :data:`CUDA_KNN_MAX_K`), every source within
    ``r`` is queried and the nearest kept.

    Returns:
        ``edge_index`` ``(2, E)``, row 0 indexes ``pos_src``, row 1 ``pos_dst``.
    """
    k = max_num_neighbors
    batched = batch_src is not None or batch_dst is not None
    if pos_dst.is_cuda and k > CUDA_KNN_MAX_K and batched:  # candidates: all within r
        dst, src = torch_cluster.radius(
            pos_src, pos_dst, r, batch_src, batch_dst, max_num_neighbors=pos_src.size(0)
        )
        edge_index, fixed = torch.stack([src, dst]), False
        if pos_src.dtype == torch.float64:  # memory order → knn's tie order
            edge_index = _nearest_with_ties(edge_index, pos_src, pos_dst, k)
    else:  # candidates: the k nearest (exactly k per receiver unless a cloud is smaller)
        edge_index = knn(pos_src, pos_dst, k, batch_src, batch_dst)
        fixed = edge_index.size(1) == k * pos_dst.size(0)
    src, dst = edge_index
    dist = tie_key((pos_src[src] - pos_dst[dst]).pow(2).sum(-1))
    if fixed:  # k per receiver, grouped: sort each row (stable: knn's order of ties)
        dist, order = torch.sort(dist.view(-1, k), dim=1, stable=True)
        order = (order + k * torch.arange(order.size(0), device=order.device)[:, None]).view(-1)
        dist = dist.view(-1)
    else:  # any count per receiver: rank them, keep the k nearest
        order, rank = rank_by_distance(dst, dist, pos_dst.size(0))
        order = order[rank < k]
        dist = dist[order]
    inside = dist < tie_key(torch.tensor(r * r, dtype=pos_src.dtype, device=dist.device))
    return edge_index[:, order[inside]]


def rank_by_distance(dst: Tensor, dist: Tensor, num_dst: int) -> tuple[Tensor, Tensor]:
    """Order edges by (receiver, distance) and rank each inside its receiver's group.

    Returns:
        ``order`` (edge indices, grouped by receiver, nearest first) and ``rank`` (the
        position of ``order[e]`` inside its group, 0 = nearest). Equal distances (equal
        :func:`tie_key` values in float64) keep the input order. No host synchronisation.
    """
    return _group_by_receiver(dst, torch.sort(tie_key(dist), stable=True).indices, num_dst)


def _group_by_receiver(dst: Tensor, order: Tensor, num_dst: int) -> tuple[Tensor, Tensor]:
    """``order`` regrouped by receiver (stable: each group keeps ``order``'s order), and
    every edge's rank inside its group."""
    order = order[torch.sort(dst[order], stable=True).indices]
    dst_sorted = dst[order]
    counts = torch.bincount(dst_sorted, minlength=num_dst)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(dst_sorted.numel(), device=dst.device) - starts[dst_sorted]
    return order, rank


def farthest_point_sample(pos: Tensor, ratio: float, batch: Tensor | None = None) -> Tensor:
    """Farthest point sampling with a rotation- and permutation-invariant start.

    ``torch_cluster.fps`` starts at the first point of every cloud (or a random one);
    both depend on the input order. We therefore reorder each cloud so that its point
    farthest from the cloud's centroid comes first, which makes the selected *set*
    invariant to rotations, reflections, translations and permutations (up to exact
    distance ties). On CPU, clouds of equal size (a batch of patches) are sampled
    together (:func:`_fps_equal_clouds`, the same picks 3-4× faster).

    Ties in float64 (:func:`tie_key`): the start is the first of the tied farthest
    points in input order, and on CPU every later pick likewise, so on quantised
    coordinates the picks still commute with rotations, reflections and translations
    (not with permutations: no invariant key separates mirrored points). torch_cluster's
    kernel (CUDA, unequal clouds) breaks later ties by rounding.

    Args:
        pos: ``(N, d)`` points.
        ratio: fraction of points kept per cloud, in ``(0, 1]``.
        batch: ``(N,)`` cloud index (sorted, as PyG produces it).

    Returns:
        Indices into ``pos`` of the sampled centres, ``(M,)``.
    """
    if batch is None:
        batch = pos.new_zeros(pos.size(0), dtype=torch.long)
    num_clouds = int(batch.max()) + 1 if batch.numel() else 0
    ones = torch.ones_like(batch, dtype=pos.dtype)
    counts = torch.zeros(num_clouds, dtype=pos.dtype, device=pos.device).index_add_(0, batch, ones)
    centroid = torch.zeros(num_clouds, pos.size(1), dtype=pos.dtype, device=pos.device)
    centroid = centroid.index_add_(0, batch, pos) / counts.clamp_min(1).unsqueeze(-1)
    dist = (pos - centroid[batch]).pow(2).sum(-1)
    # order: by cloud, then by decreasing distance to the centroid (stable)
    order = torch.sort(tie_key(dist), descending=True, stable=True).indices
    order = order[torch.sort(batch[order], stable=True).indices]
    pos, batch = pos[order], batch[order]
    if pos.device.type == "cpu" and num_clouds and bool((counts == counts[0]).all()):
        size = pos.size(0) // num_clouds  # equal clouds, e.g. a batch of patches
        return order[_fps_equal_clouds(pos.view(num_clouds, size, -1), ratio)]
    return order[torch_cluster.fps(pos, batch, ratio=ratio, random_start=False)]


def _fps_equal_clouds(pos: Tensor, ratio: float) -> Tensor:
    r"""``torch_cluster.fps`` (first point first, ``random_start=False``) of ``B`` clouds
    of ``n`` points each, all clouds in one step per sample.

    torch_cluster's CPU kernel samples cloud after cloud, several small tensor operations
    per sample: for a batch of patches (32 × 1024 points, 256 samples each) that is about
    8000 steps, dominated by per-operation overhead. Here each of the ``m`` steps updates
    the squared distances :math:`d_j \leftarrow \min(d_j, \lVert p_j - c\rVert^2)` of
    all clouds at once, coordinate by coordinate in torch_cluster's order of operations,
    so the picks are the same (argmax: first maximum) and 3-4× faster. In float64 the
    distances are compared by :func:`tie_key`, so near-ties go to the first point too.

    Shapes:
        pos: ``(B, n, d)`` → indices into the flattened ``(B * n, d)`` points,
        ``(B * m,)`` cloud after cloud, :math:`m = \lceil \text{ratio} \cdot n\rceil`
        (computed as torch_cluster does).
    """
    clouds, n, dims = pos.shape
    m = int((torch.tensor(float(n)) * ratio).ceil())  # float32, as torch_cluster
    coords = pos.permute(2, 0, 1).contiguous()  # (d, B, n)
    dist = torch.empty(clouds, n, dtype=pos.dtype, device=pos.device)
    diff = torch.empty_like(dist)
    if pos.dtype == torch.float64:  # tie_key's int64 keys
        nearest = torch.full_like(dist, torch.iinfo(torch.int64).max, dtype=torch.int64)
    else:
        nearest = torch.full_like(dist, float("inf"))
    picks = torch.empty(clouds, m, dtype=torch.long, device=pos.device)
    current = torch.zeros(clouds, 1, dtype=torch.long, device=pos.device)
    for step in range(m):
        picks[:, step : step + 1] = current
        centre = coords.gather(2, current.unsqueeze(0).expand(dims, clouds, 1))  # (d, B, 1)
        torch.sub(coords[0], centre[0], out=dist)
        dist.mul_(dist)
        for axis in range(1, dims):
            torch.sub(coords[axis], centre[axis], out=diff)
            dist.add_(diff.mul_(diff))
        torch.minimum(nearest, tie_key(dist, inplace=True), out=nearest)
        current = nearest.argmax(dim=1, keepdim=True)
    offsets = torch.arange(clouds, device=pos.device).unsqueeze(1) * n
    return (picks + offsets).reshape(-1)
