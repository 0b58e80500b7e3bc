r"""A simulated range scan of a triangle mesh: one viewpoint, a grid of rays.

What a laser or structured-light scanner returns differs from uniform surface samples:
only the side facing the sensor (open boundaries at silhouettes, holes behind
occluders), a density that falls with the grazing angle and the distance (a regular
grid of rays, not of surface area), and noise along the viewing ray.
:func:`range_scan` casts a square grid of rays from a pinhole at distance
:math:`D = 3R` (:data:`DISTANCE`) from the centre of the mesh's bounding box
(:math:`R` the farthest vertex from it), in the direction of ``viewpoint``, over the
field of view that just holds the bounding sphere, at the resolution that gives about
``num_points`` hits; the hits' exact face normals are the reference. Noise is added by
the caller along the returned ``rays``.

>>> from pointnormals.o3d import primitive_mesh
>>> points, normals, rays = range_scan(primitive_mesh("sphere"), 2000, [0.0, 0.0, 1.0])
>>> bool(abs(len(points) - 2000) < 200 and (points[:, 2] > 0).all())  # the near side
True
"""

from __future__ import annotations

import math

import numpy as np

from pointnormals.data.mesh import Mesh
from pointnormals.o3d import cast_rays

__all__ = ["DISTANCE", "range_scan", "sensor_origin"]

DISTANCE = 3.0
"""The sensor's distance from the centre, in radii of the mesh's bounding sphere."""

_PROBE = 64
"""Rays per side of the coarse grid that measures how much of the view the mesh fills."""


def sensor_origin(mesh: Mesh, viewpoint: np.ndarray | list[float]) -> np.ndarray:
    """The pinhole ``(3,)``: :data:`DISTANCE` radii from the box centre towards ``viewpoint``."""
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(mesh.vertices - centre, axis=1).max())
    view = np.asarray(viewpoint, dtype=np.float64)
    return centre + DISTANCE * radius * view / np.linalg.norm(view)


def range_scan(
    mesh: Mesh, num_points: int, viewpoint: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hits of a grid of rays from ``viewpoint`` (a direction from the mesh's centre).

    Returns:
        ``points`` ``(M, 3)``, unit face ``normals`` ``(M, 3)`` and unit ray directions
        ``rays`` ``(M, 3)`` (float64), :math:`M \\approx` ``num_points`` (the grid's
        resolution is rounded; there are fewer when the view holds little surface).
    """
    origin = sensor_origin(mesh, viewpoint)
    # camera basis: forward towards the centre, two axes across it
    view = np.asarray(viewpoint, dtype=np.float64)
    forward = -view / np.linalg.norm(view)
    helper = np.eye(3)[np.argmin(np.abs(forward))]
    right = np.cross(forward, helper)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = 1.0 / math.sqrt(DISTANCE**2 - 1.0)  # tan of the half-angle: R / sqrt(D^2 - R^2)

    def cast(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.linspace(-half, half, side)
        x, y = (a.reshape(-1, 1) for a in np.meshgrid(u, u, indexing="xy"))
        rays = forward + x * right + y * up
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        distance, normals = cast_rays(mesh, np.broadcast_to(origin, rays.shape), rays)
        hit = np.isfinite(distance)
        return origin + distance[hit, None] * rays[hit], normals[hit], rays[hit]

    filled = len(cast(_PROBE)[0]) / _PROBE**2
    side = max(2, round(math.sqrt(num_points / max(filled, 1.0 / _PROBE**2))))
    return cast(side)
