"""Accuracy of the model against a tuned PCA on dense, noisy scans (unoriented normals).

Why: the model is only worth its cost where it beats Open3D's PCA with its best ``k``.
Every cloud is generated here with exact normals (nothing downloaded, nothing written
into the repo): held-out meshes of ``../shared/data/meshes``, held-out synthetic shapes
and the ``modelnet40_mini`` test split (10k points, clean). Meshes and synthetic shapes
come in groups: ``clean``, Gaussian noise of 0.125 %, 0.6 % and 1.2 % of the bounding
box diagonal (scored against the clean normals) and ``gradient`` (clean, density falling
linearly from 1 to 0.1 along a random direction); opt-in, ``strays 1%``: 0.125 % noise
and 1 % more points uniform in 1.5x the bounding box (dust, echoes; scored on the
surface points); opt-in, ``scan lines``: a line scanner's sampling (mobile or airborne
LiDAR), the points within 1/40 of a spacing of 40 parallel planes across a random
direction (about 30 point spacings apart, one or two points wide), with 0.05 % noise;
opt-in, ``merged scans``: two range scans of every held-out mesh merged with the second
0.4 % of the diagonal out of register (two sheets where they overlap).
Held-out meshes are also scanned
(``range scan``: two random viewpoints each, a grid of rays,
:func:`~pointnormals.data.range_scan.range_scan`, with Gaussian noise of 0.05 % of the
diagonal along the ray: the near side only, open at silhouettes, density falling at
grazing angles, like a raw scan). Sources under ``../shared`` are
skipped with a line when absent. Methods: the model through ``predict.py``'s code path
(:func:`pointnormals.api.estimate`), once per ``--variant``; PCA with ``k=30`` and the
per-cloud best ``k`` (oracle). Angles are between lines, θ = arccos|cos| in degrees.

    python scripts/bench_accuracy.py --quick                  # ~15 s on 2 cores
    python scripts/bench_accuracy.py                          # 58 clouds, ~15 min
    python scripts/bench_accuracy.py --variant model --variant network:refine=false  # fit's share
    python scripts/bench_accuracy.py --points 50000,200000 --variant s1:scale=1 \\
        --variant s4:scale=4,overlap=2 --csv outputs/bench_accuracy.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointnormals import api, inference, o3d
from pointnormals.data import dense
from pointnormals.data.mesh import Mesh
from pointnormals.data.range_scan import range_scan
from pointnormals.data.synthetic import generate_shape
from pointnormals.geometry import angle_deg, normalize_cloud

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
NOISE = {"clean": 0.0, "noise 0.125%": 0.00125, "noise 0.6%": 0.006, "noise 1.2%": 0.012}
GROUPS = (*NOISE, "gradient", "range scan", "modelnet40 10k")
STRAYS = "strays 1%"  # opt-in (--groups): 0.125 % noise, then 1 % uniform stray points
STRAY_SHARE, STRAY_NOISE, STRAY_BOX = 0.01, 0.00125, 1.5  # of the points, diagonal, bbox
LINES = "scan lines"  # opt-in (--groups): 40 lines across a random direction, 0.05 % noise
LINE_COUNT, LINE_SHARE = 40, 0.05  # lines across the shape; band width ÷ line spacing
SCAN_NOISE, SCAN_VIEWS = 0.0005, 2  # along the ray, fraction of the diagonal; views per mesh
MERGED = "merged scans"  # opt-in (--groups): two range scans, the second out of register
MERGE_SHIFT = 0.004  # the second scan's offset, fraction of the diagonal
SOURCES = ("synthetic", "meshes", "modelnet40")
PCA_KS, QUICK_KS = (10, 20, 30, 50, 100, 200, 400), (10, 30, 100)
# SyntheticShapes' test split key (2) at indices from 1000 on: training uses the train
# split ([seed, 0, i]), validation [seed, 1, i], dense.py [seed, 101, i], and configured
# test splits have fewer than 1000 shapes, so these shapes are never seen.
SYNTHETIC_SEED = (0, 2, 1000)
Sampler = Callable[[int], tuple[np.ndarray, np.ndarray]]
METRICS = ("rmse", "one_minus_cos", "pgp5", "pgp10", "seconds")


@dataclass
class Cloud:
    """A cloud to score: float64 ``points`` ``(N, 3)`` and exact unit ``normals``."""

    name: str
    group: str
    points: np.ndarray
    normals: np.ndarray


def perturb(points: np.ndarray, normals: np.ndarray, group: str, size: int, seed: int) -> Cloud:
    """The ``group`` version of a base sample (``points`` holds about ``3 * size`` points)."""
    rng = np.random.default_rng(seed)
    if group == "gradient":
        t = points @ rng.normal(size=3)
        keep = rng.random(len(t)) < 1 - 0.9 * (t - t.min()) / np.ptp(t)  # 1 down to 0.1
        index = np.flatnonzero(keep)
        index = rng.permutation(index)[:size] if len(index) > size else index
        return Cloud("", group, points[index], normals[index])
    if group == LINES:  # points holds size / LINE_SHARE samples; about size are kept
        t = points @ _unit(rng.normal(size=3))
        t = (t - t.min()) * LINE_COUNT / np.ptp(t) + rng.random()  # in line spacings
        keep = np.abs(t - np.round(t)) < LINE_SHARE / 2
        sigma = SCAN_NOISE * np.linalg.norm(np.ptp(points, axis=0))
        points, normals = points[keep], normals[keep]
        return Cloud("", group, points + sigma * rng.normal(size=points.shape), normals)
    points, normals = points[:size], normals[:size]  # iid samples: the first are uniform
    if group == STRAYS:  # scored on the surface points only (strays have no normal)
        sigma = STRAY_NOISE * np.linalg.norm(np.ptp(points, axis=0))
        surface = points + sigma * rng.normal(size=points.shape)
        centre, half = (points.max(0) + points.min(0)) / 2, np.ptp(points, axis=0) / 2
        box = rng.uniform(-STRAY_BOX, STRAY_BOX, size=(int(STRAY_SHARE * size), 3))
        return Cloud("", group, np.concatenate([surface, centre + box * half]), normals)
    sigma = NOISE[group] * np.linalg.norm(np.ptp(points, axis=0))
    return Cloud("", group, points + sigma * rng.normal(size=points.shape), normals)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _synthetic(key: list[int], num_points: int) -> tuple[np.ndarray, np.ndarray]:
    return generate_shape(np.random.default_rng(key), num_points)[:2]


def base_samples(args: argparse.Namespace) -> list[tuple[str, Sampler]]:
    """``(name, sampler(num_points))`` of the held-out synthetic shapes and meshes."""
    out: list[tuple[str, Sampler]] = []
    if "synthetic" in args.sources:
        seed, split, start = SYNTHETIC_SEED
        for i in range(args.limit or args.synthetic):
            rng_key = [seed, split, start + i]
            kind = generate_shape(np.random.default_rng(rng_key), 100)[2]
            out.append((f"synthetic/{start + i}-{kind}", functools.partial(_synthetic, rng_key)))
    if "meshes" in args.sources:
        meshes = SHARED / "meshes"
        names = dense.mesh_names(meshes, heldout=True)[: args.limit or None]
        if not names:
            print(f"skipped: held-out meshes ({meshes.resolve()} absent)")
        for i, stem in enumerate(names):
            path = meshes / f"{stem}.obj"
            out.append((f"mesh/{stem}", functools.partial(dense.sample_mesh_file, path, seed=i)))
    return out


def make_clouds(args: argparse.Namespace, cache_dir: str) -> list[Cloud]:
    """Every cloud of the selected sources and groups (sizes cycle over ``--points``)."""
    clouds = []
    shape_groups = [g for g in args.groups if g in NOISE or g in ("gradient", STRAYS, LINES)]
    for j, (name, sample) in enumerate(base_samples(args) if shape_groups else []):
        size = args.points[j % len(args.points)]
        if set(shape_groups) - {LINES}:  # the scan lines sample on their own
            points, normals = sample(3 * size if "gradient" in shape_groups else size)
        for g, group in enumerate(shape_groups):
            base = sample(round(size / LINE_SHARE)) if group == LINES else (points, normals)
            cloud = perturb(*base, group, size, seed=1000 * j + g)
            cloud.name = name
            clouds.append(cloud)
    if "meshes" in args.sources and "range scan" in args.groups:
        clouds += range_scans(args)
    if "meshes" in args.sources and MERGED in args.groups:
        clouds += merged_scans(args)
    if "modelnet40" in args.sources and "modelnet40 10k" in args.groups:
        from pointnormals.data.modelnet import ModelNet40

        root = SHARED / "modelnet40_mini"
        if not root.is_dir():
            print(f"skipped: modelnet40 10k ({root.resolve()} absent)")
            return clouds
        dataset = ModelNet40(root, "test", cache_dir)
        for i in range(min(len(dataset), args.limit or len(dataset))):
            pos, normal = (a.astype(np.float64) for a in dataset.load(i))
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            clouds.append(Cloud(f"modelnet/{dataset.names[i]}", "modelnet40 10k", pos, normal))
    return clouds


def range_scans(args: argparse.Namespace) -> list[Cloud]:
    """Every held-out mesh seen from :data:`SCAN_VIEWS` random viewpoints, noise along
    the rays (the first ``--limit`` scans; sizes cycle over ``--points``)."""
    meshes = SHARED / "meshes"
    names = dense.mesh_names(meshes, heldout=True)
    if not names:
        print(f"skipped: range scan ({meshes.resolve()} absent)")
    wanted = args.limit or SCAN_VIEWS * len(names)
    clouds = []
    for j, stem in enumerate(names[: -(-wanted // SCAN_VIEWS)]):
        mesh = o3d.read_triangle_mesh(meshes / f"{stem}.obj")
        for view in range(min(SCAN_VIEWS, wanted - len(clouds))):
            rng = np.random.default_rng([j, view])
            size = args.points[len(clouds) % len(args.points)]
            points, normals = noisy_scan(mesh, size, rng)
            clouds.append(Cloud(f"scan/{stem}-{view}", "range scan", points, normals))
    return clouds


def merged_scans(args: argparse.Namespace) -> list[Cloud]:
    """Every held-out mesh scanned from two random viewpoints (half the size each) and
    merged with the second scan :data:`MERGE_SHIFT` of the diagonal out of register, in a
    random direction: where they overlap, two sheets."""
    meshes = SHARED / "meshes"
    names = dense.mesh_names(meshes, heldout=True)[: args.limit or None]
    if not names:
        print(f"skipped: {MERGED} ({meshes.resolve()} absent)")
    clouds = []
    for j, stem in enumerate(names):
        mesh = o3d.read_triangle_mesh(meshes / f"{stem}.obj")
        rng = np.random.default_rng([j, SCAN_VIEWS])  # other views than the range scans'
        size = args.points[j % len(args.points)]
        first, second = (noisy_scan(mesh, size // 2, rng) for _ in range(2))
        shift = MERGE_SHIFT * np.linalg.norm(np.ptp(mesh.vertices, axis=0))
        points = np.concatenate([first[0], second[0] + shift * _unit(rng.normal(size=3))])
        normals = np.concatenate([first[1], second[1]])
        clouds.append(Cloud(f"merged/{stem}", MERGED, points, normals))
    return clouds


def noisy_scan(mesh: Mesh, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A range scan of about ``size`` points from a random viewpoint, Gaussian noise of
    :data:`SCAN_NOISE` of the diagonal along the rays: ``(points, normals)``."""
    sigma = SCAN_NOISE * np.linalg.norm(np.ptp(mesh.vertices, axis=0))
    points, normals, rays = range_scan(mesh, size, rng.normal(size=3))
    return points + sigma * rng.normal(size=(len(points), 1)) * rays, normals


def scores(pred: np.ndarray, truth: np.ndarray, seconds: float) -> dict[str, float]:
    """RMSE of θ, mean 1−|cos|, PGP5/PGP10 (% of θ under 5°/10°) and the time, over the
    first ``len(truth)`` points (stray points come after them)."""
    pred = pred[: len(truth)]
    pred = pred / np.linalg.norm(pred, axis=1, keepdims=True).clip(1e-12)
    cos = np.abs((pred * truth).sum(1)).clip(0.0, 1.0)
    theta = angle_deg(pred, truth)  # unoriented
    return {
        "rmse": float(np.sqrt(np.mean(theta**2))),
        "one_minus_cos": float(np.mean(1 - cos)),
        "pgp5": float(100 * np.mean(theta < 5)),
        "pgp10": float(100 * np.mean(theta < 10)),
        "seconds": seconds,
    }


def run_methods(cloud: Cloud, model: torch.nn.Module, args: argparse.Namespace) -> dict[str, dict]:
    """Scores of every method on ``cloud``: each variant, ``PCA k=30``, ``PCA oracle``."""
    results = {}
    for name, options in args.variant:
        start = time.perf_counter()
        normals = api.estimate(
            torch.from_numpy(cloud.points), method="model", model=model, **options
        )
        results[name] = scores(normals.numpy(), cloud.normals, time.perf_counter() - start)
    pca = {}
    for k in args.ks:
        start = time.perf_counter()
        normals = o3d.estimate_normals_pca(cloud.points, k)
        pca[k] = scores(normals, cloud.normals, time.perf_counter() - start) | {"k": k}
    results["PCA k=30"] = pca[30]
    results["PCA oracle"] = min(pca.values(), key=lambda s: s["rmse"])
    return results


def geomean(values: list[float]) -> float:
    """Geometric mean (values floored at 1e-12)."""
    return float(np.exp(np.mean(np.log(np.maximum(values, 1e-12)))))


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _oracle_ks(oracles: list[dict]) -> str:
    """The best ``k`` of each cloud, counted: ``k=30×2,50``."""
    ks = sorted(Counter(o["k"] for o in oracles).items())
    return "k=" + ",".join(f"{k}×{n}" if n > 1 else str(k) for k, n in ks)


def report(clouds: list[Cloud], results: list[dict], args: argparse.Namespace) -> str:
    """The markdown: a table per group, then the summary over all groups."""
    methods = [name for name, _ in args.variant] + ["PCA k=30", "PCA oracle"]
    groups = [g for g in args.groups if any(c.group == g for c in clouds)]
    oracle = [max(r["PCA oracle"]["rmse"], 1e-12) for r in results]
    ratio = {m: [r[m]["rmse"] / o for r, o in zip(results, oracle, strict=True)] for m in methods}
    head = ["method", "RMSE °", "1−\\|cos\\|", "PGP5 %", "PGP10 %", "time s", "time ÷ PCA30"]
    lines, summary = [], {m: {} for m in methods}
    for group in groups:
        rows = [i for i, c in enumerate(clouds) if c.group == group]
        lines += [f"\n## {group} (clouds: {len(rows)})\n", _row([*head, "RMSE ÷ oracle"])]
        lines.append(_row(["---"] * (len(head) + 1)))
        pca30 = sum(results[i]["PCA k=30"]["seconds"] for i in rows)
        for m in methods:
            mean = {key: np.mean([results[i][m][key] for i in rows]) for key in METRICS}
            summary[m][group] = geomean([ratio[m][i] for i in rows])
            label = m
            if m == "PCA oracle":
                label += f" ({_oracle_ks([results[i][m] for i in rows])})"
            cells = [f"{mean['rmse']:.2f}", f"{mean['one_minus_cos']:.4f}", f"{mean['pgp5']:.1f}"]
            cells += [f"{mean['pgp10']:.1f}", f"{mean['seconds']:.2f}"]
            cells += [f"{len(rows) * mean['seconds'] / pca30:.1f}", f"{summary[m][group]:.3f}"]
            lines.append(_row([label, *cells]))
    lines.append("\n## All groups: geometric mean of RMSE ÷ PCA oracle (✓: beats PCA k=30)\n")
    lines += [_row(["method", "all clouds", *groups]), _row(["---"] * (len(groups) + 2))]
    for m in methods:
        cells = [f"{summary[m][g]:.3f}" for g in groups]
        if not m.startswith("PCA"):  # a model variant: does it beat PCA k=30 here?
            wins = [summary[m][g] < summary["PCA k=30"][g] for g in groups]
            cells = [f"{c} {'✓' if w else '✗'}" for c, w in zip(cells, wins, strict=True)]
        lines.append(_row([m, f"{geomean(ratio[m]):.3f}", *cells]))
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("cloud", "group", "points", "surface_points", "method", "k", *METRICS)


def write_csv(path: Path, clouds: list[Cloud], results: list[dict]) -> None:
    """One row per (cloud, method), with the cloud's invariant noise estimate."""
    from pointnormals.patching import surface_points

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for cloud, result in zip(clouds, results, strict=True):
            unit, _, _ = normalize_cloud(torch.from_numpy(cloud.points))  # float64
            rho = surface_points(unit, 8192)
            for method, s in result.items():
                cells = [cloud.name, cloud.group, len(cloud.points), f"{rho:.5f}", method]
                writer.writerow([*cells, s.get("k", ""), *(f"{s[key]:.6g}" for key in METRICS)])


def _value(text: str) -> Any:
    """``"4"`` → 4, ``"1.5"`` → 1.5, ``"None"`` → None, ``"false"``/``"true"`` → bool,
    anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None if text in ("None", "none") else text


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=val,key=val`` → ``(NAME, options)`` (``NAME`` alone: default options)."""
    name, _, spec = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, sep, value = item.partition("=")
        if not (sep and key and name):
            raise argparse.ArgumentTypeError(f"bad variant {text!r}: NAME:key=val,key=val")
        options[key.strip()] = _value(value.strip())
    return name, options


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _sizes(text: str) -> list[int]:
    return [int(s) for s in _names(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=_sizes, default=[100_000], help="cycled over the shapes")
    p.add_argument("--variant", type=parse_variant, action="append", default=[],
                   help="NAME:key=val,... a model column with these predict options")  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped one)")
    p.add_argument(
        "--groups",
        type=_names,
        default=list(GROUPS),
        help=(", ".join(GROUPS) + f"; opt-in: {STRAYS}, {LINES}, {MERGED}").replace("%", "%%"),
    )
    p.add_argument("--sources", type=_names, default=list(SOURCES), help=", ".join(SOURCES))
    p.add_argument("--synthetic", type=int, default=4, help="synthetic shapes")
    p.add_argument("--limit", type=int, default=0, help="clouds per source (0: all)")
    p.add_argument(
        "--quick", action="store_true", help="1 cloud per source, 20k points, k 10,30,100"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_accuracy.md")
    p.add_argument("--csv", type=Path, default=None, help="per (cloud, method) rows")
    args = p.parse_args(argv)
    for option, chosen, known in (
        ("--groups", args.groups, (*GROUPS, STRAYS, LINES, MERGED)),
        ("--sources", args.sources, SOURCES),
    ):
        if unknown := set(chosen) - set(known):
            p.error(f"{option}: unknown {sorted(unknown)}, expected some of {list(known)}")
    args.variant = args.variant or [("model", {})]
    args.ks = QUICK_KS if args.quick else PCA_KS
    if args.quick:
        args.points, args.limit = [20_000], 1
    return args


def main(argv: list[str] | None = None) -> None:
    """Generate the clouds, score every method on each, print and write the report."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = api.load_model(args.checkpoint, "cpu")
    api.estimate(torch.randn(4096, 3, dtype=torch.float64), model=model)  # warm-up, untimed
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache_dir:  # ModelNet40's per-shape cache
        clouds = make_clouds(args, cache_dir)
    results = []
    for cloud in clouds:
        results.append(result := run_methods(cloud, model, args))
        scored = ", ".join(f"{m} {s['rmse']:.2f}°" for m, s in result.items())
        print(f"{cloud.name} [{cloud.group}] {len(cloud.points):,} pts: {scored}", flush=True)
    if not clouds:
        sys.exit("bench_accuracy: no cloud selected")
    argv = sys.argv[1:] if argv is None else argv
    header = [
        "# Normal accuracy: model vs PCA\n",
        f"command: `{shlex.join(['python', 'scripts/bench_accuracy.py', *argv])}`  ",
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}  ",
        f"checkpoint: {args.checkpoint or inference.DEFAULT_CHECKPOINT}  ",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"{len(clouds)} clouds in {time.perf_counter() - start:.0f} s\n",
    ]
    text = "\n".join(header) + report(clouds, results, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.csv:
        write_csv(args.csv, clouds, results)


if __name__ == "__main__":
    main()
