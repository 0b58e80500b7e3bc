"""PCL ``.pcd`` files (``DATA ascii``, ``binary``, ``binary_compressed``), every field kept.

No maintained PCD library keeps every field bit for bit (``pypcd4`` rounds ascii floats
to 10 decimals, drops comments and reads a short binary body silently), so the format
is parsed here (header) and in :mod:`~pointnormals.cloudio._pcd_body` (data).
Normals are ``normal_x normal_y normal_z`` (PCL's names; ``nx ny nz`` are read too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointnormals.cloudio._common import (
    Fields,
    PointCloudFile,
    check_points,
    normal_dtype,
    plain_columns,
    structured,
    with_columns,
    with_normals,
)
from pointnormals.cloudio._pcd_body import decode, encode

_PCL_NORMALS = ("normal_x", "normal_y", "normal_z")
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS")
_PCD_TYPES = {"f": "F", "u": "U", "i": "I"}


@dataclass(frozen=True)
class _Pcd:
    """A parsed file: header lines (comments included), field names, data, encoding."""

    lines: tuple[str, ...]  # the header lines before DATA, verbatim
    names: tuple[str, ...]  # field names as in the header (may repeat, e.g. "_")
    data: np.ndarray  # (N,) structured; field i is stored under data.dtype.names[i]
    encoding: str
    rgb_as_int: bool  # ascii rgb/rgba written as the integer of their bits (PCL style)


def read(path: Path) -> PointCloudFile:
    """Read a ``.pcd`` file; a body whose size disagrees with the header is refused."""
    raw = path.read_bytes()
    lines, header, start = _header(path, raw)
    pcd = _body(path, raw, lines, header, start)
    keys = _keys(pcd)
    if not {"x", "y", "z"} <= set(keys):
        raise ValueError(f"{path}: PCD without x, y, z fields")
    points = check_points(path, np.column_stack([pcd.data[keys[c]] for c in "xyz"]))
    normal_names = next((n for n in (_PCL_NORMALS, ("nx", "ny", "nz")) if set(n) <= set(keys)), ())
    normals = None
    if normal_names:
        normals = np.column_stack([pcd.data[keys[c]] for c in normal_names]).astype(np.float64)
    viewpoint = None
    if "VIEWPOINT" in header:
        viewpoint = np.array(header["VIEWPOINT"][:3], dtype=np.float64)
    return PointCloudFile(path, "pcd", points, normals, viewpoint, pcd, lambda: fields(pcd))


def _header(path: Path, raw: bytes) -> tuple[list[str], dict[str, list[str]], int]:
    lines: list[str] = []
    header: dict[str, list[str]] = {}
    pos = 0
    while len(lines) < 1000:
        end = raw.find(b"\n", pos)
        if end < 0:
            break
        try:
            line = raw[pos:end].decode("ascii").strip()
        except UnicodeDecodeError:
            break
        pos = end + 1
        key, *values = line.split() or [""]
        if key.upper() == "DATA" and values:
            header["DATA"] = [values[0].lower()]
            break
        if key.upper() in _KEYS:
            header[key.upper()] = values
        elif line and not line.startswith("#"):
            raise ValueError(f"{path}: malformed PCD header line {line[:60]!r}")
        lines.append(line)
    missing = [k for k in ("FIELDS", "SIZE", "TYPE", "WIDTH", "DATA") if k not in header]
    if missing:
        raise ValueError(f"{path}: not a PCD file (header lacks {', '.join(missing)})")
    return lines, header, pos


def _body(
    path: Path, raw: bytes, lines: list[str], header: dict[str, list[str]], start: int
) -> _Pcd:
    names = header["FIELDS"]
    counts = header.get("COUNT", ["1"] * len(names))
    try:
        n = int(header.get("POINTS", [header["WIDTH"][0]])[0])
        width, height = int(header["WIDTH"][0]), int(header.get("HEIGHT", ["1"])[0])
        types = [
            np.dtype(f"<{t.lower()}{s}")
            for t, s in zip(header["TYPE"], header["SIZE"], strict=True)
        ]
        shapes = [() if int(c) == 1 else (int(c),) for c in counts]
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: malformed PCD header ({err})") from None
    if not len(names) == len(types) == len(shapes) or n != width * height:
        raise ValueError(f"{path}: inconsistent PCD header (FIELDS/SIZE/TYPE/COUNT/POINTS)")
    unique = [name if names.count(name) == 1 else f"_{i}" for i, name in enumerate(names)]
    dtype = np.dtype(list(zip(unique, types, shapes, strict=True)))
    encoding = header["DATA"][0]
    data, rgb_as_int = decode(path, raw[start:], encoding, dtype, n)
    return _Pcd(tuple(lines), tuple(names), data, encoding, rgb_as_int)


def _keys(pcd: _Pcd) -> dict[str, str]:
    """Header field name -> name of that field in ``pcd.data``."""
    return dict(zip(pcd.names, pcd.data.dtype.names, strict=True))


def fields(pcd: _Pcd) -> Fields:
    """Generic fields: padding ``_`` dropped, normals as ``nx ny nz``, colours unpacked."""
    out: Fields = {}
    for name, key in _keys(pcd).items():
        column = pcd.data[key]
        if name == "_":
            continue
        if name in ("rgb", "rgba") and column.dtype.itemsize == 4 and column.ndim == 1:
            bits = column.view(np.uint32)
            for shift, colour in ((16, "red"), (8, "green"), (0, "blue")):
                out[colour] = ((bits >> shift) & 255).astype(np.uint8)
            if name == "rgba":
                out["alpha"] = (bits >> 24).astype(np.uint8)
            continue
        generic = {"normal_x": "nx", "normal_y": "ny", "normal_z": "nz"}.get(name, name)
        out[generic] = column
    return out


def write(path: Path, cloud: PointCloudFile, normals: np.ndarray) -> None:
    """Write ``cloud`` with ``normals`` to a ``.pcd`` file.

    A PCD source keeps its header lines, fields, dtypes and DATA encoding, with the
    normal fields replaced in place or ``normal_x normal_y normal_z`` appended. Any other
    source becomes a ``DATA binary`` PCD with every numeric attribute (8-bit
    ``red green blue [alpha]`` packed into PCL's ``rgb``/``rgba``).

    Shapes:
        normals: ``(N, 3)``.
    """
    if cloud.format == "pcd":
        pcd: _Pcd = cloud._native
        keys = _keys(pcd)
        names = next((n for n in (_PCL_NORMALS, ("nx", "ny", "nz")) if set(n) <= set(keys)), None)
        names = names or _PCL_NORMALS
        data = with_columns(
            pcd.data,
            [keys.get(n, n) for n in names],
            normals,
            normal_dtype(pcd.data[keys["x"]].dtype),
        )
        header_names = pcd.names + tuple(n for n in names if n not in keys)
        lines, encoding, rgb_as_int = pcd.lines, pcd.encoding, pcd.rgb_as_int
    else:
        columns = plain_columns(
            _packed_colours(with_normals(cloud.fields(), normals, _PCL_NORMALS)), int64=True
        )
        data, header_names = structured(columns), tuple(columns)
        view = " ".join(map(str, cloud.viewpoint)) if cloud.viewpoint is not None else "0 0 0"
        lines = (
            "# .PCD v0.7 - Point Cloud Data file format",
            "VERSION 0.7",
            "FIELDS",
            "SIZE",
            "TYPE",
            "COUNT",
            f"WIDTH {len(data)}",
            "HEIGHT 1",
            f"VIEWPOINT {view} 1 0 0 0",
            f"POINTS {len(data)}",
        )
        encoding, rgb_as_int = "binary", True
    described = _describe(header_names, data.dtype)
    body = encode(data, encoding, rgb_as_int)
    if encoding == "binary_compressed" and body is None:  # LZF could not make it smaller
        encoding, body = "binary", data.tobytes()
    header = [described.get(line.split(" ")[0].upper(), line) for line in lines]
    with path.open("wb") as f:
        f.write(("\n".join([*header, f"DATA {encoding}"]) + "\n").encode("ascii"))
        f.write(body)


def _packed_colours(fields: Fields) -> Fields:
    """8-bit ``red green blue [alpha]`` packed into one PCL ``rgb`` (float32) / ``rgba``."""
    colours = [fields.get(c) for c in ("red", "green", "blue", "alpha")]
    if any(c is None or c.dtype != np.uint8 for c in colours[:3]):
        return fields
    alpha = colours[3] if colours[3] is not None and colours[3].dtype == np.uint8 else None
    bits = sum(c.astype(np.uint32) << s for c, s in zip(colours, (16, 8, 0), strict=False))
    packed = bits if alpha is None else bits | (alpha.astype(np.uint32) << 24)
    out: Fields = {}
    for name, column in fields.items():
        if name == "red":
            out["rgb" if alpha is None else "rgba"] = (
                packed.view(np.float32) if alpha is None else packed
            )
        elif name not in ("green", "blue") and not (name == "alpha" and alpha is not None):
            out[name] = column
    return out


def _describe(names: tuple[str, ...], dtype: np.dtype) -> dict[str, str]:
    """The FIELDS, SIZE, TYPE and COUNT header lines of a structured dtype."""
    parts = [(dtype[k].base, int(np.prod(dtype[k].shape, dtype=int))) for k in dtype.names]
    return {
        "FIELDS": "FIELDS " + " ".join(names),
        "SIZE": "SIZE " + " ".join(str(t.itemsize) for t, _ in parts),
        "TYPE": "TYPE " + " ".join(_PCD_TYPES[t.kind] for t, _ in parts),
        "COUNT": "COUNT " + " ".join(str(k) for _, k in parts),
    }
