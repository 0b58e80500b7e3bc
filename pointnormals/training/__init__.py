"""Training: the LightningModule, losses and metrics.

:func:`load_model` and :func:`save_model` live with the model
(:mod:`pointnormals.nn.checkpoint`, torch only) and are re-exported here; the
LightningModule imports Lightning when it is first asked for.

>>> from pointnormals.training import load_model  # doctest: +SKIP
>>> model = load_model("logs/train/runs/NAME/checkpoints/last.ckpt")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from pointnormals.nn.checkpoint import load_model, save_model
from pointnormals.training.losses import LOSSES, get_loss
from pointnormals.training.metrics import METRICS, cloud_errors, normal_errors

__all__ = [
    "LOSSES",
    "METRICS",
    "NormalEstimationModule",
    "cloud_errors",
    "get_loss",
    "load_model",
    "normal_errors",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name == "NormalEstimationModule":  # imports Lightning: only when asked for
        from pointnormals.training.module import NormalEstimationModule

        return NormalEstimationModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
