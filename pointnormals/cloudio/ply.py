"""PLY (ascii, binary little/big endian) through ``plyfile``, keeping every element.

The ``vertex`` element is the point cloud (``x y z``, normals ``nx ny nz``); all its other
properties, all other elements (faces, a range map's ``camera``, …), comments and
``obj_info`` lines are written back unchanged, in the same encoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pointnormals.cloudio._common import (
    NORMAL_NAMES,
    Fields,
    PointCloudFile,
    check_points,
    normal_dtype,
    plain_columns,
    structured,
    with_columns,
    with_normals,
)

_VIEW = ("view_px", "view_py", "view_pz")


def read(path: Path) -> PointCloudFile:
    """Read a PLY point cloud; damaged files raise ``ValueError`` (see module doc)."""
    ply = _read_plydata(path)
    if "vertex" not in ply or not {"x", "y", "z"} <= set(ply["vertex"].data.dtype.names):
        raise ValueError(f"{path}: no 'vertex' element with x, y, z properties")
    vertex = ply["vertex"].data
    points = check_points(path, np.column_stack([vertex[c] for c in "xyz"]))
    normals = None
    if set(NORMAL_NAMES) <= set(vertex.dtype.names):
        normals = np.column_stack([vertex[c] for c in NORMAL_NAMES]).astype(np.float64)
    viewpoint = None
    if "camera" in ply and set(_VIEW) <= set(ply["camera"].data.dtype.names):
        camera = ply["camera"].data
        if len(camera):
            viewpoint = np.array([camera[c][0] for c in _VIEW], dtype=np.float64)
    return PointCloudFile(
        path, "ply", points, normals, viewpoint, _native=ply, _fields=lambda: fields(ply)
    )


def _read_plydata(path: Path) -> Any:
    """The file as a ``PlyData`` with in-memory arrays; refuses short or long files."""
    from plyfile import PlyData, PlyElementParseError, PlyParseError

    text = False
    with path.open("rb") as f:
        for line in f:  # the format line comes before any (binary) data
            if line.startswith((b"format", b"end_header")):
                text = line.split()[1:2] == [b"ascii"]
                break
    size = path.stat().st_size
    try:
        # the ascii body is read through a text stream so that trailing lines can be seen
        with path.open("r", encoding="ascii") if text else path.open("rb") as f:
            ply = PlyData.read(f, mmap="c")
            rest = f.read(1 << 16).strip() if text else f.read(1)
    except PlyElementParseError as err:
        kind = "ascii" if text else "binary"
        if err.message == "early end-of-file":
            raise ValueError(
                f"{path}: truncated {kind} PLY: header says {err.element.count} "
                f"'{err.element.name}' elements, the file ({size} bytes) ends at {err.row}"
            ) from None
        raise ValueError(f"{path}: malformed {kind} PLY ({err})") from None
    except (PlyParseError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed PLY ({str(err).splitlines()[0]})") from None
    if rest:
        raise ValueError(f"{path}: data after the last element declared by the PLY header")
    for element in ply.elements:  # copy out of the (copy-on-write) memory map
        element.data = np.array(element.data)
    return ply


def fields(ply: Any) -> Fields:
    """The ``vertex`` properties as generic fields (list properties are skipped)."""
    vertex = ply["vertex"].data
    return {name: vertex[name] for name in vertex.dtype.names if not vertex.dtype[name].hasobject}


def write(path: Path, cloud: PointCloudFile, normals: np.ndarray) -> None:
    """Write ``cloud`` with ``normals`` to a PLY file.

    A PLY source is written back faithfully (same elements, properties, dtypes,
    comments and encoding; ``nx ny nz`` replaced in place or appended). Any other source
    becomes a binary little-endian PLY with one ``vertex`` element holding every
    numeric attribute (colours as ``red green blue``).

    Shapes:
        normals: ``(N, 3)``.
    """
    from plyfile import PlyData, PlyElement

    if cloud.format == "ply":
        ply = cloud._native
        vertex = ply["vertex"]
        data = with_columns(
            vertex.data, NORMAL_NAMES, normals, normal_dtype(vertex.data["x"].dtype)
        )
        lists = [p for p in vertex.properties if hasattr(p, "len_dtype")]
        element = PlyElement.describe(
            data,
            "vertex",
            len_types={p.name: p.len_dtype for p in lists},
            val_types={p.name: p.val_dtype for p in lists},
            comments=vertex.comments,
        )
        elements = [element if e.name == "vertex" else e for e in ply.elements]
        out = PlyData(elements, ply.text, ply.byte_order, ply.comments, ply.obj_info)
    else:
        columns = plain_columns(with_normals(cloud.fields(), normals, NORMAL_NAMES), int64=False)
        comments = [f"converted from {cloud.path.name} by pointnormals"]
        element = PlyElement.describe(structured(columns), "vertex")
        out = PlyData([element], text=False, byte_order="<", comments=comments)
    with path.open("wb") as f:
        _write(out, f)


def _write(ply: Any, f: Any) -> None:
    """``ply.write(f)``, with a vectorised body for ascii files without list properties."""
    if not ply.text or any(e.data.dtype.hasobject for e in ply.elements):
        ply.write(f)
        return
    f.write(ply.header.encode("ascii") + b"\n")
    for element in ply.elements:
        data = element.data
        if len(data):
            formats = [_ASCII_FORMAT.get(data.dtype[name].char, "%d") for name in data.dtype.names]
            np.savetxt(f, data, fmt=" ".join(formats), newline="\n")


# shortest printf formats that give back every float bit for bit
_ASCII_FORMAT = {"f": "%.9g", "d": "%.17g", "e": "%.5g"}
