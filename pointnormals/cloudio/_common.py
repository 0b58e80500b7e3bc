"""Shared pieces of the point-cloud file layer: the value object and field helpers.

Every format module reads into :class:`PointCloudFile` and offers its per-point
attributes as :data:`Fields`, a plain ``{name: array}`` mapping with generic names, so
that any reader can feed any writer (``.las -> .ply`` keeps intensity, ``.pcd -> .ply``
keeps colours, …).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Fields = dict[str, np.ndarray]
"""Per-point attributes in file order, each ``(N,)`` or ``(N, k)``. Generic names:
``x y z`` coordinates, ``nx ny nz`` normals, ``red green blue [alpha]`` colours; every
other attribute keeps its name from the file."""

NORMAL_NAMES = ("nx", "ny", "nz")


@dataclass(eq=False)
class PointCloudFile:
    """What :func:`~pointnormals.cloudio.read_cloud` read: enough to write it back.

    Attributes:
        path: the file that was read.
        format: its lower-case suffix without the dot (``"ply"``, ``"pcd"``, ``"las"``,
            ``"laz"``, ``"xyz"``, ``"xyzn"``, ``"pts"``, ``"txt"``).
        points: coordinates as float64 (LAS: the real-world, scaled coordinates).
        normals: the file's normals as float64, or ``None`` when it has none.
        viewpoint: the sensor position stored in the file (PCD ``VIEWPOINT`` origin, a
            PLY ``camera`` element's ``view_px view_py view_pz``), else ``None``.

    Shapes:
        points: ``(N, 3)``; normals: ``(N, 3)``; viewpoint: ``(3,)``.
    """

    path: Path
    format: str
    points: np.ndarray
    normals: np.ndarray | None
    viewpoint: np.ndarray | None
    _native: Any = field(default=None, repr=False)  # format-specific data kept for writing
    _fields: Callable[[], Fields] = field(default=dict, repr=False)  # lazy generic view

    def __len__(self) -> int:
        return len(self.points)

    def fields(self) -> Fields:
        """Every per-point attribute under its generic name (see :data:`Fields`)."""
        return self._fields()


def check_points(path: Path, points: np.ndarray) -> np.ndarray:
    """``points`` as float64 ``(N, 3)``; ``ValueError`` when empty or not finite."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError(f"{path}: the file holds no points")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{path}: non-finite coordinates (NaN/inf) at {int(bad.sum())} points, "
            f"first at point {int(np.argmax(bad))}"
        )
    return points


def check_normals(path: Path, normals: np.ndarray, n: int) -> np.ndarray:
    """``normals`` as a float64 ``(n, 3)`` array, ``ValueError`` on another shape."""
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != (n, 3):
        raise ValueError(f"{path}: expected normals of shape ({n}, 3), got {normals.shape}")
    return normals


def normal_dtype(coord_dtype: np.dtype) -> np.dtype:
    """Dtype of new normals: float64 beside double coordinates, float32 otherwise."""
    double = np.dtype(coord_dtype).kind == "f" and np.dtype(coord_dtype).itemsize == 8
    return np.dtype(np.float64 if double else np.float32)


def with_columns(
    data: np.ndarray, names: Sequence[str], values: np.ndarray, new_dtype: np.dtype
) -> np.ndarray:
    """A copy of the structured ``data`` whose fields ``names`` hold ``values``' columns.

    Existing fields keep their dtype and position; missing ones are appended with
    ``new_dtype``. Every other field is copied unchanged, byte for byte.

    Shapes:
        data: ``(N,)`` structured; values: ``(N, len(names))``.
    """
    missing = [name for name in names if name not in data.dtype.names]
    dtype = np.dtype(data.dtype.descr + [(name, new_dtype.str) for name in missing])
    out = np.empty(len(data), dtype=dtype)
    for name in data.dtype.names:
        out[name] = data[name]
    for i, name in enumerate(names):
        out[name] = values[:, i]
    return out


def structured(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Pack named ``(N,)``/``(N, k)`` columns into one structured ``(N,)`` array."""
    arrays = {name: np.asarray(col) for name, col in columns.items()}
    n = len(next(iter(arrays.values())))
    out = np.empty(n, dtype=[(name, a.dtype, a.shape[1:]) for name, a in arrays.items()])
    for name, a in arrays.items():
        out[name] = a
    return out


def plain_columns(fields: Fields, *, int64: bool) -> Fields:
    """Scalar numeric columns that PLY (``int64=False``) or PCD (``int64=True``) can store.

    ``(N, k)`` attributes become ``name_0 … name_{k-1}``; booleans become uint8; names
    are made identifiers (spaces and punctuation -> ``_``). Without ``int64``, 64-bit
    integers become 32-bit ones when every value fits, float64 otherwise.
    """
    out: Fields = {}
    for name, col in fields.items():
        col = np.asarray(col)
        if col.dtype == np.bool_:
            col = col.astype(np.uint8)
        if col.dtype.kind not in "uif":
            continue  # strings or objects: no numeric field can hold them
        if not int64 and col.dtype.kind in "ui" and col.dtype.itemsize == 8:
            small = np.dtype(f"{col.dtype.kind}4")
            info = np.iinfo(small)
            fits = col.size == 0 or (col.min() >= info.min and col.max() <= info.max)
            col = col.astype(small if fits else np.float64)
        clean = re.sub(r"\W", "_", name) or "field"
        if col.ndim == 1:
            out[clean] = col
        else:
            for j in range(col.reshape(len(col), -1).shape[1]):
                out[f"{clean}_{j}"] = col.reshape(len(col), -1)[:, j]
    return out


def with_normals(fields: Fields, normals: np.ndarray, names: Sequence[str]) -> Fields:
    """``fields`` with the generic normals replaced (dtype kept) or added as ``names``.

    New normals are float64 beside float64 ``x``, float32 otherwise.
    """
    out: Fields = {}
    for name, col in fields.items():  # existing normals keep their place and dtype
        if name in NORMAL_NAMES:
            i = NORMAL_NAMES.index(name)
            out[names[i]] = normals[:, i].astype(col.dtype)
        else:
            out[name] = col
    for i, generic in enumerate(NORMAL_NAMES):
        if generic not in fields:
            out[names[i]] = normals[:, i].astype(normal_dtype(fields["x"].dtype))
    return out
