"""Time and accuracy of ``predict.py``'s model against Open3D's PCA, side by side.

A synthetic scan (the demo's shape family, exact normals, Gaussian noise) of
``--points`` points, or your own file (``--scan``, any format ``predict.py`` reads;
its normals, if it has any, are the reference of the errors), is estimated by the
shipped model on each ``--device`` and by Open3D's PCA (kNN, ``--k``) on the CPU; the
script prints the angular errors of each and the times as ratios to PCA (and CUDA vs
CPU when both run), with and without the plane fit that follows the network
(``--no-refine``). Without Open3D (a bare GPU image) the first model run is the
baseline. ``--cli`` also times the command line on the same scan in a file:
``predict.py`` (model) against ``predict.py --method pca`` (time and peak memory of
each process), and the start-up
(``predict.py --help``; ``predict.py`` on the scan's first 100 points, next to
``python -c "import torch"``).

    python scripts/bench_predict.py --points 100000 --cli
    python scripts/bench_predict.py --points 1000000 --devices cpu,cuda
    python scripts/bench_predict.py --scan scan.laz --devices cpu,cuda
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from pointnormals import api, o3d
from pointnormals.cloudio import read_cloud
from pointnormals.demo import demo_scan, score_normals

PREDICT = Path(__file__).resolve().parents[1] / "predict.py"
STARTUP_POINTS = 100
"""``--cli``'s start-up: ``predict.py`` on this many points of the scan (imports, the
checkpoint, one model call, the file written), next to ``import torch`` alone."""


MEASURE = """\
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
if done.returncode:
    sys.exit(done.stderr[-2000:])
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
"""Runs a command and prints its seconds and peak resident memory (KiB on Linux). A
small process in between: a child forked from this one (torch, the model, the scan in
memory) would count this process's memory in its own peak (Linux keeps the peak across
``exec``)."""


def run_measured(cmd: list) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of ``cmd``, through :data:`MEASURE`."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, cmd)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {done.stderr}")
    seconds, kib = done.stdout.split()
    return float(seconds), int(kib) / 1024


def time_cli(points, repeats: int = 3, scan: Path | None = None) -> dict[str, tuple[float, float]]:
    """Best-of-``repeats`` seconds and the peak memory (MiB) of ``predict.py`` runs on
    ``scan``, or on ``points`` written to a PLY."""
    with tempfile.TemporaryDirectory() as tmp:
        if scan is None:
            scan = Path(tmp) / "scan.ply"
            o3d.write_point_cloud(scan, points)
        out_pca, out_model = (Path(tmp) / f"{name}{scan.suffix}" for name in ("p", "m"))
        tiny, out_tiny = Path(tmp) / "tiny.ply", Path(tmp) / "t.ply"
        o3d.write_point_cloud(tiny, points[:STARTUP_POINTS])
        predict = [sys.executable, PREDICT]
        runs = {
            "start-up (--help)": [*predict, "--help"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            f"start-up ({STARTUP_POINTS} points, model)": [*predict, tiny, "-o", out_tiny],
            "predict.py --method pca": [*predict, scan, "--method", "pca", "-o", out_pca],
            "predict.py (model)": [*predict, scan, "-o", out_model],
        }
        out = dict.fromkeys(runs, (float("inf"), 0.0))
        for _ in range(repeats):  # interleaved, like the in-process runs
            for name, cmd in runs.items():
                extra = ["--overwrite", "--quiet"] if "-o" in cmd else []
                seconds, memory = run_measured([*cmd, *extra])
                out[name] = (min(out[name][0], seconds), max(out[name][1], memory))
    return out


def _estimate(pos: torch.Tensor, model, patch_points: int, refine: bool):
    """The model's normals as a numpy array, once the device has finished (timed)."""
    normals = api.estimate(pos, model=model, patch_points=patch_points, refine=refine)
    return normals.cpu().numpy()  # waits for CUDA


def load_scan(args: argparse.Namespace):
    """``(points, reference normals or None, description)`` of ``--scan`` or the demo."""
    if args.scan is None:
        points, truth = demo_scan(args.points, args.noise)
        return points, truth, f"demo scan, noise={args.noise:.4f}"
    cloud = read_cloud(args.scan)
    reference = "no normals: errors not scored" if cloud.normals is None else "its normals"
    return cloud.points, cloud.normals, f"{args.scan.name}, reference: {reference}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--noise", type=float, default=0.0025, help="fraction of the diagonal")
    parser.add_argument("--scan", type=Path, default=None, help="your cloud instead of the demo")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, default=30, help="PCA neighbours")
    parser.add_argument("--patch-points", type=int, default=1024)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--cli", action="store_true", help="also time predict.py itself")
    parser.add_argument("--repeats", type=int, default=3, help="best of, runs interleaved")
    args = parser.parse_args()
    with_pca = o3d.available()
    if args.cli and not with_pca:
        parser.error("--cli compares with predict.py --method pca, which needs Open3D")
    if args.threads:
        torch.set_num_threads(args.threads)
    points, truth, description = load_scan(args)
    print(
        f"points={len(points):,} ({description}) threads={torch.get_num_threads()} "
        f"patch_points={args.patch_points}"
    )
    runs = {}
    if with_pca:
        runs[f"Open3D PCA k={args.k} (cpu)"] = partial(o3d.estimate_normals_pca, points, args.k)
    for name in args.devices.split(","):
        model = api.load_model(args.checkpoint, name)
        device = next(model.parameters()).device
        pos = torch.from_numpy(points).to(device)
        if device.type == "cuda":  # warm-up: CUDA context, kernels
            api.estimate(pos[:50_000], model=model, patch_points=args.patch_points)
        for label, refine in (("", True), (", no fit", False)):
            run = partial(_estimate, pos, model, args.patch_points, refine)
            runs[f"TF-PointNet++{label} ({device.type})"] = run
    seconds = dict.fromkeys(runs, float("inf"))
    scores = {}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits all
        for name, run in runs.items():
            start = time.perf_counter()
            normals = run()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
            if truth is not None:
                scores.setdefault(name, score_normals(normals, truth))
    base_name, base = next(iter(seconds.items()))
    print(f"{'method':28s} {'mean°':>6s} {'median°':>8s} {'<10°':>6s} {'time/base':>9s}")
    for name, time_s in seconds.items():
        score = scores.get(name)
        errors = "     -        -      -" if score is None else (
            f"{score['mean']:6.2f} {score['median']:8.2f} {score['pgp10']:5.1f}%"
        )  # fmt: skip
        print(f"{name:28s} {errors} {time_s / base:9.2f}")
    times = {
        name.split("(")[-1].rstrip(")"): s
        for name, s in seconds.items()
        if name.startswith("TF-PointNet++ (")
    }
    if "cpu" in times and "cuda" in times:
        print(f"model cuda/cpu time ratio = {times['cuda'] / times['cpu']:.4f}")
    print(f"(best of {args.repeats}; base = {base_name}: {base:.2f} s; times are ratios to it)")
    if args.cli:
        runs = time_cli(points, args.repeats, args.scan)
        pca, pca_memory = runs["predict.py --method pca"]
        header = f"command line (best of {args.repeats})"
        print(f"\n{header:28s} {'time/pca':>9s} {'memory/pca':>10s}")
        for name, (time_s, memory) in runs.items():
            print(f"{name:28s} {time_s / pca:9.2f} {memory / pca_memory:10.2f}")
        print(f"(predict.py --method pca: {pca:.2f} s, peak memory {pca_memory:,.0f} MiB)")


if __name__ == "__main__":
    main()
