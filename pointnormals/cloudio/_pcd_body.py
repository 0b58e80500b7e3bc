"""PCD data bodies: ``ascii``, ``binary`` and ``binary_compressed`` (LZF, ``python-neo-lzf``).

``binary`` stores the points one after the other, ``binary_compressed`` one field after
the other (then LZF), ``ascii`` one text row per point. PCL writes an ascii ``rgb`` as
the integer of its float bits (several opaque colours are NaN floats); both that and a
float text are read, and the writer uses the convention of the file it came from.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from pointnormals.cloudio._common import structured

_FLOAT_FORMAT = {"f": "%.9g", "d": "%.17g", "e": "%.5g"}  # every float bit comes back


def decode(
    path: Path, body: bytes, encoding: str, dtype: np.dtype, n: int
) -> tuple[np.ndarray, bool]:
    """The ``(n,)`` structured points of a DATA body, and whether ascii rgb were integers.

    Raises:
        ValueError: a body whose size or row count disagrees with the header, an
            unknown encoding, a non-numeric ascii value.
    """
    if encoding == "binary":
        if len(body) != n * dtype.itemsize:
            raise ValueError(
                f"{path}: DATA binary holds {len(body)} bytes, the header says {n} points "
                f"x {dtype.itemsize} bytes = {n * dtype.itemsize}"
            )
        return np.frombuffer(body, dtype=dtype, count=n), False
    if encoding == "binary_compressed":
        return _decompress(path, body, dtype, n), False
    if encoding == "ascii":
        return _parse_ascii(path, body, dtype, n)
    raise ValueError(f"{path}: unknown PCD DATA encoding {encoding!r}")


def _decompress(path: Path, body: bytes, dtype: np.dtype, n: int) -> np.ndarray:
    import lzf

    if len(body) < 8:
        raise ValueError(f"{path}: DATA binary_compressed body is missing")
    packed, size = struct.unpack("<II", body[:8])
    if len(body) != 8 + packed or size != n * dtype.itemsize:
        raise ValueError(
            f"{path}: DATA binary_compressed sizes disagree with the file "
            f"({packed} compressed bytes declared, {len(body) - 8} present; "
            f"{size} bytes unpacked, {n} points need {n * dtype.itemsize})"
        )
    try:
        buffer = lzf.decompress(body[8:], size) if size else b""
    except ValueError as err:
        raise ValueError(f"{path}: corrupt binary_compressed data ({err})") from None
    if buffer is None or len(buffer) != size:
        raise ValueError(f"{path}: corrupt binary_compressed data")
    data, offset = np.empty(n, dtype=dtype), 0
    for name in dtype.names:  # the unpacked body stores one field after the other
        nbytes = n * dtype[name].itemsize
        data[name] = np.frombuffer(
            buffer, dtype[name].base, offset=offset, count=nbytes // dtype[name].base.itemsize
        ).reshape(data[name].shape)
        offset += nbytes
    return data


def _parse_ascii(path: Path, body: bytes, dtype: np.dtype, n: int) -> tuple[np.ndarray, bool]:
    rows = [line.split() for line in body.decode("ascii", "replace").splitlines() if line.strip()]
    width = sum(max(1, dtype[name].shape[0] if dtype[name].shape else 1) for name in dtype.names)
    if len(rows) != n or any(len(row) != width for row in rows):
        raise ValueError(
            f"{path}: DATA ascii has {len(rows)} rows, the header says {n} points "
            f"of {width} values (or a row has another number of values)"
        )
    table = np.array(rows, dtype=str).reshape(n, width)
    data, col, rgb_as_int = np.empty(n, dtype=dtype), 0, False
    for name in dtype.names:
        ftype, k = dtype[name].base, int(np.prod(dtype[name].shape, dtype=int))
        text = table[:, col : col + k]
        try:
            if name in ("rgb", "rgba") and ftype.kind == "f" and np.char.isdigit(text).all():
                values = text.astype(np.uint64).astype(np.uint32).view(np.float32)
                rgb_as_int = True
            else:
                values = text.astype(np.float64 if ftype.kind == "f" else np.int64)
        except ValueError as err:
            raise ValueError(f"{path}: non-numeric PCD value in field {name} ({err})") from None
        data[name] = values.astype(ftype).reshape(data[name].shape)
        col += k
    return data, rgb_as_int


def encode(data: np.ndarray, encoding: str, rgb_as_int: bool) -> bytes | None:
    """The DATA body; ``None`` for binary_compressed data that LZF cannot shrink."""
    if encoding == "binary":
        return data.astype(data.dtype.newbyteorder("<")).tobytes()
    if encoding == "binary_compressed":
        import lzf

        raw = b"".join(
            np.ascontiguousarray(data[k]).astype(data.dtype[k].base.newbyteorder("<")).tobytes()
            for k in data.dtype.names
        )
        # room for LZF's worst case (a literal-run byte per 32 bytes) so it always fits
        packed = lzf.compress(raw, len(raw) + len(raw) // 32 + 64) if raw else b""
        return None if packed is None else struct.pack("<II", len(packed), len(raw)) + packed
    columns, formats = {}, []
    for key in data.dtype.names:
        column = data[key].reshape(len(data), -1)
        rgb = key in ("rgb", "rgba") and column.dtype == np.float32 and rgb_as_int
        for j in range(column.shape[1]):
            columns[f"{key}\n{j}"] = column[:, j].view(np.uint32) if rgb else column[:, j]
            kind = "i" if rgb else column.dtype.char
            formats.append(_FLOAT_FORMAT.get(kind, "%d"))
    out = io.BytesIO()
    np.savetxt(out, structured(columns), fmt=" ".join(formats), newline="\n")
    return out.getvalue()
