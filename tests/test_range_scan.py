"""A simulated range scan: hits on the near side, exact normals, about the asked size."""

from __future__ import annotations

import numpy as np
import pytest

from pointnormals.data.range_scan import DISTANCE, range_scan
from pointnormals.o3d import cast_rays, primitive_mesh


def test_rays_hit_the_first_surface_or_nothing():
    box = primitive_mesh("box")  # the unit cube [0, 1]^3
    origins = np.array([[0.5, 0.5, 3.0], [0.5, 0.5, 3.0], [5.0, 5.0, 5.0]])
    directions = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    distance, normals = cast_rays(box, origins, directions)
    assert distance[0] == pytest.approx(2.0) and np.isinf(distance[1:]).all()
    assert np.abs(normals[0]) == pytest.approx([0.0, 0.0, 1.0])


@pytest.mark.parametrize("view", [[0.0, 0.0, 1.0], [1.0, -2.0, 0.5]])
def test_a_scanned_sphere_shows_its_near_side_with_radial_normals(view):
    sphere = primitive_mesh("sphere", radius=1.0, resolution=40)
    points, normals, rays = range_scan(sphere, 5000, view)
    view = np.asarray(view) / np.linalg.norm(view)
    assert abs(len(points) - 5000) < 300
    assert (points @ view > 0).all()  # nothing behind the silhouette
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=5e-3)
    radial = np.abs((normals * points).sum(1)) / np.linalg.norm(points, axis=1)
    assert radial.min() > 0.99  # face normals of a fine sphere
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0)
    # every hit lies on its ray from the sensor, which sits DISTANCE radii out
    sensor = points - np.linalg.norm(points - DISTANCE * view, axis=1, keepdims=True) * rays
    np.testing.assert_allclose(sensor, np.broadcast_to(DISTANCE * view, sensor.shape), atol=1e-5)
    # a grid of rays samples the projected area, not the surface: of the near
    # hemisphere's area 10 % faces the sensor within |cos| > 0.9 and 30 % is grazing
    # (|cos| < 0.3), of its projection 1 - 0.9^2 = 19 % and 1 - (1 - 0.3^2) = 9 %
    facing = np.abs((normals * rays).sum(1))
    assert (facing > 0.9).mean() == pytest.approx(0.19, abs=0.03)
    assert (facing < 0.3).mean() == pytest.approx(0.09, abs=0.03)
