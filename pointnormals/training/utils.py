"""Small helpers of ``train.py``: instantiation, the wandb offline fallback, resuming,
and the end-of-run report."""

from __future__ import annotations

import logging
import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "ensure_wandb_mode",
    "instantiate_callbacks",
    "instantiate_loggers",
    "log_hyperparameters",
    "report",
    "resolve_ckpt_path",
    "wandb_has_credentials",
]

log = logging.getLogger(__name__)


def _wandb_host() -> tuple[str, int]:
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def wandb_has_credentials() -> bool:
    """Whether wandb can log in: ``WANDB_API_KEY`` or a ``~/.netrc`` entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators(_wandb_host()[0]) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _wandb_reachable(timeout: float) -> bool:
    try:
        with socket.create_connection(_wandb_host(), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_wandb_mode(timeout: float = 3.0) -> str:
    """Set ``WANDB_MODE=offline`` unless wandb can really go online; returns the mode.

    An explicit ``WANDB_MODE`` is kept. Otherwise, with no API key / netrc entry, or when
    the wandb host does not answer within ``timeout`` seconds, the run is logged offline
    (``wandb sync <dir>`` uploads it later) instead of failing or waiting for the network.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if not wandb_has_credentials():
        reason = "no WANDB_API_KEY and no ~/.netrc entry"
    elif not _wandb_reachable(timeout):
        reason = f"{_wandb_host()[0]} unreachable"
    else:
        return "online"
    log.warning(f"wandb: {reason}; logging offline (upload later with `wandb sync`)")
    os.environ["WANDB_MODE"] = "offline"
    return "offline"


def _targets(cfg: DictConfig | None) -> list[DictConfig]:
    """The ``_target_`` entries of a group like ``callbacks`` or ``logger`` (nulls skipped)."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError("callbacks / logger config must be a mapping of name -> {_target_: ...}")
    return [c for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def instantiate_callbacks(cfg: DictConfig | None) -> list[L.Callback]:
    """One callback per ``_target_`` entry of ``cfg.callbacks``."""
    return [hydra.utils.instantiate(c, _convert_="all") for c in _targets(cfg)]


def instantiate_loggers(cfg: DictConfig | None) -> list[Any]:
    """One logger per ``_target_`` entry of ``cfg.logger`` (wandb falls back to offline)."""
    loggers = []
    for c in _targets(cfg):
        if "wandb" in str(c._target_).lower():
            ensure_wandb_mode()
        loggers.append(hydra.utils.instantiate(c, _convert_="all"))
    return loggers


@rank_zero_only
def log_hyperparameters(cfg: DictConfig, module: L.LightningModule, trainer: L.Trainer) -> None:
    """Send the resolved run config and parameter counts to every logger."""
    if not trainer.loggers:
        return
    params = module.parameters()
    hparams = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if key in cfg else None
        for key in ("data", "model", "module", "trainer", "callbacks", "frames")
    }
    hparams.update(
        seed=cfg.get("seed"),
        task_name=cfg.get("task_name"),
        run_name=cfg.get("run_name"),
        tags=OmegaConf.to_container(cfg.tags, resolve=True) if cfg.get("tags") else None,
        ckpt_path=cfg.get("ckpt_path"),
        num_parameters=sum(p.numel() for p in params),
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str) -> str | None:
    """``last`` → ``<output_dir>/checkpoints/last.ckpt`` (``None`` with a warning when
    absent, so ``ckpt_path=last`` is safe on the first run of a requeued job); any other
    value must be an existing file."""
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        last = Path(output_dir) / "checkpoints" / "last.ckpt"
        if last.is_file():
            return str(last)
        log.warning(
            f"ckpt_path=last: no {last}, training from scratch. To resume an earlier run, "
            "pass its run_name=<name> (or hydra.run.dir=<its directory>)."
        )
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint")
    return str(path)


@rank_zero_only
def report(trainer: L.Trainer, output_dir: str, metrics: dict[str, Any]) -> None:
    """Log where the checkpoints and metrics went, and the headline metrics."""
    lines = [f"Run directory: {output_dir}"]
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if best:
        lines.append(f"Best checkpoint: {best}")
    if last.is_file():
        lines.append(f"Last checkpoint: {last}  (resume: ckpt_path=last with the same run_name)")
    for logger in trainer.loggers:
        name = type(logger).__name__
        where = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if name == "CSVLogger":
            where = Path(logger.log_dir) / "metrics.csv"
        elif name == "WandbLogger":
            where = getattr(logger.experiment, "dir", where)
        lines.append(f"Metrics ({name}): {where}")
    keys = sorted(k for k in metrics if k.endswith("/angle") or k.endswith("/rmse"))
    lines += [f"  {k} = {float(metrics[k]):.3f}" for k in keys]
    log.info("\n".join(lines))
