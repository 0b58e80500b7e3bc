"""Check that a model variant is O(3)-equivariant, end to end.

    python scripts/check_equivariance.py model=tf_pointnet frames=learned reps=tensor
    python scripts/check_equivariance.py frames=identity            # must fail (exit 1)
    python scripts/check_equivariance.py +checkpoint=PATH +input=scan.ply dtype=float32

Draws random O(3) elements (every other one a reflection), translations and a node
permutation, runs the model on a random cloud (or ``+input=``) and its transformed copy,
and prints per-trial errors; the last line is ``max_angle_deg=<float>``: the largest
oriented angle between n(g·x) and Q n(x). Exit status 0 when below the dtype's
tolerance (float64 1e-6 deg, float32 1e-2 deg), 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from pointnormals.testing import TOLERANCES, equivariance_errors

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _random_cloud(n: int, generator: torch.Generator) -> torch.Tensor:
    """A bumpy closed surface with some interior detail: generic, no symmetries."""
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    bumps = 1 + 0.2 * torch.sin(3 * direction[:, :1]) * torch.cos(2 * direction[:, 1:2])
    return direction * bumps * torch.tensor([1.0, 0.7, 0.5])


def _load_input(path: str, n: int, generator: torch.Generator) -> torch.Tensor:
    from pointnormals import o3d  # Open3D only when a file is given

    points, _ = o3d.read_point_cloud(Path(path))
    pos = torch.as_tensor(points, dtype=torch.float64)
    if len(pos) > n:
        pos = pos[torch.randperm(len(pos), generator=generator)[:n]]
    # centre in float64 before any float32 cast: far-away scans lose precision otherwise
    return pos - pos.mean(0)


def _model(cfg: DictConfig) -> torch.nn.Module:
    if cfg.get("checkpoint"):
        from pointnormals.nn.checkpoint import load_model

        return load_model(cfg.checkpoint)
    return instantiate(cfg.model, _convert_="all")


@hydra.main(config_path=CONF, config_name="check_equivariance", version_base="1.3")
def main(cfg: DictConfig) -> None:
    dtype = {"float64": torch.float64, "float32": torch.float32}.get(cfg.dtype)
    if dtype is None:
        sys.exit(f"error: dtype must be float64 or float32, got {cfg.dtype!r}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    try:
        model = _model(cfg).eval()
        if cfg.get("input"):
            pos = _load_input(cfg.input, cfg.num_points, gen)
        else:
            pos = _random_cloud(cfg.num_points, gen)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    trials = equivariance_errors(
        model,
        [pos],
        ["pos"],
        "normal",
        trials=cfg.trials,
        dtypes=[dtype],
        translate=cfg.translate,
        seed=cfg.seed,
    )
    frames = model.config["frames"] if hasattr(model, "config") else "?"
    print(f"model={type(model).__name__} frames={frames} points={len(pos)} dtype={cfg.dtype}")
    for i, trial in enumerate(trials):
        print(f"trial {i}: {trial}")
    worst = max(t.error for t in trials)
    tolerance = TOLERANCES[dtype]["angle"]
    print(f"tolerance_deg={tolerance:g} -> {'PASS' if worst <= tolerance else 'FAIL'}")
    print(f"max_angle_deg={worst:.6g}")
    sys.exit(0 if worst <= tolerance else 1)


if __name__ == "__main__":
    main()
