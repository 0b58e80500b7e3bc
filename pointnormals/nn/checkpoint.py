"""Checkpoint → model and back, with torch alone (no Lightning, no Hydra).

Two formats load with ``torch.load(path, weights_only=True)``:

* a Lightning checkpoint written by ``train.py``: ``hyper_parameters["model_config"]``
  (the model's :attr:`~pointnormals.nn.TFPointNet.config`: stages with their reps
  strings, frames spec, normalisation, ...) and ``state_dict`` with ``model.`` prefixes,
  plus the optimiser, scheduler and loop states used to resume;
* a slim export from :func:`save_model`: ``model_config`` and ``state_dict`` only.

Format history (:data:`FORMAT_VERSION`; Lightning checkpoints carry none, their
``model_config`` is read the same way): 1 named frames by a registry key,
``{"kind": "pca", ...}``; 2 by class, ``{"_target_": "pointnormals.frames.PCAFrames",
...}``. Older configs are migrated on load (:func:`migrate_config`).
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import torch

from ..frames import target_of
from .tf_pointnet import TFPointNet

__all__ = ["FORMAT_VERSION", "load_model", "migrate_config", "model_config_of", "save_model"]

FORMAT_VERSION = 2
"""Version of the slim format written by :func:`save_model`."""

_PREFIX = "model."


def migrate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A model config of any format version, in the current one (a new dict).

    >>> migrate_config({"frames": {"kind": "pca", "k": 8}})["frames"]
    {'_target_': 'pointnormals.frames.PCAFrames', 'k': 8}
    """
    config = dict(config)
    frames = config.get("frames")
    if isinstance(frames, dict) and "kind" in frames:  # format 1
        frames = dict(frames)
        config["frames"] = {"_target_": target_of(frames.pop("kind")), **frames}
    return config


def model_config_of(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The ``TFPointNet(**config)`` arguments stored in a loaded checkpoint dict
    (migrated to the current format)."""
    if "model_config" in checkpoint:
        return migrate_config(checkpoint["model_config"])
    hparams = checkpoint.get("hyper_parameters", {})
    if "model_config" not in hparams:
        raise KeyError("checkpoint has no model_config (neither a train.py nor a save_model file)")
    return migrate_config(hparams["model_config"])


def _model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = checkpoint["state_dict"]
    if "model_config" in checkpoint:  # slim export: keys are the model's own
        return state
    return {k.removeprefix(_PREFIX): v for k, v in state.items() if k.startswith(_PREFIX)}


def load_model(path: str | PathLike, map_location: str | torch.device = "cpu") -> TFPointNet:
    """Rebuild the trained :class:`~pointnormals.nn.TFPointNet` from ``path`` (eval mode).

    Args:
        path: a ``train.py`` checkpoint (``last.ckpt``, best) or a :func:`save_model` file.
        map_location: device of the loaded tensors.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model = TFPointNet(**model_config_of(checkpoint))
    model.load_state_dict(_model_state(checkpoint))
    return model.to(map_location).eval()


def save_model(model: TFPointNet, path: str | PathLike, **extra: Any) -> None:
    """Write a slim checkpoint (config + weights, no optimiser) that :func:`load_model` reads.

    ``extra`` entries (plain python values: strings, numbers, lists, dicts) are stored
    beside, e.g. the training recipe or metrics.
    """
    torch.save(
        {
            "format_version": FORMAT_VERSION,
            "model_config": model.config,
            "state_dict": model.state_dict(),
            **extra,
        },
        path,
    )
