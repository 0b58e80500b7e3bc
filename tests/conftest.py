"""Shared fixtures and helpers: every test starts from the same seed and restores global
state; the small models, the README's examples and the Hydra config live here once."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from pointnormals.nn import TFPointNet

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
MODELNET_MINI = REPO.parent / "shared" / "data" / "modelnet40_mini"

#: Two stages, a few channels: the untrained model of the pipeline tests (API, inference).
STAGES = [
    dict(reps="4x0n+2x1n", ratio=1.0, k=8, hidden=(16,), up_hidden=(16,)),
    dict(reps="8x0n+4x1n", ratio=0.25, k=16, radius=0.3, hidden=(16,)),
]

#: The model variants of the model tests: reps (kind, levels) and frames (spec, update).
REPS = {
    "scalar": ("tensor", ["24x0n", "48x0n"]),
    "tensor": ("tensor", ["8x0n+2x1n+1x2n", "16x0n+4x1n+2x2n"]),
    "irreps": ("irreps", ["8x0n+2x1n+1x2n+4x0n", "16x0n+4x1n+2x2n+8x0n"]),
}
FRAMES = {
    "identity": ("identity", False),
    "pca": ({"_target_": "pointnormals.frames.PCAFrames", "k": 12}, False),
    "learned": ({"_target_": "pointnormals.frames.LearnedFrames", "k": 12}, False),
    "learned_update": ({"_target_": "pointnormals.frames.LearnedFrames", "k": 12}, True),
}


def small_model(frames: str = "learned", seed: int = 0) -> TFPointNet:
    """The :data:`STAGES` model with ``frames``, seeded weights, in eval mode."""
    torch.manual_seed(seed)
    return TFPointNet(STAGES, frames=frames).eval()


def variant_model(frames: str, reps: str, seed: int = 0) -> TFPointNet:
    """A small model of one :data:`FRAMES` x :data:`REPS` variant, in eval mode."""
    torch.manual_seed(seed)
    kind, levels = REPS[reps]
    spec, update = FRAMES[frames]
    stages = [
        {"reps": levels[0], "k": 12, "hidden": [32], "up_hidden": [32]},
        {"reps": levels[1], "ratio": 0.25, "k": 16, "radius": 0.5, "hidden": [32]},
    ]
    return TFPointNet(stages, frames=spec, reps_kind=kind, frame_update=update).eval()


def two_clouds() -> tuple[torch.Tensor, torch.Tensor]:
    """Two clouds of different sizes and poses, PyG batch layout."""
    a = torch.nn.functional.normalize(torch.randn(160, 3), dim=-1) * torch.tensor([1.0, 0.6, 0.3])
    b = torch.rand(96, 3) * 2 - 1  # float32 tests need clouds near the origin (see README)
    batch = torch.cat([torch.zeros(160, dtype=torch.long), torch.ones(96, dtype=torch.long)])
    return torch.cat([a, b]), batch


def readme_example(name: str) -> str:
    """The code of the README's ``<!-- example: NAME -->`` block."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README example {name!r} not found"
    return match.group(1)


@pytest.fixture(autouse=True)
def _restore_global_state():
    dtype = torch.get_default_dtype()
    rng_state = torch.get_rng_state()
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002  (legacy global RNG, for code that still uses it)
    random.seed(0)
    yield
    torch.set_default_dtype(dtype)
    torch.set_rng_state(rng_state)


@pytest.fixture
def modelnet_mini() -> Path:
    """The development subset of ModelNet40 beside the repo (skips when absent)."""
    if not MODELNET_MINI.is_dir():
        pytest.skip(f"{MODELNET_MINI} not present")
    return MODELNET_MINI


@pytest.fixture
def compose_train(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``compose_train(*overrides, data_dir=None, hydra=False)`` → train.py's config.

    Outputs and logs go to ``tmp_path`` (data to ``data_dir``, else ``tmp_path/data``);
    ``hydra=True`` adds the ``hydra`` node and sets it as the current Hydra config, as
    ``@hydra.main`` does (restored afterwards).
    """
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg

    def _compose(*overrides: str, data_dir: Path | None = None, hydra: bool = False):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=hydra)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.data_dir = str(data_dir or tmp_path / "data")
        if hydra:
            hydra_config.set_config(cfg)
        return cfg

    yield _compose
    hydra_config.cfg = saved


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a CUDA GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
