"""LAS/LAZ through ``laspy`` (LAZ via ``lazrs``): every dimension, VLR and scale kept.

Normals are written as the extra-bytes dimensions ``NormalX NormalY NormalZ`` (float32,
the names CloudCompare reads); the point format, every other dimension (extra bytes
included), scales, offsets, VLRs/EVLRs (CRS) stay as they were.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from pointnormals.cloudio._common import Fields, PointCloudFile, check_points

LAS_NORMALS = ("NormalX", "NormalY", "NormalZ")


def read(path: Path) -> PointCloudFile:
    """Read a ``.las``/``.laz`` file; ``points`` are the scaled real-world coordinates."""
    import laspy

    try:
        with laspy.open(path) as reader:
            _check_size(path, reader.header)
            las = reader.read()
    except ValueError:
        raise
    except Exception as err:  # laspy and lazrs raise many types on damaged files
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: unreadable LAS/LAZ ({message})") from None
    declared = las.header.point_count
    if len(las.points) != declared:
        raise ValueError(
            f"{path}: the LAS header declares {declared} points, the file holds {len(las.points)}"
        )
    # laspy computes X * scale + offset in float64: exactly the stored coordinates
    points = check_points(path, np.column_stack([las.x, las.y, las.z]))
    names = set(las.point_format.dimension_names)
    normals = None
    if set(LAS_NORMALS) <= names:
        normals = np.column_stack([np.asarray(las[n]) for n in LAS_NORMALS]).astype(np.float64)
    fmt = path.suffix.lower().lstrip(".")
    return PointCloudFile(path, fmt, points, normals, None, las, lambda: fields(las))


def _check_size(path: Path, header: Any) -> None:
    """Refuse an uncompressed LAS whose point records disagree with the declared count."""
    if header.are_points_compressed:
        return  # LAZ: lazrs fails on missing chunks, the count is checked after reading
    size = path.stat().st_size
    need = header.point_count * header.point_format.size
    end = header.start_of_first_evlr if header.number_of_evlrs else size
    if header.start_of_waveform_data_packet_record:
        end = min(end, header.start_of_waveform_data_packet_record)
    held = end - header.offset_to_point_data
    if held < need or (held > need and end == size and not header.number_of_evlrs):
        raise ValueError(
            f"{path}: the LAS header declares {header.point_count} points "
            f"({need} bytes), the file holds {held} bytes of point records"
        )


def fields(las: Any) -> Fields:
    """Generic fields: real ``x y z`` (float64), every other dimension under its laspy name.

    The integer ``X Y Z`` are left out (``x y z`` carry them); ``NormalX/Y/Z`` become
    ``nx ny nz``; colours keep their 16 bits.
    """
    out: Fields = {c: np.asarray(getattr(las, c), dtype=np.float64) for c in "xyz"}
    for name in las.point_format.dimension_names:
        if name in ("X", "Y", "Z"):
            continue
        generic = dict(zip(LAS_NORMALS, ("nx", "ny", "nz"), strict=True)).get(name, name)
        out[generic] = np.asarray(las[name])
    return out


def write(path: Path, cloud: PointCloudFile, normals: np.ndarray) -> None:
    """Write a LAS/LAZ ``cloud`` with ``normals`` (``.laz`` suffix -> compressed).

    The read data is copied, not changed. Existing ``NormalX/Y/Z`` keep their type;
    otherwise they are added as float32 extra bytes.

    Shapes:
        normals: ``(N, 3)``.

    Raises:
        ValueError: ``cloud`` was not read from a LAS/LAZ file (LAS stores scaled integer
            coordinates and a fixed set of dimensions; write ``.ply`` or ``.pcd``).
    """
    import laspy

    if cloud.format not in ("las", "laz"):
        raise ValueError(
            f"{path}: LAS/LAZ output needs a LAS/LAZ input ({cloud.path.name} is "
            f"{cloud.format}); write .ply or .pcd to keep its attributes"
        )
    las = cloud._native
    out = laspy.LasData(copy.deepcopy(las.header), points=las.points.copy())
    missing = [n for n in LAS_NORMALS if n not in set(out.point_format.dimension_names)]
    if missing:
        out.add_extra_dims(
            [laspy.ExtraBytesParams(n, np.float32, f"normal {n[-1].lower()}") for n in missing]
        )
    for i, name in enumerate(LAS_NORMALS):
        out[name] = normals[:, i].astype(out[name].dtype)
    out.write(path)
