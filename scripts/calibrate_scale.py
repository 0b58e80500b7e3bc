"""Calibrate ``--scale auto``: which context scale wins at which noise, on training meshes.

For clouds of the *training* meshes (never the benchmark's held-out ones) at several
sizes and noise levels, the script measures the invariant noise estimate
:func:`~pointnormals.patching.surface_points` and the model's RMSE at every context
scale, then scores candidate values of
:data:`~pointnormals.inference.SURFACE_FACTOR`: the geometric mean, over the clouds, of
the RMSE of the scale the rule picks divided by the RMSE of the best scale (1.0 = the
rule always picks the best scale).

    python scripts/calibrate_scale.py                       # ~16 min on 2 cores
    python scripts/calibrate_scale.py --checkpoint PATH --points 30000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from pointnormals import api, inference
from pointnormals.data import dense
from pointnormals.geometry import normalize_cloud
from pointnormals.patching import SCALES, surface_points

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import SHARED, scores

MESHES = ("cow", "teapot", "beast", "homer")
NOISE = (0.0, 0.00125, 0.003, 0.006, 0.012)
FACTORS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--points", default="30000,150000", help="cloud sizes")
    p.add_argument("--patch-points", type=int, default=1024)
    args = p.parse_args()
    meshes = [m for m in MESHES if m not in dense.HELDOUT_MESHES]
    if not (SHARED / "meshes").is_dir():
        sys.exit("calibrate_scale.py: needs ../shared/data/meshes")
    model = api.load_model(args.checkpoint, "cpu")
    rows = []  # (name, surface points, {scale: rmse})
    print(f"{'cloud':28s} {'k*':>6s} " + " ".join(f"{f's={s}':>6s}" for s in SCALES))
    for i, stem in enumerate(meshes):
        for size in (int(s) for s in args.points.split(",")):
            clean, normals = dense.sample_mesh_file(SHARED / "meshes" / f"{stem}.obj", size, i)
            rng = np.random.default_rng(i)
            for noise in NOISE:
                sigma = noise * np.linalg.norm(np.ptp(clean, axis=0))
                points = torch.from_numpy(clean + sigma * rng.normal(size=clean.shape))
                unit, _, _ = normalize_cloud(points)
                k_star = surface_points(unit, SCALES[-1] * args.patch_points)
                rmse = {}
                for scale in SCALES:
                    normals_pred = api.estimate(points, model=model, scale=scale).numpy()
                    rmse[scale] = scores(normals_pred, normals, 0.0)["rmse"]
                name = f"{stem} {size // 1000}k {100 * noise:.3g}%"
                rows.append((name, k_star, rmse))
                print(f"{name:28s} {k_star:6.0f} " + " ".join(f"{rmse[s]:6.2f}" for s in SCALES))
    print("\nSURFACE_FACTOR  geomean RMSE(chosen)/RMSE(best scale), network work vs scale 1")
    for factor in FACTORS:
        ratios, work = [], []
        for _, k_star, rmse in rows:
            chosen = inference.choose_scale(k_star, args.patch_points, factor)
            ratios.append(rmse[chosen] / min(rmse.values()))
            work.append(1.0 / chosen)  # the network sees 1/s of the points
        mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{factor:14g}  {mean:.4f}   worst {max(ratios):.3f}   work {np.mean(work):.2f}")
    fixed = {s: [rmse[s] / min(rmse.values()) for _, _, rmse in rows] for s in SCALES}
    for s, ratios in fixed.items():
        mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"fixed scale {s:2d}  {mean:.4f}   worst {max(ratios):.3f}")
    print(f"(current SURFACE_FACTOR = {inference.SURFACE_FACTOR})")


if __name__ == "__main__":
    main()
