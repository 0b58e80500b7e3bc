"""Train a normal estimator: compose the Hydra config, instantiate, fit, test.

    python train.py model=tf_pointnet                     # CPU, synthetic data, CSV logs
    python train.py experiment=smoke                      # about a minute
    python train.py -m frames=identity,pca,learned reps=scalar,tensor
    python train.py run_name=NAME ckpt_path=last          # resume logs/train/runs/NAME
    python train.py trainer=ddp trainer.devices=4         # DDP on 4 GPUs

Every run writes to ``logs/<task_name>/runs/<run_name>/`` (``run_name`` defaults to the
start time): ``checkpoints/{best,last}.ckpt``, ``csv/version_*/metrics.csv``, the
composed config in ``.hydra/`` and ``<task_name>.log``.
"""

from __future__ import annotations

import hydra
import lightning as L
from omegaconf import DictConfig

from pointnormals.training import utils


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test as configured; returns the final metrics (``val/...``, ``test/...``)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = cfg.paths.output_dir
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module: L.LightningModule = hydra.utils.instantiate(cfg.module, _convert_="all")
    callbacks = utils.instantiate_callbacks(cfg.get("callbacks"))
    loggers = utils.instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    utils.log_hyperparameters(cfg, module, trainer)

    ckpt_path = utils.resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    if cfg.get("train"):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or ckpt_path)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    utils.report(trainer, output_dir, metrics)
    return metrics


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("val/angle")  # the value a Hydra sweeper would minimise


if __name__ == "__main__":
    main()
