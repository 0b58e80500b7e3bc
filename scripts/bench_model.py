"""Training-step time and peak memory: TF-PointNet++ vs identity-frame PointNet++.

Both models come from ``conf/model/tf_pointnet.yaml`` with the same widths (``reps``);
one uses learned frames, the other identity frames (plain PointNet++). They run
interleaved on the same batch (default 8 clouds x 2048 points); we print median step
times, their ratio, peak memory (each variant in a fresh process) and parameter counts.

    python scripts/bench_model.py [--batch 8] [--points 2048] [--reps tensor] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def build(frames: str, reps: str, device: torch.device) -> torch.nn.Module:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("check_equivariance", overrides=[f"frames={frames}", f"reps={reps}"])
    return instantiate(cfg.model, _convert_="all").to(device).train()


def step(model, optimizer, pos, batch, target) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = (1 - (model(pos, batch) * target).sum(-1).abs()).mean()
    loss.backward()
    optimizer.step()


def inputs(args: argparse.Namespace, device: torch.device):
    torch.manual_seed(0)
    n = args.batch * args.points
    pos = torch.randn(n, 3, device=device)
    batch = torch.arange(args.batch, device=device).repeat_interleave(args.points)
    target = torch.nn.functional.normalize(torch.randn(n, 3, device=device), dim=-1)
    return pos, batch, target


def peak_memory_mb(frames: str, args: argparse.Namespace) -> float:
    """Peak memory of two training steps of one variant, in a fresh process."""
    cmd = [
        sys.executable,
        __file__,
        "--only",
        frames,
        "--batch",
        str(args.batch),
        "--points",
        str(args.points),
        "--reps",
        args.reps,
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def only(frames: str, args: argparse.Namespace, device: torch.device) -> None:
    """CUDA: allocator peak. CPU: peak resident set size sampled every millisecond,
    minus the resident size before the steps."""
    import psutil  # a dependency of lightning

    pos, batch, target = inputs(args, device)
    model = build(frames, args.reps, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        for _ in range(2):
            step(model, optimizer, pos, batch, target)
        print((torch.cuda.max_memory_allocated(device) - base) / 2**20)
        return
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(2):
        step(model, optimizer, pos, batch, target)
    done.set()
    sampler.join()
    print((peak[0] - base) / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--reps", default="tensor", help="conf/reps group: scalar|tensor|irreps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: memory of one variant
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.only:
        only(args.only, args, device)
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pos, batch, target = inputs(args, device)
    models = {k: build(k, args.reps, device) for k in ("identity", "learned")}
    optims = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for k, model in models.items():  # warm-up
        step(model, optims[k], pos, batch, target)
    for _ in range(args.repeats):  # interleaved, so drifts hit both alike
        for k, model in models.items():
            sync()
            start = time.perf_counter()
            step(model, optims[k], pos, batch, target)
            sync()
            times[k].append((time.perf_counter() - start) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    peaks = {k: peak_memory_mb(k, args) for k in models}
    print(
        f"device={device} threads={torch.get_num_threads()} "
        f"batch={args.batch}x{args.points} reps={args.reps}"
    )
    for k in models:
        print(f"{k:9s} step {med[k]:9.1f} ms  peak {peaks[k]:8.1f} MB  params {params[k]:,}")
    print(f"time ratio learned/identity = {med['learned'] / med['identity']:.3f}")
    print(f"memory ratio learned/identity = {peaks['learned'] / max(peaks['identity'], 1e-9):.3f}")
    print(f"parameter difference = {100 * (params['learned'] / params['identity'] - 1):.2f} %")


if __name__ == "__main__":
    main()
