"""Pictures of normals: Open3D's offscreen renderer, 1-4 views, panels and a colour bar.

Points take RGB = ``|n|`` (unoriented: ``n`` and ``-n`` look the same; x-facing red, y green,
z blue), or with per-point errors a 0-60° ramp and a colour bar; a subsample of normals is
drawn as lines. Headless rendering is Filament on Vulkan (with no GPU: Debian's
``libvulkan1 mesa-vulkan-drivers``); with no Vulkan device it raises ``ValueError`` instead
of letting Filament abort the process. Open3D and Pillow are imported lazily.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import sys
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np

MAX_ERROR_DEG = 60.0  # top of the error colour ramp; larger errors take its last colour
FOV_DEG = 30.0  # vertical field of view of every view
# View name -> direction from the cloud's centre to the eye; the order is the tile order.
VIEWS = {"iso": (1.0, -1.0, 1.0), "front": (0.0, -1.0, 0.0), "side": (1.0, 0.0, 0.0),
         "top": (0.0, 0.0, 1.0)}  # fmt: skip
# Error ramp anchors (fraction of MAX_ERROR_DEG, RGB): blue, teal, amber, red.
ERROR_RAMP = np.array([
    [0.00, 0.17, 0.26, 0.75], [0.33, 0.10, 0.68, 0.60],
    [0.66, 0.97, 0.73, 0.10], [1.00, 0.78, 0.05, 0.05]])  # fmt: skip
_BACKGROUND = (255, 255, 255)
_TEXT = (30, 30, 30)


def normal_colors(normals: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] that depends on the line of a normal only: ``|n| / ‖n‖`` per component.

    Shapes:
        normals: (N, 3), any length (zero normals come out grey). Returns (N, 3).
    """
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    colors = np.abs(normals) / np.where(length > 0, length, 1.0)
    colors[length[:, 0] == 0] = 0.5
    return colors


def error_colors(errors: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of the ramp ``ERROR_RAMP`` over 0 to ``MAX_ERROR_DEG`` degrees (clipped).

    Shapes:
        errors: (N,) degrees. Returns (N, 3).
    """
    t = np.clip(np.asarray(errors, dtype=np.float64) / MAX_ERROR_DEG, 0.0, 1.0)
    return np.stack([np.interp(t, ERROR_RAMP[:, 0], ERROR_RAMP[:, c]) for c in (1, 2, 3)], 1)


@functools.lru_cache(maxsize=1)
def offscreen_problem() -> str | None:
    """Why the offscreen renderer cannot start here (no Vulkan device), or ``None``.

    Filament aborts the whole process when it finds no Vulkan instance, so the loader is
    asked first, through ctypes: create an instance, count its physical devices. Only on
    Linux (elsewhere Filament uses Metal/OpenGL and nothing is checked).
    """
    if not sys.platform.startswith("linux"):
        return None
    hint = "install the Debian packages libvulkan1 mesa-vulkan-drivers (make setup does)"
    try:
        vk = ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return f"no Vulkan loader (libvulkan.so.1): {hint}"

    class InstanceCreateInfo(ctypes.Structure):  # VkInstanceCreateInfo, no layers/extensions
        _fields_ = [(name, ctypes.c_uint32 if name[0] == "u" else ctypes.c_void_p)
                    for name in ("u_type", "next", "u_flags", "app", "u_layers", "layers",
                                 "u_extensions", "extensions")]  # fmt: skip

    instance, count = ctypes.c_void_p(), ctypes.c_uint32(0)
    info = InstanceCreateInfo(u_type=1)  # VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
    result = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != 0:
        return f"no Vulkan driver (vkCreateInstance returned {result}): {hint}"
    vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
    vk.vkDestroyInstance(instance, None)
    return None if count.value else f"no Vulkan device: {hint}"


@contextmanager
def _quiet_stdout():
    """Silence the renderer's start-up banner: Filament writes it to file descriptor 1, Open3D
    to Python's ``sys.stdout``."""
    if os.name != "posix":
        with redirect_stdout(io.StringIO()):
            yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio buffers still aimed at /dev/null
        os.dup2(saved, 1)
        os.close(saved)


def _check(path, points: np.ndarray, panels: list, views: int, size: tuple[int, int]) -> Path:
    """Validate everything before the renderer starts; ``ValueError`` names the file."""
    path = Path(path)
    problem = None
    if path.suffix.lower() != ".png":
        problem = "pictures are written as .png"
    elif not path.parent.is_dir():
        problem = f"no folder {path.parent}"
    elif points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        problem = f"points must be a non-empty (N, 3) array, got {points.shape}"
    elif views not in range(1, len(VIEWS) + 1):
        problem = f"views must be 1 to {len(VIEWS)}, got {views}"
    elif len(size) != 2 or min(size) < 64:
        problem = f"size must be (width, height) of at least 64 pixels, got {size}"
    for name, normals, errors in panels:
        if problem is None and normals.shape != points.shape:
            problem = f"{name or 'normals'} {normals.shape} != points {points.shape}"
        elif problem is None and errors is not None and errors.shape != (len(points),):
            problem = f"{name or 'the'} errors must have shape ({len(points)},), got {errors.shape}"
    arrays = [points] + [a for _, n, e in panels for a in (n, e) if a is not None]
    if problem is None and not all(np.isfinite(a).all() for a in arrays):
        problem = "NaN or infinite values in the points, normals or errors"
    if problem is None and (vulkan := offscreen_problem()):
        problem = f"cannot start Open3D's offscreen renderer: {vulkan}"
    if problem:
        raise ValueError(f"{path}: {problem}")
    return path


def _camera(points: np.ndarray, view: str, tile: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Eye, up, distance, near, far of a view that looks at the origin and fits every point.

    A point at ``(x, y)`` across and ``z`` towards the eye projects inside the picture when
    ``distance >= z + |x| / tan(fov_x / 2)`` (and the same for y), with a 6 % margin.

    Shapes:
        points: (N, 3), centred on the origin (the bounding-box centre).
    """
    back = np.array(VIEWS[view]) / np.linalg.norm(VIEWS[view])  # centre -> eye
    up = np.array([0.0, 1.0, 0.0] if view == "top" else [0.0, 0.0, 1.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    x, y, z = (points @ axis for axis in (right, up, back))
    tan_y = 0.94 * np.tan(np.radians(FOV_DEG / 2))
    tan_x = tan_y * tile[0] / tile[1]
    distance = float(max((z + np.abs(x) / tan_x).max(), (z + np.abs(y) / tan_y).max()))
    distance = max(distance, 1e-9)
    near = max(distance - z.max(), 1e-3 * distance) * 0.9
    return back * distance, up, distance, near, (distance - z.min()) * 1.1


def _render_tiles(points, colors, ends, names, tile) -> list[np.ndarray]:
    """One (H, W, 3) uint8 picture per view of a centred cloud; ``ends`` are the normal lines.

    Shapes:
        points: (N, 3), centred; colors: (N, 3); ends: (L, 2, 3), coloured like ``colors[:L]``.
    """
    import open3d as o3d

    rendering = o3d.visualization.rendering
    with _quiet_stdout():
        renderer = rendering.OffscreenRenderer(*tile)
    scene = renderer.scene
    scene.set_background([1.0, 1.0, 1.0, 1.0])
    scene.view.set_post_processing(False)  # exact colours: no tone mapping, no gamma
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.colors = o3d.utility.Vector3dVector(colors)
    spacing = float(np.median(cloud.compute_nearest_neighbor_distance()))
    material = rendering.MaterialRecord()
    material.shader = "defaultUnlit"
    scene.add_geometry("points", cloud, material)
    if len(ends):
        lines = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(ends.reshape(-1, 3)),
            o3d.utility.Vector2iVector(np.arange(2 * len(ends)).reshape(-1, 2)),
        )
        lines.colors = o3d.utility.Vector3dVector(0.5 * colors[: len(ends)])
        line_material = rendering.MaterialRecord()
        line_material.shader = "unlitLine"
        line_material.line_width = 1.0
        scene.add_geometry("normals", lines, line_material)
    framed = np.concatenate([points, ends.reshape(-1, 3)])  # lines stay inside the picture
    pictures = []
    for name in names:
        eye, up, distance, near, far = _camera(framed, name, tile)
        # Squares 4 nearest-neighbour distances wide cover ~98 % of a randomly sampled surface.
        pixels_per_unit = tile[1] / (2 * distance * np.tan(np.radians(FOV_DEG / 2)))
        material.point_size = float(np.clip(4 * spacing * pixels_per_unit, 1.0, 12.0))
        scene.modify_geometry_material("points", material)
        renderer.setup_camera(FOV_DEG, [0.0, 0.0, 0.0], eye, up, near, far)
        pictures.append(np.asarray(renderer.render_to_image())[..., :3].copy())
    return pictures


def _colour_bar(draw, font, box: tuple[int, int, int, int]) -> None:
    """Vertical error ramp in ``box`` (x0, y0, x1, y1) with ticks 0°, 30°, 60°+ on its right."""
    x0, y0, x1, y1 = box
    heights = np.linspace(MAX_ERROR_DEG, 0.0, y1 - y0)
    for y, rgb in zip(range(y0, y1), error_colors(heights), strict=True):
        draw.line([(x0, y), (x1 - 1, y)], fill=tuple(int(255 * c + 0.5) for c in rgb))
    for value, label in ((0.0, "0°"), (30.0, "30°"), (MAX_ERROR_DEG, "60°+")):
        y = round(y1 - 1 - value / MAX_ERROR_DEG * (y1 - 1 - y0))
        draw.line([(x1, y), (x1 + 4, y)], fill=_TEXT)
        draw.text((x1 + 7, y), label, fill=_TEXT, font=font, anchor="lm")
    draw.text(((x0 + x1) // 2, y0 - 8), "error", fill=_TEXT, font=font, anchor="ms")


def _palette(canvas, error_maps: bool):
    """The picture in 256 colours (a third of the bytes). Error maps take a fixed palette of
    the ramp, the ramp at half brightness (lines) and greys, so the ramp has no bands."""
    from PIL import Image

    if not error_maps:
        return canvas.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    ramp = error_colors(np.linspace(0.0, MAX_ERROR_DEG, 160))
    greys = np.repeat(np.linspace(0.0, 1.0, 32)[:, None], 3, 1)
    colors = np.concatenate([ramp, 0.5 * error_colors(np.linspace(0.0, MAX_ERROR_DEG, 64)), greys])
    palette = Image.new("P", (1, 1))
    palette.putpalette((255 * colors + 0.5).astype(np.uint8).ravel().tolist())
    return canvas.quantize(palette=palette, dither=Image.Dither.NONE)


def _render(path, points, panels, *, views, size, max_lines, title) -> None:
    """Shared body of :func:`render_normals` and :func:`render_panels`."""
    from PIL import Image, ImageDraw, ImageFont

    points = np.asarray(points, dtype=np.float64)
    panels = [(name, np.asarray(n, dtype=np.float64), None if e is None else np.asarray(e))
              for name, n, e in panels]  # fmt: skip
    path = _check(path, points, panels, views, size)
    width, height = (int(s) for s in size)
    font_px = max(10, round(0.028 * height))
    band = round(1.6 * font_px)
    top = band if title else 0
    top += band if any(name for name, _, _ in panels) else 0
    bar = max(64, round(0.09 * width)) if any(e is not None for _, _, e in panels) else 0
    cols, rows = min(views, 2), (views + 1) // 2  # 1: 1x1, 2: 2x1, 3-4: 2x2
    panel_w = (width - bar) // len(panels)
    tile = (panel_w // cols, (height - top) // rows)
    if min(tile) < 32:
        raise ValueError(f"{path}: size {size} leaves tiles of {tile} pixels; make it larger")

    lo, hi = points.min(0), points.max(0)
    centred = points - (lo + hi) / 2  # float64 centring: scans far from the origin stay exact
    # One random order, so that the first max_lines points are a fair sample to draw lines at.
    order = np.random.default_rng(0).permutation(len(points))
    centred = centred[order]
    lines = min(max_lines, len(points))
    length = 0.02 * float(np.linalg.norm(hi - lo))
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_px)
    small = ImageFont.load_default(size=round(0.8 * font_px))
    for p, (name, normals, errors) in enumerate(panels):
        normals = normals[order]
        colors = normal_colors(normals) if errors is None else error_colors(errors[order])
        unit = normals[:lines] / np.linalg.norm(normals[:lines], axis=1, keepdims=True).clip(1e-12)
        ends = centred[:lines, None] + np.array([-length, length])[:, None] * unit[:, None]
        names = list(VIEWS)[:views]
        pictures = _render_tiles(centred, colors, ends, names, tile)
        for i, (view, picture) in enumerate(zip(names, pictures, strict=True)):
            x, y = p * panel_w + (i % cols) * tile[0], top + (i // cols) * tile[1]
            canvas.paste(Image.fromarray(picture), (x, y))
            if views > 1:
                draw.text((x + 6, y + 4), view, fill=_TEXT, font=small)
        if name:
            draw.text((p * panel_w + panel_w // 2, top - band // 2), name, fill=_TEXT,
                      font=font, anchor="mm")  # fmt: skip
    if title:
        draw.text(((width - bar) // 2, band // 2), title, fill=_TEXT, font=font, anchor="mm")
    if bar:
        x0 = width - bar + round(0.12 * bar)
        _colour_bar(
            draw, small, (x0, top + height // 8, x0 + round(0.2 * bar), height - height // 8)
        )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _palette(canvas, all(e is not None for _, _, e in panels)).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_normals(path, points: np.ndarray, normals: np.ndarray, *,
                   errors: np.ndarray | None = None, views: int = 1,
                   size: tuple[int, int] = (1600, 1200), max_lines: int = 3000,
                   title: str | None = None) -> None:  # fmt: skip
    """Write a PNG of a cloud coloured by its (unoriented) normals, or by their errors.

    Args:
        path: output ``.png``.
        points: the cloud, any pose and units.
        normals: one normal per point (any length, sign ignored).
        errors: per-point angular errors in degrees; colours them on a 0-60° ramp with a
            colour bar instead of by direction.
        views: 1 to 4 views tiled in the picture, in the order of ``VIEWS``
            (iso; iso, front; ...; iso, front, side, top).
        size: (width, height) of the whole picture in pixels.
        max_lines: at most this many normals (a fixed random subsample) drawn as lines through
            their points, ±2 % of the bounding-box diagonal long; 0 draws none.
        title: text on top of the picture.

    Raises:
        ValueError: bad shapes or values, or no Vulkan device for the offscreen renderer.

    Shapes:
        points: (N, 3); normals: (N, 3); errors: (N,).
    """
    _render(path, points, [("", normals, errors)], views=views, size=size,
            max_lines=max_lines, title=title)  # fmt: skip


def render_panels(path, points: np.ndarray,
                  panels: list[tuple[str, np.ndarray, np.ndarray | None]], *,
                  size: tuple[int, int] = (1600, 800), views: int = 1, max_lines: int = 3000,
                  title: str | None = None) -> None:  # fmt: skip
    """Write a PNG of the same cloud side by side, one panel per ``(name, normals, errors)``.

    Typical use: ``[("model", n_model, err_model), ("PCA", n_pca, err_pca)]``, error maps
    sharing one colour bar. Arguments as in :func:`render_normals`; ``size`` is the whole
    picture, split evenly between the panels.

    Shapes:
        points: (N, 3); each panel's normals: (N, 3), errors: (N,) or None.
    """
    if not panels:
        raise ValueError(f"{path}: no panels to render")
    _render(path, points, panels, views=views, size=size, max_lines=max_lines, title=title)


def show_normals(points: np.ndarray, normals: np.ndarray) -> None:
    """Open Open3D's interactive viewer on the cloud, coloured by normal, normals drawn
    (keys: ``N`` toggles the normals, ``+``/``-`` the point size, ``H`` the help).

    Raises:
        ValueError: bad shapes, or no display (``DISPLAY``/``WAYLAND_DISPLAY`` unset on Linux).

    Shapes:
        points: (N, 3); normals: (N, 3).
    """
    import open3d as o3d

    points, normals = np.asarray(points, np.float64), np.asarray(normals, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
        raise ValueError(f"show: points {points.shape} and normals {normals.shape} must be (N, 3)")
    on_linux = sys.platform.startswith("linux")
    if on_linux and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError("show: no display (DISPLAY unset); write a picture with --render instead")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    cloud.colors = o3d.utility.Vector3dVector(normal_colors(normals))
    o3d.visualization.draw_geometries([cloud], window_name="pointnormals",
                                      point_show_normal=True)  # fmt: skip
