"""Forward+backward time of one tensorial message-passing layer: learned vs identity frames.

Both variants run the same ``TensorialPointConv`` (reps ``16x0n+8x1n+4x2n`` in and out,
MLP widths 64-64) on the same kNN graph, interleaved, and we report medians and their
ratio. The layer's inputs are frames and features already in those frames: the learned
frames are built once per graph (as in the model, where all layers share them; their
construction time is reported separately) and the input features are moved into them
once (``ToLocal``), outside the timed step.

    python scripts/bench_layers.py [--points 5000] [--k 10] [--repeats 20] [--radius R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pointnormals import graph
from pointnormals.frames import Frames, IdentityFrames, LearnedFrames
from pointnormals.nn import TensorialPointConv, ToLocal


def _time(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reps", default="16x0n+8x1n+4x2n")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--radius", type=float, default=None, help="a ball graph instead of kNN")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)

    pos = torch.rand(args.points, 3, device=device)
    if args.radius is None:  # k edges per receiver: one matrix moves them all
        nbhd = graph.Neighbourhood.knn(pos, pos, args.k)
    else:  # any number of edges: per-edge receiver frames
        nbhd = graph.Neighbourhood.radius(pos, pos, args.radius, max_num_neighbors=args.k)
    conv = TensorialPointConv(args.reps, args.reps, [64, 64]).to(device)
    x_global = torch.randn(args.points, conv.reps_in.dim, device=device)
    to_local = ToLocal(conv.reps_in)
    learned = LearnedFrames(k=16).to(device)

    def step(variant: tuple[Frames, torch.Tensor]) -> None:
        frames, x_local = variant
        frames = Frames(frames.matrices, frames.det, frames.is_identity)  # empty edge cache
        x = x_local.detach().requires_grad_(True)
        out = conv(x, pos, nbhd, frames)
        out.square().mean().backward()

    with torch.no_grad():  # the layer's inputs: frames and features in those frames
        variants = {
            name: (frames, to_local(x_global, frames))
            for name, frames in (("identity", IdentityFrames()(pos)), ("learned", learned(pos)))
        }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):  # warm-up
        for variant in variants.values():
            step(variant)
    for _ in range(args.repeats):
        for name, variant in variants.items():
            times[name].append(_time(lambda v=variant: step(v), sync))
    frame_ms = statistics.median(
        _time(lambda: learned(pos), sync) for _ in range(max(3, args.repeats // 4))
    )
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"device={device} threads={torch.get_num_threads()} points={args.points} "
        f"edges={nbhd.edge_index.size(1)} reps={args.reps} "
        f"graph={'knn' if args.radius is None else f'radius {args.radius}'}"
    )
    for name, value in med.items():
        print(f"{name:9s} forward+backward {value:8.2f} ms (median of {args.repeats})")
    print(f"learned-frame construction (once per graph, shared by all layers) {frame_ms:.2f} ms")
    print(f"ratio learned/identity = {med['learned'] / med['identity']:.3f}")


if __name__ == "__main__":
    main()
