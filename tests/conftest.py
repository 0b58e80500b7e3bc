"""Shared fixtures: every test starts from the same seed and restores global state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODELNET_MINI = REPO.parent / "shared" / "data" / "modelnet40_mini"


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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a CUDA GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
