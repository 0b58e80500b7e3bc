"""How exactly the shipped model's normals follow a moved scan, per precision, side by side.

Users feel equivariance as "the same scan in another pose gives the same normals". For
every cloud of the accuracy benchmark (:mod:`bench_accuracy`: held-out meshes and
synthetic shapes with noise and density gradients, ModelNet40 test shapes), the script
draws a random O(3) element (every other one a reflection), a translation and a point
permutation, runs ``predict.py``'s path (:func:`pointnormals.api.estimate`) on the cloud
and on its moved copy, and measures the unoriented angle between n(g·x) and Q n(x) per
point. Per group and precision it prints the mean, the 99.9th percentile and the maximum
of that gap, and the share of points moved by more than 1°.

    python scripts/bench_equivariance.py --limit 1 --points 100000
    python scripts/bench_equivariance.py --precisions mixed,float32 --groups "noise 0.6%"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from pointnormals import api
from pointnormals.geometry import angle_deg, random_orthogonal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import GROUPS, SOURCES, make_clouds


def gap_degrees(points: np.ndarray, model: torch.nn.Module, precision: str, seed: int):
    """Per-point unoriented angle (degrees) between n(Qx + t)[perm] and Q n(x)[perm]."""
    generator = torch.Generator().manual_seed(seed)
    q = random_orthogonal(1, dtype=torch.float64, generator=generator)[0]
    if (seed % 2 == 1) != bool(torch.linalg.det(q) < 0):
        q = q * -1.0  # odd seeds: a reflection (det -1), even seeds: a rotation
    pos = torch.from_numpy(points)
    shift = 10.0 * pos.std() * torch.randn(3, generator=generator, dtype=torch.float64)
    perm = torch.randperm(len(pos), generator=generator)
    moved = (pos @ q.T + shift)[perm]
    n = api.estimate(pos, model=model, precision=precision)
    n_moved = api.estimate(moved, model=model, precision=precision)
    return angle_deg(n_moved, (n @ q.T)[perm]).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precisions", default="mixed,float32", help="side by side")
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--limit", type=int, default=1, help="clouds per source")
    groups = ", ".join(GROUPS).replace("%", "%%")
    p.add_argument("--groups", default=",".join(GROUPS), help=groups)
    p.add_argument("--sources", default=",".join(SOURCES))
    p.add_argument("--checkpoint", default=None)
    args = p.parse_args()
    precisions = args.precisions.split(",")
    options = argparse.Namespace(
        sources=args.sources.split(","), groups=args.groups.split(","), points=[args.points],
        limit=args.limit, synthetic=args.limit,
    )  # fmt: skip
    models = {name: api.load_model(args.checkpoint, "cpu", name) for name in precisions}
    gaps: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as cache_dir:
        clouds = make_clouds(options, cache_dir)
    for i, cloud in enumerate(clouds):
        for name in precisions:
            gap = gap_degrees(cloud.points, models[name], name, seed=i)
            gaps[(cloud.group, name)].append(gap)
            print(f"{cloud.name} [{cloud.group}] {name}: mean {gap.mean():.2e}° "
                  f"max {gap.max():.2e}°", flush=True)  # fmt: skip
    print("\n| group | precision | mean gap ° | p99.9 ° | max ° | > 1° |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (group, name), parts in gaps.items():
        gap = np.concatenate(parts)
        print(f"| {group} | {name} | {gap.mean():.2e} | {np.percentile(gap, 99.9):.2e} | "
              f"{gap.max():.2e} | {100 * np.mean(gap > 1):.3f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
