r"""Spanning forests for sign propagation (normal orientation), vectorised with NumPy/SciPy.

A :class:`Forest` is the minimum spanning forest of a weighted graph with every node's
parent and its position in a depth-first preorder, where each subtree is the contiguous
range ``[pre[v], end[v])``. That makes three things cheap: the parity of sign flips along
each node's path to its root (pointer jumping), sums over subtrees (prefix sums) and the
lowest common ancestor of many node pairs (binary lifting). :func:`flip_subtrees` uses
them for a descent on :math:`\sum_{(a,b)} s_{ab}\, \sigma_a \sigma_b`: flipping the signs of
the subtree of :math:`v` changes the sum by :math:`-2\,\mathrm{cut}(v)`, the sum over the
edges that leave the subtree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Forest", "flip_subtrees", "path_parity", "spanning_forest"]


@dataclass(frozen=True)
class Forest:
    """A rooted spanning forest of ``n`` nodes (roots are their own parent).

    Shapes:
        parent, pre, end, labels: ``(n,)``; order: ``(n,)`` (nodes in preorder).
    """

    parent: np.ndarray
    order: np.ndarray
    pre: np.ndarray
    end: np.ndarray
    labels: np.ndarray

    def subtree_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (``(n,)``) over the subtree of every node."""
        prefix = np.concatenate([[0.0], np.cumsum(values[self.order])])
        return prefix[self.end] - prefix[self.pre]

    def common_ancestors(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Lowest common ancestor of every pair ``(a[e], b[e])`` in the same tree."""

        def is_ancestor(u: np.ndarray, w: np.ndarray) -> np.ndarray:
            return (self.pre[u] <= self.pre[w]) & (self.pre[w] < self.end[u])

        ups = [self.parent]  # ups[k][v]: the 2^k-th ancestor (stops at the root)
        while not np.array_equal(ups[-1][ups[-1]], ups[-1]):
            ups.append(ups[-1][ups[-1]])
        x = a
        for up in reversed(ups):  # climb to the highest ancestor of a that is not above b
            y = up[x]
            x = np.where(is_ancestor(y, b), x, y)
        return np.where(is_ancestor(a, b), a, self.parent[x])


def spanning_forest(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, num_nodes: int) -> Forest:
    """Minimum spanning forest of the graph with edges ``(lo[e], hi[e])`` (positive weights).

    Each component is rooted at its lowest index. SciPy drops explicit zero weights.
    """
    from scipy.sparse import coo_matrix, csgraph

    n = num_nodes
    tree = csgraph.minimum_spanning_tree(coo_matrix((weight, (lo, hi)), shape=(n, n)).tocsr())
    tree = tree.tocoo()
    num_comp, labels = csgraph.connected_components(tree, directed=False)
    roots = np.unique(labels, return_index=True)[1]
    # a virtual node n joined to every root: one depth-first search covers the forest
    rows = np.concatenate([tree.row, np.full(num_comp, n)])
    cols = np.concatenate([tree.col, roots])
    joined = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    order, parent = csgraph.depth_first_order(joined, n, directed=False)
    order, node = order[1:], np.arange(n)
    parent = np.where(parent[:n] == n, node, parent[:n])
    pre = np.empty(n, dtype=np.int64)
    pre[order] = node
    # a subtree ends where the next sibling starts, or where the parent's subtree ends
    end = np.full(n, -1, dtype=np.int64)
    end[roots] = pre[roots] + np.bincount(labels)
    children = np.lexsort((pre, parent))
    children = children[parent[children] != children]
    has_next = parent[children[1:]] == parent[children[:-1]]
    end[children[:-1][has_next]] = pre[children[1:][has_next]]
    up = np.where(end < 0, parent, node)
    while (end < 0).any():  # pointer jumping up chains of last children
        end = np.where(end < 0, end[up], end)
        up = up[up]
    return Forest(parent, order, pre, end, labels)


def path_parity(parent: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """XOR of ``flip`` along every node's path to its root, by pointer jumping.

    ``flip[v]`` belongs to the edge (v, parent[v]); roots (``parent[v] == v``) must have
    ``flip[v] == False``. O(n log depth).
    """
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return flip
        flip = flip ^ flip[parent]
        parent = up


def flip_subtrees(
    forest: Forest, a: np.ndarray, b: np.ndarray, score: np.ndarray, flip: np.ndarray, steps: int
) -> np.ndarray:
    r"""Greedy descent: flip the subtree whose boundary edges disagree most, ``steps`` times.

    Args:
        forest: a spanning forest of the graph.
        a, b: edge end points, ``(E,)``.
        score: agreement :math:`s_{ab}` of the unflipped signs, ``(E,)``.
        flip: current flips, ``(n,)`` bool.
        steps: most subtrees flipped; stops earlier when no cut has a negative sum.

    Returns:
        The new flips, ``(n,)`` bool.
    """
    n = len(flip)
    if steps == 0:
        return flip
    lca = forest.common_ancestors(a, b)
    sign = 1.0 - 2.0 * flip
    for _ in range(steps):
        agree = score * sign[a] * sign[b]  # > 0: the edge is consistent
        ends = np.bincount(a, agree, n) + np.bincount(b, agree, n)
        cut = forest.subtree_sums(ends - 2 * np.bincount(lca, agree, n))
        cut[forest.parent == np.arange(n)] = 0  # a whole tree: nothing leaves it
        worst = int(np.argmin(cut))
        if not cut[worst] < -1e-6:
            break
        sign[forest.order[forest.pre[worst] : forest.end[worst]]] *= -1
    return sign < 0
