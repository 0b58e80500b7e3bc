"""Point-cloud files that keep every attribute: read a cloud, write it back with normals.

    cloud = read_cloud("scan.las")               # points (N, 3) float64, normals, viewpoint
    write_cloud("scan_normals.las", cloud, normals)

Same format in and out (``.las`` and ``.laz`` count as one, and so do the text tables):
everything the file held comes back unchanged (colours, intensities, scalar fields,
classification, other PLY elements, comments, PCD fields and header, LAS dimensions,
extra bytes, scales, offsets and VLRs), byte for byte, with the normals replaced in
place or added (PLY ``nx ny nz``, PCD ``normal_x normal_y normal_z``, LAS extra bytes
``NormalX NormalY NormalZ``, table columns after ``z``). Another format keeps every
per-point attribute the target can store: ``.ply`` and ``.pcd`` store any numeric field,
text tables only ``x y z nx ny nz``, and LAS/LAZ are only written from LAS/LAZ.

A damaged file (truncated or over-long binary data, a malformed header, non-numeric
values, ragged rows, NaN/inf coordinates, no points) raises ``ValueError`` with one line
naming the file. The reader never changes its file. The libraries (``plyfile``,
``laspy``/``lazrs``, ``lzf``) are imported only when a file of theirs is read or written.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from pointnormals.cloudio import las, pcd, ply, table
from pointnormals.cloudio._common import Fields, PointCloudFile, check_normals

__all__ = [
    "SUFFIXES",
    "WRITABLE_SUFFIXES",
    "Fields",
    "PointCloudFile",
    "check_writable",
    "read_cloud",
    "write_cloud",
]

SUFFIXES = (".ply", ".pcd", ".las", ".laz", ".xyz", ".xyzn", ".pts", ".txt")
"""Suffixes :func:`read_cloud` reads (case-insensitive)."""
WRITABLE_SUFFIXES = (".ply", ".pcd", ".las", ".laz", ".xyz", ".xyzn", ".txt")
"""Suffixes :func:`write_cloud` writes (``.las``/``.laz`` from a LAS/LAZ input only)."""

_MODULES: dict[str, ModuleType] = {
    ".ply": ply,
    ".pcd": pcd,
    ".las": las,
    ".laz": las,
    **dict.fromkeys((".xyz", ".xyzn", ".pts", ".txt"), table),
}


def read_cloud(path: str | Path) -> PointCloudFile:
    """Read a point cloud with everything needed to write it back faithfully.

    Args:
        path: a file with a suffix of :data:`SUFFIXES`.

    Returns:
        A :class:`PointCloudFile`: ``points`` float64 (LAS: real-world coordinates,
        scaled integers exactly), ``normals`` float64 or ``None``, ``viewpoint`` or
        ``None``.

    Shapes:
        points: ``(N, 3)``; normals: ``(N, 3)``; viewpoint: ``(3,)``.

    Raises:
        ValueError: unknown suffix, missing file, damaged or empty file, non-finite
            coordinates (one line naming the file).
    """
    path = Path(path)
    module = _MODULES.get(path.suffix.lower())
    if module is None:
        raise ValueError(f"{path}: unsupported suffix, expected one of {' '.join(SUFFIXES)}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return module.read(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None


def check_writable(path: str | Path, source_format: str) -> None:
    """Raise ``ValueError`` unless a cloud read as ``source_format`` can go to ``path``.

    Call it before the slow work so a bad output path fails at once.

    Args:
        path: the output file.
        source_format: :attr:`PointCloudFile.format` of the input, or its suffix
            (``"las"``, ``".ply"``, …).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise ValueError(
            f"{path}: cannot write {suffix or 'a file without suffix'}, "
            f"expected one of {' '.join(WRITABLE_SUFFIXES)}"
        )
    source = source_format.lower().lstrip(".")
    if suffix in (".las", ".laz") and source not in ("las", "laz"):
        raise ValueError(
            f"{path}: LAS/LAZ output needs a LAS/LAZ input (got {source}); "
            "write .ply or .pcd to keep every attribute"
        )


def write_cloud(path: str | Path, cloud: PointCloudFile, normals: np.ndarray) -> None:
    """Write ``cloud`` with ``normals`` to ``path``; the suffix picks the format.

    Writes exactly ``path`` (the caller writes a temporary file beside the target, with
    the same suffix, and renames it). ``cloud`` itself is not changed.

    Args:
        path: output file, suffix in :data:`WRITABLE_SUFFIXES`.
        cloud: what :func:`read_cloud` returned.
        normals: one normal per point, in the order of ``cloud.points``.

    Shapes:
        normals: ``(N, 3)``, any float dtype (stored as the format says, see module doc).

    Raises:
        ValueError: unwritable suffix or format pair, normals of the wrong shape.
    """
    path = Path(path)
    check_writable(path, cloud.format)
    normals = check_normals(path, normals, len(cloud.points))
    _MODULES[path.suffix.lower()].write(path, cloud, normals)
