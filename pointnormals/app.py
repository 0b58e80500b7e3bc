"""The ``predict.py`` command line: normals for a point-cloud file, on CPU or GPU.

    python predict.py scan.ply                      # -> scan_normals.ply beside it
    python predict.py scan.xyz -o out.ply --device cuda --orient outward
    python predict.py scan.ply --method pca         # Open3D's PCA normals, same I/O
    python predict.py --demo                        # embedded demo scan, scored

Bad input gives one line on stderr (``predict.py: error: ...``) and a non-zero exit
status: 1 for a problem with the data, files or device, 2 for bad arguments, 130 when
interrupted. The output is written to a temporary file beside it and renamed into
place at the end, so an error never leaves a half-written file, and the input is only
ever read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pointnormals import inference, io

__all__ = ["main", "parser"]

PROG = "predict.py"
WRITABLE_SUFFIXES = (".ply", ".pcd", ".xyzn", ".txt")  # the formats that store normals


class _UsageError(Exception):
    """Bad command-line usage (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise _UsageError(f"{message} (see {PROG} --help)")


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``predict.py``."""
    p = _Parser(
        prog=PROG,
        description="Estimate normals of a point cloud with the O(3)-equivariant TF-PointNet++.",
        epilog="Exit status: 0 ok, 1 bad data/file/device, 2 bad arguments, 130 interrupted.",
    )
    p.add_argument("input", nargs="?", help="point cloud: .ply .pcd .xyz .xyzn .pts .txt")
    p.add_argument(
        "-o", "--output", help="output file (.ply .pcd .xyzn .txt); default INPUT_normals.ply"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--method", choices=("model", "pca"), default="model", help="model (default) or Open3D PCA"
    )
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped one)")
    p.add_argument(
        "--device", default="auto", help="auto (default: CUDA if present), cpu, cuda, cuda:N"
    )
    p.add_argument(
        "--orient",
        choices=("none", "outward"),
        default="none",
        help="none (default: unoriented) or outward (away from the centroid)",
    )
    p.add_argument(
        "--patch-points", type=_positive, default=1024, help="points per patch (default 1024)"
    )
    p.add_argument(
        "--batch-points",
        type=_positive,
        default=None,
        help="points per model call (default 32768 on CPU, 262144 on CUDA)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "float64"),
        default="float32",
        help="model arithmetic: float32 (default) or float64 (exactly equivariant, slower)",
    )
    p.add_argument(
        "--k", type=_positive, default=30, help="neighbours of --method pca (default 30)"
    )
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.add_argument(
        "--demo",
        action="store_true",
        help="write an embedded demo scan to outputs/demo/, predict, compare with PCA",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of errors")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def default_output(path: Path) -> Path:
    """``dir/scan.xyz`` → ``dir/scan_normals.ply``."""
    return path.with_name(f"{path.stem}_normals.ply")


def _check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    if dst.suffix.lower() not in WRITABLE_SUFFIXES:
        raise ValueError(f"{dst}: output format must store normals, one of {WRITABLE_SUFFIXES}")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: the output would overwrite the input")
    if dst.exists() and not overwrite:
        raise ValueError(f"{dst}: exists (pass --overwrite to replace it)")
    if not dst.parent.is_dir():
        raise ValueError(f"{dst.parent}: output directory does not exist")
    if not os.access(dst.parent, os.W_OK):
        raise ValueError(f"{dst.parent}: output directory is not writable")


def write_atomic(dst: Path, points: np.ndarray, normals: np.ndarray | None) -> None:
    """Write to a temporary file beside ``dst`` and rename it into place."""
    tmp = dst.with_name(f".{dst.stem}.partial-{os.getpid()}{dst.suffix}")
    try:
        io.write_point_cloud(tmp, points, normals)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def estimate(
    points: np.ndarray,
    method: str = "model",
    checkpoint: str | None = None,
    device: str = "auto",
    patch_points: int = 1024,
    batch_points: int | None = None,
    k: int = 30,
    orient: str = "none",
    progress: Callable[[int, int], None] | None = None,
    precision: str = "float32",
) -> np.ndarray:
    """Unit normals ``(N, 3)`` float64 of ``points`` ``(N, 3)`` (the CLI without files)."""
    cloud = torch.from_numpy(points)
    if method == "pca":
        inference.validate_points(cloud)
        normals = torch.from_numpy(io.estimate_normals_pca(points, k))
    else:
        dev = inference.resolve_device(device)
        model = inference.load_pretrained(checkpoint, dev).to(getattr(torch, precision))
        normals = inference.predict_normals(
            model, cloud, patch_points, batch_points, progress=progress
        )
    if orient == "outward":
        normals = inference.orient_outward(cloud, normals)
    return normals.numpy().astype(np.float64)


def _run(args: argparse.Namespace, say) -> None:
    src = Path(args.input)
    dst = Path(args.output) if args.output else default_output(src)
    _check_paths(src, dst, args.overwrite)
    points, _ = io.read_point_cloud(src)
    start = time.perf_counter()
    normals = estimate(
        points, args.method, args.checkpoint, args.device,
        args.patch_points, args.batch_points, args.k, args.orient,
        progress=None if args.quiet or not sys.stderr.isatty() else _progress,
        precision=args.precision,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    write_atomic(dst, points, normals)
    say(f"{src}: {len(points):,} points -> {dst} ({args.method}, {seconds:.1f} s)")


def _progress(done: int, total: int) -> None:
    """A patch counter on an interactive terminal (erased when done)."""
    end = "\r" if done < total else "\r\033[K"
    print(f"patches {done}/{total}", end=end, file=sys.stderr, flush=True)


def _demo(args: argparse.Namespace, say) -> None:
    from pointnormals.demo import run_demo  # synthetic shapes: only needed here

    run_demo(Path("outputs/demo"), args, say)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    args = None
    try:
        args = parser().parse_args(argv)
        if args.input is None and not args.demo:
            raise _UsageError(f"the input point cloud is required (see {PROG} --help)")
        if args.threads:
            torch.set_num_threads(args.threads)
        say = (lambda _msg: None) if args.quiet else print
        (_demo if args.demo else _run)(args, say)
        return 0
    except _UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted, nothing written", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:
        if args is not None and args.debug:
            raise
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as err:  # out of memory, CUDA failures, ...
        if args is not None and args.debug:
            raise
        hint = " (try a smaller --batch-points)" if "memory" in str(err).lower() else ""
        print(f"{PROG}: error: {type(err).__name__}: {_one_line(err)}{hint}", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
