"""Pictures of normals: size, colours that follow the normals from known cameras, error maps
with their colour bar, panels side by side, and the errors raised instead of a crash."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from pointnormals import render

PROBLEM = render.offscreen_problem()
needs_renderer = pytest.mark.skipif(
    PROBLEM is not None, reason=f"Open3D's offscreen renderer cannot start here: {PROBLEM}"
)
RED, GREEN, BLUE = 0, 1, 2


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    """A Fibonacci sphere (even coverage) of radius 40 far from the origin, outward normals."""
    n = 6000
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    normals = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], 1)
    return 40.0 * normals + np.array([3e5, -2e5, 1e4]), normals


def picture(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(float)


def silhouette(tile: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, x1, y0, y1) of the non-white pixels."""
    ys, xs = np.nonzero(tile.min(-1) < 245)
    return xs.min(), xs.max(), ys.min(), ys.max()


def dominant(tile: np.ndarray, x: float, y: float, half: int = 2) -> int:
    """The channel that dominates the mean colour of a small window, by a clear margin."""
    window = tile[round(y) - half : round(y) + half + 1, round(x) - half : round(x) + half + 1]
    mean = window.reshape(-1, 3).mean(0)
    order = np.argsort(mean)
    assert mean[order[2]] > 1.4 * mean[order[1]] + 10, f"no dominant channel in {mean}"
    return int(order[2])


def test_colour_maps_ignore_the_sign_and_clip_errors():
    n = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(render.normal_colors(n), render.normal_colors(-3 * n))
    np.testing.assert_allclose(render.normal_colors(np.eye(3)), np.eye(3))
    ends = render.error_colors(np.array([-5.0, 0.0, 60.0, 90.0]))
    np.testing.assert_allclose(ends[:2], render.ERROR_RAMP[[0, 0], 1:])
    np.testing.assert_allclose(ends[2:], render.ERROR_RAMP[[-1, -1], 1:])


@needs_renderer
@pytest.mark.parametrize(("size", "views"), [((320, 240), 1), ((250, 170), 3)])
def test_picture_has_the_requested_size(tmp_path, sphere, size, views):
    path = tmp_path / "sphere.png"
    render.render_normals(path, *sphere, views=views, size=size, title="sphere")
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", size)
    assert not list(tmp_path.glob(".*.tmp"))


@needs_renderer
def test_colours_follow_the_normal_facing_each_known_camera(tmp_path, sphere):
    """Tiles: iso | front (eye on -y, up z, right +x) / side (eye on +x) | top (eye on +z)."""
    path = tmp_path / "views.png"
    render.render_normals(path, *sphere, views=4, size=(480, 480), max_lines=0)
    image = picture(path)
    front, side, top = image[:240, 240:], image[240:, :240], image[240:, 240:]
    for tile, facing in ((front, GREEN), (side, RED), (top, BLUE)):
        x0, x1, y0, y1 = silhouette(tile)
        assert x1 - x0 > 150, "the sphere should fill most of its tile"
        assert dominant(tile, (x0 + x1) / 2, (y0 + y1) / 2) == facing
    # Front view: both sides (normals -x and +x) are red, both poles (-z and +z) blue.
    x0, x1, y0, y1 = silhouette(front)
    cx, cy, inset = (x0 + x1) / 2, (y0 + y1) / 2, 0.03 * (x1 - x0)
    assert dominant(front, x0 + inset, cy) == dominant(front, x1 - inset, cy) == RED
    assert dominant(front, cx, y0 + inset) == dominant(front, cx, y1 - inset) == BLUE


@needs_renderer
def test_flipped_normals_give_the_same_picture_and_lines_are_drawn(tmp_path, sphere):
    points, normals = sphere
    signs = np.where(np.random.default_rng(1).random(len(points)) < 0.5, -1.0, 1.0)
    paths = [tmp_path / f"{name}.png" for name in ("out", "mixed", "bare")]
    render.render_normals(paths[0], points, normals, size=(200, 200), max_lines=500)
    render.render_normals(paths[1], points, signs[:, None] * normals, size=(200, 200),
                          max_lines=500)  # fmt: skip
    render.render_normals(paths[2], points, normals, size=(200, 200), max_lines=0)
    out, mixed, bare = (picture(p) for p in paths)
    np.testing.assert_array_equal(out, mixed)
    # Lines are drawn in half the colour of their point, darker than any point (|n| >= 1/√3).
    assert (out.max(-1) < 135).sum() > 100
    assert (bare.max(-1) < 135).sum() == 0


@needs_renderer
def test_errors_colour_the_points_and_draw_the_scale(tmp_path, sphere):
    points, normals = sphere
    errors = np.where(normals[:, 0] > 0, 75.0, 0.0)  # the +x half is wrong
    path, plain = tmp_path / "errors.png", tmp_path / "plain.png"
    render.render_normals(path, points, normals, errors=errors, views=2, size=(600, 300))
    render.render_normals(plain, points, normals, views=2, size=(600, 300))
    image = picture(path)
    front = image[:, 270:540]  # second tile; the colour bar takes the last 60 pixels
    x0, x1, _, y1 = silhouette(front[:, :, :])
    cy = (silhouette(front)[2] + y1) / 2
    assert dominant(front, x1 - 0.2 * (x1 - x0), cy) == RED  # +x: high error
    assert dominant(front, x0 + 0.2 * (x1 - x0), cy) == BLUE  # -x: no error
    low, high = (255 * render.ERROR_RAMP[i, 1:] for i in (0, -1))

    def bar_pixels(im: np.ndarray, rgb: np.ndarray) -> int:
        return int((np.abs(im[:, 540:] - rgb).max(-1) < 8).sum())

    assert bar_pixels(image, low) > 20 and bar_pixels(image, high) > 20
    assert bar_pixels(picture(plain), high) == 0


@needs_renderer
def test_panels_side_by_side(tmp_path, sphere):
    points, _ = sphere
    axes = np.eye(3)
    panels = [(name, np.tile(axes[i], (len(points), 1)), None) for i, name in enumerate("xyz")]
    path = tmp_path / "panels.png"
    render.render_panels(path, points, panels, size=(600, 220), max_lines=0)
    image = picture(path)
    assert image.shape == (220, 600, 3)
    for i, channel in enumerate((RED, GREEN, BLUE)):
        third = image[40:, 200 * i : 200 * (i + 1)]
        x0, x1, y0, y1 = silhouette(third)
        assert 140 < x1 - x0 < 200
        assert dominant(third, (x0 + x1) / 2, (y0 + y1) / 2) == channel


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "a.jpg"}, "written as .png"),
        ({"normals": np.zeros((5, 3))}, "normals (5, 3) != points"),
        ({"errors": np.zeros(7)}, "errors must have shape"),
        ({"views": 5}, "views must be 1 to 4"),
        ({"size": (40, 400)}, "at least 64 pixels"),
        ({"points": np.full((10, 3), np.nan)}, "NaN"),
        ({"errors": np.full(10, np.nan)}, "NaN"),
        ({"path": "missing/a.png"}, "no folder"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_file(tmp_path, kwargs, message):
    args = {"path": "a.png", "points": np.zeros((10, 3)), "normals": np.ones((10, 3))} | kwargs
    path = tmp_path / args.pop("path")
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(path))}: .*{re.escape(message)}"
    ) as info:
        render.render_normals(path, args.pop("points"), args.pop("normals"), **args)
    assert "\n" not in str(info.value)


def test_no_vulkan_is_a_value_error_not_a_crash(tmp_path, monkeypatch):
    def no_library(name: str):
        raise OSError(f"{name}: cannot open shared object file")

    render.offscreen_problem.cache_clear()
    monkeypatch.setattr(render.sys, "platform", "linux")
    monkeypatch.setattr(render.ctypes, "CDLL", no_library)
    try:
        with pytest.raises(ValueError, match="libvulkan1 mesa-vulkan-drivers"):
            render.render_normals(tmp_path / "a.png", np.zeros((10, 3)), np.ones((10, 3)))
    finally:
        render.offscreen_problem.cache_clear()
    assert not (tmp_path / "a.png").exists()


def test_show_without_a_display_is_a_value_error(monkeypatch):
    monkeypatch.setattr(render.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ValueError, match="no display"):
        render.show_normals(np.zeros((10, 3)), np.ones((10, 3)))
