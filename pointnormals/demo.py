"""``make demo`` / ``predict.py --demo``: an embedded scan, its normals, and a score.

A procedural shape (a union of primitives, with sharp creases and thin parts; exact
normals) is sampled like a scan: 100k points, Gaussian noise of 0.25 % of its box
diagonal, an arbitrary rotation and reflection, millimetre units and an offset far from
the origin. The demo writes it to ``outputs/demo/scan.ply``, estimates normals with the
shipped model and with Open3D's PCA side by side, writes the model's normals to
``outputs/demo/scan_normals.ply`` and prints the angular errors of both against the
exact normals. Nothing is downloaded.
"""

from __future__ import annotations

import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pointnormals import api, batch, o3d, paths
from pointnormals.data.synthetic import generate_shape
from pointnormals.data.transforms import random_orthogonal
from pointnormals.geometry import angle_deg

__all__ = ["demo_scan", "run_demo", "score_normals"]

Say = Callable[[str], None]


def demo_scan(
    num_points: int = 100_000, noise: float = 0.0025, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """The demo scan: ``points`` (mm, far from the origin) and exact unit ``normals``."""
    rng = np.random.default_rng(seed)
    while True:  # the first union shape of this seed: creases, thin parts
        points, normals, family = generate_shape(rng, num_points)
        if family.startswith("union-"):
            break
    diagonal = np.linalg.norm(points.max(0) - points.min(0))
    points = points + rng.normal(scale=noise * diagonal, size=points.shape)
    q = random_orthogonal("o3", torch.Generator().manual_seed(seed)).numpy()
    points = (points / diagonal * 250.0) @ q.T + np.array([1520.0, -830.0, 4210.0])
    return points, normals @ q.T


def score_normals(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean, median, RMSE angle and the share below 10° (PGP10, %)."""
    angle = angle_deg(pred, truth)  # unoriented, (N,)
    return {
        "mean": float(angle.mean()),
        "median": float(np.median(angle)),
        "rmse": float(np.sqrt((angle**2).mean())),
        "pgp10": float((angle < 10).mean() * 100),
    }


def _write(path: Path, points: np.ndarray, normals: np.ndarray | None = None) -> None:
    with paths.atomic(path) as (tmp,):
        o3d.write_point_cloud(tmp, points, normals)


def run_demo(out_dir: Path, args: Namespace, say: Say) -> None:
    """Write the demo scan, estimate its normals (model and PCA), print and draw the scores."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points, truth = demo_scan()
    scan, result = out_dir / "scan.ply", out_dir / "scan_normals.ply"
    _write(scan, points)
    _write(out_dir / "scan_truth.ply", points, truth)
    say(
        f"demo scan: {len(points):,} points, noise 0.25 % of the diagonal, arbitrary pose -> {scan}"
    )
    model = api.load_model(args.checkpoint, args.device, args.precision)
    rows, normals = {}, {}
    for method in ("model", "pca"):
        start = time.perf_counter()
        options = batch.predict_options(args) if method == "model" else {}
        normals[method] = api.estimate(
            torch.from_numpy(points), method=method, model=model, k=args.k, **options
        ).numpy()
        rows[method] = (score_normals(normals[method], truth), time.perf_counter() - start)
    _write(result, points, normals["model"])
    say(f"normals of the model -> {result} (same as: python predict.py {scan} --overwrite)")
    say("angular error vs exact normals (degrees, unoriented); time relative to PCA")
    say(f"{'method':24s} {'mean':>6s} {'median':>7s} {'RMSE':>6s} {'<10°':>6s} {'time':>6s}")
    pca_seconds = rows["pca"][1]
    names = {"model": "TF-PointNet++ (shipped)", "pca": f"Open3D PCA (k={args.k})"}
    for method, (s, seconds) in rows.items():
        say(
            f"{names[method]:24s} {s['mean']:6.2f} {s['median']:7.2f} {s['rmse']:6.2f} "
            f"{s['pgp10']:5.1f}% {seconds / pca_seconds:5.1f}x"
        )
    _draw(out_dir / "normals.png", points, truth, normals, names, say)


def _draw(
    path: Path, points: np.ndarray, truth: np.ndarray, normals: dict, names: dict, say: Say
) -> None:
    """Model vs PCA error maps side by side; skipped with a note where no renderer starts."""
    from pointnormals import render

    problem = render.offscreen_problem()
    if problem:
        say(f"no picture: {problem}")
        return
    panels = [
        (f"{names[m]}: mean {score_normals(n, truth)['mean']:.1f}°", n, angle_deg(n, truth))
        for m, n in normals.items()
    ]
    with paths.atomic(path) as (tmp,):
        render.render_panels(  # small enough for the README (docs/demo_normals.png)
            tmp, points, panels, size=(1200, 560), title="angle error vs the exact normals"
        )
    say(f"error maps, model vs PCA -> {path}")
