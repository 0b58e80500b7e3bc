"""The paper's claims on equal budgets: train every variant, evaluate, write one report.

Why: researchers choose a method from numbers and pictures. This script trains the
variants the claims compare (same widths, parameter counts within 10 %, the same number
of optimisation steps, the same data and seeds), scores them side by side with Open3D
PCA and writes ``docs/benchmarks.md`` with PNG plots beside it.

Models (``MODELS``, each a list of ``train.py`` overrides on ``data=synthetic``):
learned frames with tensor or scalar messages, learned frames with frame refinement,
PCA frames, and identity frames (plain PointNet++) trained without and with O(3)
augmentation. The learning curve trains the equivariant model and the augmented
baseline again on fewer shapes (``--curve``), with the same number of steps.

Evaluation (``scripts/bench_accuracy.py``'s held-out clouds at ``--points``, through
:func:`pointnormals.api.estimate`, the code path of ``predict.py``, without its plane fit
``refine``: the networks are compared):

* accuracy per noise level (0, 0.125, 0.6, 1.2 % of the diagonal) with the clouds as
  generated (``aligned``) and under a random O(3) element with a translation (``o3``);
* exactness: the angle between ``n(g·x)`` and ``Q n(x)`` per model and precision;
* cost: training-step time and peak memory (``scripts/bench_model.py``), prediction
  time against PCA k=30 at 10k, 100k and 1M points.

Every stage resumes: finished runs (``logs/benchmark/runs/<name>/done``) are skipped,
interrupted ones continue from ``last.ckpt``, scores are kept in
``outputs/benchmark/results.json``.

    python scripts/benchmark.py                      # ~2 h on 2 cores (training ~80 min)
    python scripts/benchmark.py --stages train       # only the training runs
    python scripts/benchmark.py --stages scores      # score the runs done so far
    python scripts/benchmark.py --checkpoint "TF learned, tensor=gpu.ckpt"  # given, not trained
    python scripts/benchmark.py --steps 8 --curve 16 --points 5000 --limit 1 \\
        --sizes 10000 --task benchmark_smoke --out outputs/benchmark_smoke.md  # a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_accuracy import NOISE, Cloud, _row, make_clouds, scores
from bench_equivariance import gap_degrees

from pointnormals import api, o3d
from pointnormals.geometry import random_orthogonal
from pointnormals.nn.checkpoint import load_model

REPO = Path(__file__).resolve().parents[1]
TRAIN_SHAPES = 384  # synthetic training shapes of every main run (conf/data/synthetic.yaml)
BATCH = 8
# name -> train.py overrides; every run also gets COMMON and its own budget
MODELS: dict[str, list[str]] = {
    "TF learned, tensor": ["frames=learned", "reps=tensor"],
    "TF learned, scalar": ["frames=learned", "reps=scalar"],
    "TF learned + refinement": ["frames=learned", "reps=tensor", "frame_update=true"],
    "TF PCA, tensor": ["frames=pca", "reps=tensor"],
    "identity, no aug": ["frames=identity", "reps=tensor", "data.train_rotation=none"],
    "identity + O(3) aug": ["frames=identity", "reps=tensor", "data.train_rotation=o3"],
}
CURVE_MODELS = ("TF learned, tensor", "identity + O(3) aug")
COMMON = [
    "data=synthetic",
    "trainer=cpu",
    "logger=csv",
    "callbacks/progress_bar=tqdm",
    "test=false",
    "seed=12345",
    f"data.batch_size={BATCH}",
    "data.num_workers=1",
    "data.train_patch=[1.0,1.0,0.3,0.1,0.05]",  # whole shapes and the patches predict.py cuts
    "callbacks.last_checkpoint.every_n_train_steps=50",
]
PROTOCOLS = ("aligned", "o3")
GROUPS = tuple(NOISE)  # clean and the three noise levels


def slug(name: str, shapes: int) -> str:
    """``"TF learned, tensor", 384`` → ``tf-learned-tensor-n384`` (a run directory)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + f"-n{shapes}"


def runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """``(model, training shapes)`` of every run: the main runs, then the curve's."""
    main = [(name, TRAIN_SHAPES) for name in MODELS]
    return main + [(name, n) for n in args.curve for name in CURVE_MODELS]


def run_dir(args: argparse.Namespace, name: str, shapes: int) -> Path:
    return REPO / "logs" / args.task / "runs" / slug(name, shapes)


def given(args: argparse.Namespace, name: str, shapes: int) -> Path | None:
    """The checkpoint ``--checkpoint NAME=PATH`` gives for a main run (not trained here)."""
    return args.given.get(name) if shapes == TRAIN_SHAPES else None


def is_done(args: argparse.Namespace, name: str, shapes: int) -> bool:
    return given(args, name, shapes) is not None or (run_dir(args, name, shapes) / "done").exists()


# --------------------------------------------------------------------------- training
def train_overrides(args: argparse.Namespace, name: str, shapes: int) -> list[str]:
    """``train.py`` overrides of one run: ``args.steps`` steps whatever the data size."""
    epochs = math.ceil(args.steps * BATCH / shapes)
    return [
        *COMMON,
        *MODELS[name],
        f"task_name={args.task}",
        f"run_name={slug(name, shapes)}",
        f"data.sources.synthetic.sizes=[{shapes},64,64]",
        f"++trainer.max_steps={args.steps}",
        f"trainer.max_epochs={epochs}",
        f"++trainer.check_val_every_n_epoch={max(1, epochs // 4)}",  # about 4 validations
        f"module.scheduler.T_max={epochs}",
    ]


def train(args: argparse.Namespace) -> None:
    """Train every run without a ``done`` marker (resuming from ``last.ckpt``)."""
    todo = [(n, s) for n, s in runs(args) if not is_done(args, n, s)]
    for i, (name, shapes) in enumerate(todo, 1):
        directory = run_dir(args, name, shapes)
        cmd = [sys.executable, str(REPO / "train.py"), *train_overrides(args, name, shapes)]
        if (directory / "checkpoints" / "last.ckpt").exists():
            cmd.append("ckpt_path=last")
        print(f"[train {i}/{len(todo)}] {name}, {shapes} shapes, {args.steps} steps", flush=True)
        start = time.perf_counter()
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "benchmark_train.log").open("a") as log:
            subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
        seconds = time.perf_counter() - start
        (directory / "done").write_text(json.dumps({"seconds": seconds, "steps": args.steps}))
        print(f"  done in {seconds / 60:.1f} min", flush=True)


def load_run(args: argparse.Namespace, name: str, shapes: int) -> torch.nn.Module:
    """The final weights of a run (``last.ckpt``: every model gets the same steps), or the
    checkpoint given for it."""
    path = given(args, name, shapes) or run_dir(args, name, shapes) / "checkpoints" / "last.ckpt"
    return load_model(path).float()


# ------------------------------------------------------------------------- evaluation
def transformed(cloud: Cloud, protocol: str, seed: int) -> Cloud:
    """``cloud`` as given (``aligned``) or under ``x ↦ Qx + t``, Q Haar on O(3) (``o3``)."""
    if protocol == "aligned":
        return cloud
    generator = torch.Generator().manual_seed(seed)
    q = random_orthogonal(1, dtype=torch.float64, generator=generator)[0].numpy()
    t = np.random.default_rng(seed).normal(size=3) * np.ptp(cloud.points, axis=0).max()
    return Cloud(cloud.name, cloud.group, cloud.points @ q.T + t, cloud.normals @ q.T)


def estimate(model: torch.nn.Module | None, points: np.ndarray, **options: Any) -> np.ndarray:
    """Normals of ``points``: the model through ``predict.py``'s path without its plane fit
    (``refine=False``: the claims compare networks, and the fit would blend the same
    classical step into all of them), or PCA k=``k``."""
    if model is None:
        return o3d.estimate_normals_pca(points, options["k"])
    options = {"refine": False, **options}
    return api.estimate(torch.from_numpy(points), model=model, **options).numpy()


class Results:
    """Scores kept in a JSON file, keyed by strings, so every stage can resume."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, compute) -> Any:
        if key not in self.data:
            self.data[key] = compute()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1))
        return self.data[key]


def accuracy(args, results: Results, clouds: list[Cloud], models: dict[str, Any]) -> None:
    """RMSE per (model or PCA, protocol, cloud); PCA at k=30 and every k of the oracle."""
    for protocol in PROTOCOLS:
        for c, base in enumerate(clouds):
            cloud = transformed(base, protocol, seed=c)
            key = f"{protocol}|{cloud.name}|{cloud.group}"
            for k in args.ks:
                results.get(f"acc|PCA k={k}|{key}", lambda k=k, c=cloud: _score(None, c, k=k))
            for label, model in models.items():
                if protocol == "aligned" and label.endswith(")"):  # curve runs: o3 only
                    continue
                results.get(f"acc|{label}|{key}", lambda m=model, c=cloud: _score(m, c))
            print(f"  accuracy {protocol} {c + 1}/{len(clouds)}", flush=True)


def _score(model, cloud: Cloud, **options: Any) -> dict[str, float]:
    start = time.perf_counter()
    normals = estimate(model, cloud.points, **options)
    return scores(normals, cloud.normals, time.perf_counter() - start)


def exactness(args, results: Results, clouds: list[Cloud], models: dict[str, Any]) -> None:
    """Mean and max of ∠(n(Qx + t), Q n(x)) per model and precision, over ``clouds``."""
    for label, model in models.items():
        if label.endswith(")"):
            continue
        for precision in ("float32", "mixed", "float64"):
            net = model.double() if precision == "float64" else model.float()

            def gaps(net=net, precision=precision) -> dict[str, float]:
                # bench_equivariance's measure: odd seeds reflect, points permuted
                values = [
                    gap_degrees(c.points, net, precision, 100 + i) for i, c in enumerate(clouds)
                ]
                gap = np.concatenate(values)
                return {"mean": float(gap.mean()), "max": float(gap.max())}

            results.get(f"exact|{label}|{precision}", gaps)
        model.float()
        print(f"  exactness {label}", flush=True)


def cost(args, results: Results, models: dict[str, Any]) -> None:
    """Training step and memory (bench_model.py), prediction time vs points vs PCA k=30."""
    results.get("cost|train", lambda: _bench_model())
    tf, base = models["TF learned, tensor"], models["identity, no aug"]
    for n in args.sizes:

        def timing(n=n) -> dict[str, float]:
            from bench_accuracy import _synthetic

            points, _ = _synthetic([0, 2, 2000], n)
            out = {}
            for label, model, options in (
                ("PCA k=30", None, {"k": 30}),
                ("TF learned, tensor", tf, {}),
                ("identity", base, {}),
            ):
                start = time.perf_counter()
                estimate(model, points, **options)
                out[label] = time.perf_counter() - start
            return out

        results.get(f"time|{n}", timing)
        print(f"  time {n:,} points", flush=True)


def _bench_model() -> str:
    script = REPO / "scripts" / "bench_model.py"
    cmd = [sys.executable, str(script), "--repeats", "3"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


# ------------------------------------------------------------------------------ report
def _mean(results: Results, label: str, protocol: str, clouds, group=None) -> float:
    keys = [f"acc|{label}|{protocol}|{c.name}|{c.group}" for c in clouds]
    values = [results.data[k]["rmse"] for k, c in zip(keys, clouds, strict=True)]
    values = [v for v, c in zip(values, clouds, strict=True) if group in (None, c.group)]
    return float(np.mean(values))


def _oracle(results: Results, args, protocol: str, clouds, group=None) -> float:
    best = []
    for c in clouds:
        if group in (None, c.group):
            key = f"{protocol}|{c.name}|{c.group}"
            best.append(min(results.data[f"acc|PCA k={k}|{key}"]["rmse"] for k in args.ks))
    return float(np.mean(best))


def plots(args, results: Results, clouds, labels: list[str], out: Path) -> list[str]:
    """The PNG plots beside the report; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in GROUPS if any(c.group == g for c in clouds)]
    levels = [100 * NOISE[g] for g in groups]
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, protocol in zip(axes, PROTOCOLS, strict=True):
        for label in [*labels, "PCA k=30"]:
            ax.plot(levels, [_mean(results, label, protocol, clouds, g) for g in groups],
                    marker="o", label=label)  # fmt: skip
        oracle = [_oracle(results, args, protocol, clouds, g) for g in groups]
        ax.plot(levels, oracle, "k--", label="PCA, best k per cloud")
        ax.set(title=f"{protocol} clouds", xlabel="noise, % of the diagonal")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("RMSE of the unoriented angle, °")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "error_vs_noise.png", dpi=110)
    names.append("error_vs_noise.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in CURVE_MODELS:
        sizes = sorted([*args.curve, TRAIN_SHAPES])
        errors = [_mean(results, _label(name, n), "o3", clouds) for n in sizes]
        ax.plot(sizes, errors, marker="o", label=name)
    ax.set(xscale="log", xlabel="training shapes", ylabel="RMSE on o3 clouds, °")
    ax.set_title("learning curve (same steps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    names.append("learning_curve.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    times = {n: results.data[f"time|{n}"] for n in args.sizes}
    for label in next(iter(times.values())):
        ax.plot(args.sizes, [times[n][label] for n in args.sizes], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="points", ylabel="seconds (2 cores)")
    ax.set_title("prediction time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "time_vs_points.png", dpi=110)
    names.append("time_vs_points.png")
    plt.close("all")
    return names


def _label(name: str, shapes: int) -> str:
    """Result label of a run: the model name, with the data size for curve runs."""
    return name if shapes == TRAIN_SHAPES else f"{name} ({shapes} shapes)"


def claims(args, results: Results, clouds: list[Cloud]) -> list[str]:
    """The paper's claims as table rows: the numbers that decide them, and the verdict."""

    def o3(label: str) -> float:
        return _mean(results, label, "o3", clouds)

    def gap(label: str, precision: str) -> dict[str, float]:
        return results.data[f"exact|{label}|{precision}"]

    tf, scalar = o3("TF learned, tensor"), o3("TF learned, scalar")
    pca, refined = o3("TF PCA, tensor"), o3("TF learned + refinement")
    aug, plain = o3("identity + O(3) aug"), o3("identity, no aug")
    exact, baseline = gap("TF learned, tensor", "mixed"), gap("identity, no aug", "mixed")
    small = min(args.curve)
    tf_small = _mean(results, _label("TF learned, tensor", small), "o3", clouds)
    aug_small = _mean(results, _label("identity + O(3) aug", small), "o3", clouds)
    best = min(tf, pca)
    beats_aug, beats_plain = best <= aug, aug < plain
    rows = [
        ("(a) exact O(3) equivariance (default precision, mean / max gap)",
         f"TF {exact['mean']:.1e}° / {exact['max']:.1e}°; identity "
         f"{baseline['mean']:.1f}° / {baseline['max']:.0f}°",
         "yes" if exact["max"] < 1.0 < baseline["max"] else "**no**"),
        ("(b) tensorial beats scalar messages (equal parameters)",
         f"{tf:.2f}° vs {scalar:.2f}°", "yes" if tf < scalar else "**no**"),
        ("(c) equivariant on rotated data ≥ O(3)-augmented ≫ unaugmented",
         f"TF learned {tf:.2f}°, TF PCA {pca:.2f}° vs augmented {aug:.2f}° vs "
         f"unaugmented {plain:.2f}°",
         "yes" if beats_aug and beats_plain else ("first half" if beats_aug else "**no**")),
        ("(d) frame refinement helps", f"{refined:.2f}° vs {tf:.2f}° without",
         "yes" if refined < tf else "**no**"),
        (f"(e) equivariance is more data-efficient ({small} training shapes)",
         f"{tf_small:.2f}° vs {aug_small:.2f}° augmented",
         "yes" if tf_small < aug_small else "**no**"),
    ]  # fmt: skip
    lines = [_row(["claim", "measured (mean RMSE on o3 clouds unless stated)", "holds here"])]
    lines.append(_row(["---"] * 3))
    lines += [_row(list(row)) for row in rows]
    return lines


def report(args, results: Results, clouds: list[Cloud], start: float) -> str:
    """The markdown of docs/benchmarks.md (tables, plots, machine, budgets)."""
    labels = list(MODELS)
    groups = [g for g in GROUPS if any(c.group == g for c in clouds)]
    lines = ["# Benchmarks: the paper's claims on equal budgets\n"]
    lines.append(
        f"Command: `python scripts/benchmark.py {' '.join(sys.argv[1:])}`. "
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}, "
        f"python {platform.python_version()}. Date: {datetime.date.today()}. "
        f"This evaluation took {(time.perf_counter() - start) / 60:.0f} min (scores cached in "
        "`outputs/<task>/results.json` by earlier invocations are reused).\n"
    )
    seconds = {
        _label(n, s): json.loads((run_dir(args, n, s) / "done").read_text())["seconds"]
        for n, s in runs(args)
        if given(args, n, s) is None
    }
    lines.append(
        f"**Budget.** Every model: {args.steps} AdamW steps of {BATCH} clouds × 1024 points "
        f"(cosine schedule, seed 12345) on `data=synthetic` ({TRAIN_SHAPES} procedural "
        "shapes with noise 0–1.2 %, whole shapes and local patches), same widths "
        "(`reps` dims 92/184/368). Learning curve: the same steps on "
        f"{', '.join(map(str, args.curve))} shapes. Training wall time per run (2 cores "
        "shared with other work, so only roughly comparable; the small-data runs pay a "
        "loader start per epoch): "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
        + ".\n"
    )
    if args.given:  # not trained here: their budget is whatever trained them
        lines.append(
            "**Given checkpoints** (`--checkpoint`, not trained by this script, so not on "
            "the equal budget above): "
            + ", ".join(f"{name}: `{path}`" for name, path in args.given.items())
            + ".\n"
        )
    lines.append(
        f"**Clouds.** {len(clouds)} held-out clouds of `scripts/bench_accuracy.py` at "
        f"{args.points[0]:,} points ({', '.join(groups)}), scored through `api.estimate` "
        "(the code path of `predict.py`, defaults: scale auto, overlap 1.5, mixed "
        "precision; without the plane fit that `predict.py` adds after the network, "
        "`refine=False`, so the networks themselves are compared). `o3`: each cloud "
        "under a Haar-random orthogonal matrix (half are reflections) and a translation. "
        "RMSE of the unoriented angle, degrees.\n"
    )
    lines += ["\n## The claims\n", *claims(args, results, clouds)]
    lines += ["\n## Accuracy (mean RMSE °, lower is better)\n"]
    head = ["model", *[f"{g} {p}" for g in groups for p in PROTOCOLS], "all o3"]
    lines += [_row(head), _row(["---"] * len(head))]
    for label in [*labels, "PCA k=30"]:
        cells = [f"{_mean(results, label, p, clouds, g):.2f}" for g in groups for p in PROTOCOLS]
        lines.append(_row([label, *cells, f"{_mean(results, label, 'o3', clouds):.2f}"]))
    cells = [f"{_oracle(results, args, p, clouds, g):.2f}" for g in groups for p in PROTOCOLS]
    oracle = f"{_oracle(results, args, 'o3', clouds):.2f}"
    lines.append(_row(["PCA, best k per cloud", *cells, oracle]))

    lines += ["\n## Exactness: ∠(n(Qx+t), Q n(x)) over the clouds, degrees\n"]
    precisions = ("float32", "mixed", "float64")
    head = ["model", *[f"{p} {s}" for p in precisions for s in ("mean", "max")]]
    lines += [_row(head), _row(["---"] * len(head))]
    for label in labels:
        cells = []
        for precision in ("float32", "mixed", "float64"):
            gap = results.data[f"exact|{label}|{precision}"]
            cells += [f"{gap['mean']:.2g}", f"{gap['max']:.2g}"]
        lines.append(_row([label, *cells]))

    lines += ["\n## Learning curve (mean RMSE ° on o3 clouds, same steps)\n"]
    sizes = sorted([*args.curve, TRAIN_SHAPES])
    lines += [_row(["model", *[f"{n} shapes" for n in sizes]]), _row(["---"] * (len(sizes) + 1))]
    for name in CURVE_MODELS:
        cells = [f"{_mean(results, _label(name, n), 'o3', clouds):.2f}" for n in sizes]
        lines.append(_row([name, *cells]))

    lines += ["\n## Cost\n", "Training step (`scripts/bench_model.py --repeats 3`):\n"]
    lines += ["```", results.data["cost|train"].strip(), "```\n"]
    lines += ["Prediction time (`api.estimate`, `refine=False`) against Open3D PCA k=30:\n"]
    head = ["points", "PCA k=30 s", "TF s", "TF ÷ PCA", "identity s", "identity ÷ PCA"]
    lines += [_row(head), _row(["---"] * len(head))]
    for n in args.sizes:
        t = results.data[f"time|{n}"]
        pca, tf, base = t["PCA k=30"], t["TF learned, tensor"], t["identity"]
        lines.append(_row([f"{n:,}", f"{pca:.2f}", f"{tf:.2f}", f"{tf / pca:.1f}×",
                           f"{base:.2f}", f"{base / pca:.1f}×"]))  # fmt: skip
    return "\n".join(lines) + "\n"


def evaluate(args: argparse.Namespace, finished_only: bool = False) -> None:
    """Score every run and PCA, then (unless ``finished_only``) time them, write the
    report and its plots. ``finished_only``: score the runs that are done so far (e.g.
    while the others train); timings wait for an idle machine."""
    start = time.perf_counter()
    results = Results(args.results)
    with tempfile.TemporaryDirectory() as cache:
        clouds = make_clouds(args, cache)
    done = [(n, s) for n, s in runs(args) if is_done(args, n, s)]
    if not finished_only and len(done) < len(runs(args)):
        sys.exit("benchmark: some runs are not trained yet (--stages train first)")
    models = {_label(n, s): load_run(args, n, s) for n, s in done}
    for model in models.values():  # warm-up, untimed
        estimate(model, np.random.default_rng(0).normal(size=(2048, 3)))
    print(f"evaluating {len(models)} models on {len(clouds)} clouds", flush=True)
    accuracy(args, results, clouds, models)
    exact_clouds = [c for c in clouds if c.group in ("clean", "noise 0.6%")][:2]
    exactness(args, results, exact_clouds, models)
    if finished_only:
        return
    cost(args, results, models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = plots(args, results, clouds, list(MODELS), args.out.parent)
    text = report(args, results, clouds, start)
    text += "\n## Plots\n\n" + "\n".join(f"![{f[:-4]}]({f})" for f in figures) + "\n"
    args.out.write_text(text)
    print(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stages", default="train,evaluate",
                   help="train, scores (of the runs done so far), evaluate (all, then the "
                   "timings and the report); comma-separated")  # fmt: skip
    p.add_argument("--steps", type=int, default=480, help="optimisation steps of every run")
    p.add_argument("--curve", type=lambda s: [int(x) for x in s.split(",")], default=[48, 128],
                   help="training-set sizes of the learning curve (besides 384)")  # fmt: skip
    p.add_argument("--points", type=int, default=20_000, help="points per evaluation cloud")
    p.add_argument("--limit", type=int, default=2, help="clouds per source and group")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                   default=[10_000, 100_000, 1_000_000], help="points of the timing")  # fmt: skip
    p.add_argument("--task", default="benchmark", help="runs go to logs/<task>/runs/")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                   help="evaluate this checkpoint as MODEL (one of MODELS) instead of "
                   "training it, e.g. one trained longer on a GPU; repeatable (use a "
                   "--task of its own: cached scores are keyed by model)")  # fmt: skip
    args = p.parse_args(argv)
    args.given = {}
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or name not in MODELS or not Path(path).is_file():
            p.error(f"--checkpoint {item!r}: expected MODEL=PATH, MODEL one of {list(MODELS)}")
        args.given[name] = Path(path)
    args.results = REPO / "outputs" / args.task / "results.json"
    # what bench_accuracy.make_clouds reads
    args.points = [args.points]
    args.sources, args.synthetic = ["synthetic", "meshes"], args.limit
    args.groups, args.ks = list(GROUPS), (10, 20, 30, 50, 100, 200, 400)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stages = args.stages.split(",")
    if "train" in stages:
        train(args)
    if "scores" in stages:
        evaluate(args, finished_only=True)
    if "evaluate" in stages:
        evaluate(args)


if __name__ == "__main__":
    main()
