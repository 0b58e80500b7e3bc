"""Triangle meshes as arrays, and uniform samples of their surface with exact normals.

Pure NumPy: the meshes themselves come from :mod:`pointnormals.o3d` (files, Open3D
primitives, convex hulls) or are built by hand (:mod:`pointnormals.data.synthetic`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Mesh", "sample_mesh"]


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh as arrays.

    Shapes:
        vertices: ``(V, 3)`` float64.
        triangles: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside
        where the source defines an orientation.
    """

    vertices: np.ndarray
    triangles: np.ndarray

    def transformed(self, matrix: np.ndarray, offset: np.ndarray | None = None) -> Mesh:
        r"""The mesh under :math:`x \mapsto A x + b`; winding flips when :math:`\det A < 0`."""
        vertices = self.vertices @ np.asarray(matrix, dtype=np.float64).T
        if offset is not None:
            vertices = vertices + offset
        flip = np.linalg.det(matrix) < 0
        return Mesh(vertices, self.triangles[:, ::-1].copy() if flip else self.triangles)


def sample_mesh(
    mesh: Mesh, num_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    r"""Sample points uniformly on the surface with the normal of the sampled face.

    Faces are drawn with probability proportional to their area, then a point
    :math:`p = (1-\sqrt{u})\,a + \sqrt{u}(1-v)\,b + \sqrt{u}\,v\,c` with
    :math:`u, v \sim U(0, 1)`; its normal is :math:`(b-a)\times(c-a)` normalised, so it is
    exact for the sampled (flat) face. Degenerate faces are never drawn.

    Returns:
        ``points`` ``(num_points, 3)`` and unit ``normals`` ``(num_points, 3)``, float64.
    """
    a, b, c = (mesh.vertices[mesh.triangles[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    if not area.sum() > 0:
        raise ValueError("mesh has zero surface area")
    face = rng.choice(len(area), size=num_points, p=area / area.sum())
    u, v = rng.random((2, num_points, 1))
    su = np.sqrt(u)
    points = (1 - su) * a[face] + su * (1 - v) * b[face] + su * v * c[face]
    return points, cross[face] / area[face, None]
