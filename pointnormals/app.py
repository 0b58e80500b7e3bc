"""The ``predict.py`` command line: normals for point-cloud files, on CPU or GPU.

    python predict.py scan.ply                      # -> scan_normals.ply beside it
    python predict.py scan.las --orient mst         # -> scan_normals.las, consistent signs
    python predict.py scans/ "more/*.pcd" -o out/   # every point file, one model load
    python predict.py scan.ply --render scan.png --views 4
    python predict.py --demo                        # embedded demo scan, scored

Every attribute of the input (colours, intensity, classification, any PLY property or
PCD field) is written back with the normals added or replaced, in the same order and
precision. Bad input gives one line on stderr (``predict.py: error: ...``) and a
non-zero exit status: 1 for a problem with the data, files or device, 2 for bad
arguments, 130 when interrupted. With several inputs a failing file is reported and the
others are still written (status 1 at the end). Outputs are written to temporary files
beside them and renamed into place when complete, so an error never leaves a partial
file, and inputs are only ever read.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from pointnormals import batch  # light: torch, Open3D & co. are imported when used

__all__ = ["main", "parser"]

PROG = batch.PROG
METHODS = ("model", "pca")  # as pointnormals.api.METHODS (not imported: start-up time)
ORIENTATIONS = ("none", "outward", "mst", "viewpoint", "auto")  # as api.ORIENTATIONS


_UsageError = batch.UsageError  # bad command-line usage (exit status 2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise _UsageError(f"{message} (see {PROG} --help)")


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``predict.py``."""
    p = _Parser(
        prog=PROG,
        description="Estimate normals of point clouds with the O(3)-equivariant TF-PointNet++.",
        epilog="Exit status: 0 ok, 1 bad data/file/device, 2 bad arguments, 130 interrupted.",
    )
    add = p.add_argument
    add(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="point clouds (.ply .pcd .las .laz .xyz .xyzn .pts .txt), directories, globs",
    )
    add(
        "-o",
        "--output",
        help="output file, or directory for several inputs (default: beside "
        "each input, INPUT_normals.ply|pcd|las|laz)",
    )
    add("--overwrite", action="store_true", help="replace existing output files")
    add("--method", choices=METHODS, default="model", help="model (default) or Open3D PCA")
    add("--checkpoint", help="model checkpoint (default: the shipped one)")
    add("--device", default="auto", help="auto (default: CUDA if present), cpu, cuda, cuda:N")
    add(
        "--orient",
        type=_orient,
        default=("none", None),
        metavar="MODE",
        help="none (default: unoriented), outward (away from the centroid), mst (consistent "
        "over a neighbour graph), viewpoint X,Y,Z (towards a sensor), auto (the file's "
        "viewpoint, else mst)",
    )
    add(
        "--render",
        metavar="PNG",
        help="write a picture of the normals (a directory for "
        "several inputs); with normals in the input, a second panel shows the angle error",
    )
    add("--views", type=_views, default=1, help="views in the picture, 1-4 (default 1)")
    add("--show", action="store_true", help="open Open3D's viewer on the result (one input)")
    add("--patch-points", type=_positive, default=1024, help="points per patch (default 1024)")
    add(
        "--batch-points",
        type=_positive,
        default=None,
        help="points per model call (default 8192 on CPU, 262144 on CUDA)",
    )
    add(
        "--scale",
        type=_auto_or_positive,
        default=None,
        metavar="S",
        help="context scale: auto (default, from the cloud's noise) or S: a patch spans "
        "the S x patch-points nearest points (trained: 1, 2, 4, 8; larger for noisier scans)",
    )
    add(
        "--overlap",
        type=_overlap,
        default=1.5,
        help="patches per point on average, blended (default 1.5; more: slower, smoother)",
    )
    add(
        "--precision",
        choices=("mixed", "float64", "float32"),
        default="mixed",
        help="mixed (default: geometry in float64, network in float32, exactly "
        "equivariant), float64 (all; slower) or float32 (all; fastest, not exact)",
    )
    add(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="skip the plane fit that follows the network (its normals as they come)",
    )
    add(
        "--fit-k",
        type=_auto_or_positive,
        default=None,
        metavar="K",
        help="neighbours of the plane fit after the network: auto (default, from the "
        "noise: 16 on clean scans, 32-256 under noise) or K (more for large smooth panels)",
    )
    add("--k", type=_positive, default=30, help="neighbours of --method pca (default 30)")
    add("--threads", type=_positive, default=None, help="CPU threads (default: torch's)")
    add("--quiet", action="store_true", help="print nothing on success, no progress display")
    add(
        "--demo",
        action="store_true",
        help="write an embedded demo scan to outputs/demo/, predict, compare with PCA",
    )
    add("--debug", action="store_true", help="show the traceback of errors")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _auto_or_positive(text: str) -> int | None:
    return None if text == "auto" else _positive(text)


def _overlap(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1.0 <= value <= 8.0:
        raise argparse.ArgumentTypeError(f"1 to 8, got {value}")
    return value


def _views(text: str) -> int:
    value = _positive(text)
    if value > 4:
        raise argparse.ArgumentTypeError(f"1 to 4 views, got {value}")
    return value


def _orient(text: str) -> tuple[str, tuple[float, float, float] | None]:
    """``mst`` → ``("mst", None)``; ``viewpoint=1,2,3`` → ``("viewpoint", (1., 2., 3.))``."""
    mode, _, coords = text.partition("=")
    if mode not in ORIENTATIONS or (coords and mode != "viewpoint"):
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from none, outward, mst, viewpoint X,Y,Z, auto)"
        )
    if mode != "viewpoint":
        return mode, None
    try:
        xyz = tuple(float(v) for v in coords.split(","))
    except ValueError:
        xyz = ()
    if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
        raise argparse.ArgumentTypeError(
            f"viewpoint needs X,Y,Z (three numbers, e.g. viewpoint 0,0,10), got {coords!r}"
        )
    return mode, xyz  # type: ignore[return-value]


def _join_viewpoint(argv: list[str]) -> list[str]:
    """``--orient viewpoint X,Y,Z`` → ``--orient=viewpoint=X,Y,Z`` (one token, so that a
    negative X is not taken for an option and the inputs are not taken for X,Y,Z)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--orient", "--orient=viewpoint") and i + 1 < len(argv):
            two = argv[i] == "--orient"
            if not two or argv[i + 1] == "viewpoint":
                j = i + 2 if two else i + 1
                if j < len(argv):
                    out.append(f"--orient=viewpoint={argv[j]}")
                    i = j + 1
                    continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    args = None
    try:
        argv = _join_viewpoint(list(sys.argv[1:] if argv is None else argv))
        args = parser().parse_args(argv)
        if args.fit_k is not None and not (args.refine and args.method == "model"):
            raise _UsageError(
                "--fit-k sizes the model's plane fit: not with --no-refine or --method pca"
            )
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        say = (lambda _msg: None) if args.quiet else print
        if args.demo:
            from pointnormals.demo import run_demo

            run_demo(Path("outputs/demo"), args, say)
            return 0
        return batch.run(args, say)
    except _UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted, the current file was not written", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, MemoryError) as err:
        if args is not None and args.debug:
            raise
        print(f"{PROG}: error: {batch.describe(err)}", file=sys.stderr)
        return 1
