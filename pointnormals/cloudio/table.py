"""Text tables (``.xyz .xyzn .pts .txt``): ``x y z [nx ny nz] [more columns]`` per line.

Values are separated by whitespace or commas. Leading ``#``/``//`` lines are a header (a
last one with one name per column, as CloudCompare writes ``//X,Y,Z,R,G,B``, names the
columns); a ``.pts`` count line is checked against the rows. Normals are the columns
named ``nx ny nz``, else columns 3-5 of ``.xyzn`` files, else columns 3-5 when every row
holds a unit vector there.

Writing a table read from a table keeps every line, column and header, with the normal
columns replaced or inserted after ``z`` (the untouched values keep their exact text;
a ``.pts`` count line is dropped). A table written from another format holds only
``x y z nx ny nz``: text tables carry no other attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointnormals.cloudio._common import Fields, PointCloudFile, check_points

_COMMENT = ("#", "//")
_NORMAL_ALIASES = (
    ("nx", "normal_x", "normalx"),
    ("ny", "normal_y", "normaly"),
    ("nz", "normal_z", "normalz"),
)
_COLOURS = {"r": "red", "g": "green", "b": "blue", "red": "red", "green": "green", "blue": "blue"}


@dataclass(frozen=True)
class _Table:
    head: tuple[str, ...]  # comment lines before the data, verbatim
    names_line: int | None  # index in ``head`` of the column-names line
    rows: tuple[str, ...]  # the data lines, verbatim
    delimiter: str | None  # "," or None (whitespace)
    names: tuple[str, ...] | None  # column names from the header
    normal_cols: tuple[int, ...]  # () when the table has no normals
    table: np.ndarray  # (N, C) float64


def read(path: Path) -> PointCloudFile:
    """Read a text table of points; malformed rows or values raise ``ValueError``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text point table (undecodable bytes)") from None
    head = []
    while len(head) < len(lines) and lines[len(head)].lstrip().startswith(_COMMENT):
        head.append(lines[len(head)])
    rows = [line for line in lines[len(head) :] if line.strip()]
    count = None
    if len(rows) > 1 and re.fullmatch(r"\s*\d+\s*", rows[0]):  # a .pts point count
        count, rows = int(rows[0]), rows[1:]
    if not rows:
        raise ValueError(f"{path}: the file holds no points")
    delimiter = "," if "," in rows[0] else None
    try:
        table = np.loadtxt(rows, delimiter=delimiter, dtype=np.float64, ndmin=2, comments=None)
    except ValueError as err:
        raise ValueError(f"{path}: malformed point table ({str(err).splitlines()[0]})") from None
    if count is not None and count != len(rows):
        raise ValueError(f"{path}: the count line says {count} points, the file holds {len(rows)}")
    if table.shape[1] < 3:
        raise ValueError(f"{path}: expected at least 3 columns x y z, got {table.shape[1]}")
    points = check_points(path, table[:, :3])
    names_line, names = _names(head, delimiter, table.shape[1])
    cols = _normal_columns(path, table, names)
    normals = table[:, cols] if cols else None
    native = _Table(tuple(head), names_line, tuple(rows), delimiter, names, cols, table)
    fmt = path.suffix.lower().lstrip(".")
    return PointCloudFile(path, fmt, points, normals, None, native, lambda: fields(native))


def _names(
    head: list[str], delimiter: str | None, width: int
) -> tuple[int | None, tuple[str, ...] | None]:
    if not head:
        return None, None
    text = head[-1].strip().lstrip("/#").strip()
    names = tuple(n.strip() for n in text.split(delimiter))
    if len(names) != width or not all(re.fullmatch(r"[A-Za-z_][\w ]*", n) for n in names):
        return None, None
    return len(head) - 1, names


def _normal_columns(
    path: Path, table: np.ndarray, names: tuple[str, ...] | None
) -> tuple[int, ...]:
    if names is not None:
        lower = [n.lower() for n in names]
        found = [
            next((lower.index(a) for a in aliases if a in lower), None)
            for aliases in _NORMAL_ALIASES
        ]
        return tuple(found) if None not in found else ()
    unit = table.shape[1] >= 6 and bool(
        np.all(np.abs(np.linalg.norm(table[:, 3:6], axis=1) - 1) < 1e-2)
    )
    if path.suffix.lower() == ".xyzn" and not unit:
        raise ValueError(f"{path}: .xyzn rows must be 'x y z nx ny nz' with unit normals")
    return (3, 4, 5) if unit else ()


def fields(table: _Table) -> Fields:
    """Generic fields: ``x y z`` and normals, colours as uint8, other columns by name."""
    values = table.table
    names = table.names or tuple(f"scalar_{j}" for j in range(values.shape[1]))
    out: Fields = {c: values[:, j] for j, c in enumerate("xyz")}
    out.update(
        (c, values[:, j]) for c, j in zip(("nx", "ny", "nz"), table.normal_cols, strict=False)
    )
    rest = [j for j in range(3, values.shape[1]) if j not in table.normal_cols]
    colour_cols = (
        rest[:3] if table.names is None else [j for j in rest if names[j].lower() in _COLOURS]
    )
    is_byte = lambda col: bool(np.all((col == np.round(col)) & (col >= 0) & (col <= 255)))  # noqa: E731
    colours = len(colour_cols) == 3 and all(is_byte(values[:, j]) for j in colour_cols)
    for j in rest:
        if colours and j in colour_cols:
            generic = (
                _COLOURS.get(names[j].lower()) or ("red", "green", "blue")[colour_cols.index(j)]
            )
            out[generic] = values[:, j].astype(np.uint8)
        else:
            out[names[j]] = values[:, j]
    return out


def write(path: Path, cloud: PointCloudFile, normals: np.ndarray) -> None:
    """Write ``cloud`` with ``normals`` as a text table (see the module doc).

    Shapes:
        normals: ``(N, 3)``.
    """
    rounded = np.round(normals, 6)  # 1e-6 is far below any normal estimate's error
    if isinstance(cloud._native, _Table):
        table: _Table = cloud._native
        sep = "," if table.delimiter else " "
        normal_text = [row.split(" ") for row in _rows([rounded], " ")]
        head = list(table.head)
        lines = []
        for row, normal in zip(table.rows, normal_text, strict=True):
            tokens = row.split(table.delimiter)
            if table.normal_cols:
                for col, value in zip(table.normal_cols, normal, strict=True):
                    tokens[col] = value
            else:
                tokens[3:3] = normal
            lines.append(sep.join(tokens))
        if table.names_line is not None and not table.normal_cols:
            marker = "//" if head[table.names_line].lstrip().startswith("//") else "#"
            names = list(table.names or ())
            names[3:3] = ["Nx", "Ny", "Nz"]
            head[table.names_line] = marker + sep.join(names)
        lines = head + lines
    else:
        source = cloud.fields()
        sep = "," if path.suffix.lower() == ".txt" else " "
        lines = _rows([np.column_stack([source[c] for c in "xyz"]), rounded], sep)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rows(blocks: list[np.ndarray], sep: str) -> list[str]:
    """Text rows of ``(N, k)`` float blocks: float32 as ``%.9g``, float64 as Python's
    shortest round-trip ``repr``, so every value reads back bit for bit."""
    formats = [("%.9g" if b.dtype == np.float32 else "%r",) * b.shape[1] for b in blocks]
    fmt = sep.join(f for group in formats for f in group)
    values = np.column_stack([b.astype(np.float64) for b in blocks]).tolist()
    return [fmt % tuple(row) for row in values]
