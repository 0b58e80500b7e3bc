"""Time and accuracy of ``predict.py``'s model against Open3D's PCA, side by side.

A synthetic scan (the demo's shape family, exact normals, Gaussian noise) of
``--points`` points is estimated by the shipped model on each ``--device`` and by
Open3D's PCA (kNN, ``--k``) on the CPU; the script prints the angular errors of each and
the times as ratios to PCA (and CUDA vs CPU when both run).

    python scripts/bench_predict.py --points 1000000 --devices cpu,cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from pointnormals import io
from pointnormals.demo import demo_scan, score_normals
from pointnormals.inference import load_pretrained, predict_normals, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--noise", type=float, default=0.0025, help="fraction of the diagonal")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, default=30, help="PCA neighbours")
    parser.add_argument("--patch-points", type=int, default=1024)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    points, truth = demo_scan(args.points, args.noise)
    print(
        f"points={len(points):,} noise={args.noise:.4f} threads={torch.get_num_threads()} "
        f"patch_points={args.patch_points}"
    )
    start = time.perf_counter()
    pca = io.estimate_normals_pca(points, args.k)
    rows = {
        f"Open3D PCA k={args.k} (cpu)": (score_normals(pca, truth), time.perf_counter() - start)
    }
    for name in args.devices.split(","):
        device = resolve_device(name)
        model = load_pretrained(args.checkpoint, device)
        pos = torch.from_numpy(points).to(device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        if device.type == "cuda":  # warm-up: CUDA context, kernels
            predict_normals(model, pos[:50_000], args.patch_points)
        sync()
        start = time.perf_counter()
        normals = predict_normals(model, pos, args.patch_points)
        sync()
        seconds = time.perf_counter() - start
        rows[f"TF-PointNet++ ({device.type})"] = (
            score_normals(normals.cpu().numpy(), truth),
            seconds,
        )
    base = next(iter(rows.values()))[1]
    print(f"{'method':28s} {'mean°':>6s} {'median°':>8s} {'<10°':>6s} {'time/PCA':>9s}")
    for name, (score, seconds) in rows.items():
        print(
            f"{name:28s} {score['mean']:6.2f} {score['median']:8.2f} {score['pgp10']:5.1f}% "
            f"{seconds / base:9.2f}"
        )
    times = {name.split("(")[-1].rstrip(")"): s for name, (_, s) in rows.items() if "TF" in name}
    if "cpu" in times and "cuda" in times:
        print(f"model cuda/cpu time ratio = {times['cuda'] / times['cpu']:.4f}")
    print(f"(PCA: {base:.2f} s; model times are ratios to it)")


if __name__ == "__main__":
    main()
