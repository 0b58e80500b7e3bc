"""The one LightningModule of the project: a plain normal-estimation model + loss,
metrics, optimiser and logging.

Validation and test run one dataloader per evaluation protocol (``aligned``, ``o3``, ...;
names from the datamodule's ``val_protocol_names`` / ``test_protocol_names``), and every
metric is logged per protocol side by side, e.g. ``val/aligned/angle`` next to
``val/o3/angle``. ``val/angle`` (the mean over the validation protocols) selects the best
checkpoint.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from pointnormals.geometry import angle_deg
from pointnormals.nn import TFPointNet, load_model
from pointnormals.pyg import Batch
from pointnormals.training.losses import get_loss
from pointnormals.training.metrics import METRICS, cloud_errors

__all__ = ["NormalErrors", "NormalEstimationModule"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class NormalErrors(Metric):
    """Per-cloud normal errors (:mod:`~pointnormals.training.metrics`) averaged over a split.

    States are sums over clouds, reduced by summation across DDP ranks on ``compute``.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in METRICS:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clouds", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, batch: Tensor, num_clouds: int) -> None:
        errors = cloud_errors(pred.detach().double(), target.double(), batch, num_clouds)
        for name, value in errors.items():
            setattr(self, name, getattr(self, name) + value.sum())
        self.clouds += num_clouds

    def compute(self) -> dict[str, Tensor]:
        clouds = self.clouds.clamp_min(1)
        return {name: (getattr(self, name) / clouds).float() for name in METRICS}


def _describe(factory: Callable | dict | None) -> dict | None:
    """A plain ``{"_target_": ..., **kwargs}`` description of a ``functools.partial``."""
    if factory is None or isinstance(factory, dict):
        return factory
    if isinstance(factory, functools.partial):
        func = factory.func
        return {"_target_": f"{func.__module__}.{func.__qualname__}", **factory.keywords}
    return {"_target_": f"{factory.__module__}.{factory.__qualname__}"}


def _factory(spec: Callable | dict | None) -> Callable | None:
    """Inverse of :func:`_describe`: a dict spec becomes a ``functools.partial`` again."""
    if spec is None or callable(spec):
        return spec
    spec = dict(spec)
    spec.pop("_partial_", None)
    module_name, _, name = spec.pop("_target_").rpartition(".")
    return functools.partial(getattr(importlib.import_module(module_name), name), **spec)


class NormalEstimationModule(L.LightningModule):
    """Trains any ``model(pos, batch) -> (N, 3)`` normal estimator on unoriented normals.

    Args:
        model: the plain ``nn.Module`` (built by Hydra from ``conf/model``); it must expose
            ``.config``, the plain dict that rebuilds it (``TFPointNet(**config)``).
        model_config: alternatively, that dict (used when loading a checkpoint).
        loss: ``abs_cos`` (:math:`1-|\\cos|`, default), ``sin2`` or ``unoriented_l2``.
        optimizer: ``functools.partial`` of a ``torch.optim`` class (``_partial_: true``),
            or a plain ``{"_target_": ..., **kwargs}`` dict; default
            AdamW(lr=2e-3, weight_decay=1e-4), as ``conf/module/default.yaml``.
        scheduler: ``functools.partial`` of an LR scheduler taking ``optimizer``, a dict
            spec like ``optimizer``, or ``None``.
        scheduler_interval: step the scheduler every ``epoch`` or ``step``.
        monitor: metric a ``ReduceLROnPlateau`` scheduler watches.
        init_from: a checkpoint whose weights initialise the model when fitting starts
            (fine-tuning; read in :meth:`setup`, so a resumed run keeps its own weights);
            its model config must match. ``None``: random initialisation.

    Every hyper-parameter is saved as a plain python container, so a checkpoint loads
    with ``torch.load(path, weights_only=True)`` and
    :func:`~pointnormals.training.load_model` rebuilds the model without any config file.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        model_config: dict | None = None,
        loss: str = "abs_cos",
        optimizer: OptimizerFactory | dict | None = None,
        scheduler: SchedulerFactory | dict | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/angle",
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        if (model is None) == (model_config is None):
            raise ValueError("NormalEstimationModule: pass exactly one of model, model_config")
        if model is None:
            model = TFPointNet(**model_config)
        if not isinstance(getattr(model, "config", None), dict):
            raise ValueError("NormalEstimationModule: model.config must be a plain dict")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be epoch or step, not {scheduler_interval!r}"
            )
        self.model = model
        self.init_from = init_from
        self.loss_fn = get_loss(loss)
        self.optimizer_factory = _factory(optimizer) or functools.partial(
            torch.optim.AdamW, lr=2e-3, weight_decay=1e-4
        )
        self.scheduler_factory = _factory(scheduler)
        self.save_hyperparameters(
            {
                "model_config": model.config,
                "loss": loss,
                "optimizer": _describe(self.optimizer_factory),
                "scheduler": _describe(self.scheduler_factory),
                "scheduler_interval": scheduler_interval,
                "monitor": monitor,
                "init_from": None if init_from is None else str(init_from),
            }
        )
        self._metrics: dict[str, list[NormalErrors]] = {}

    def forward(self, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        return self.model(pos, batch)

    def setup(self, stage: str) -> None:
        """Load ``init_from``'s weights before fitting (Lightning restores a resumed
        run's checkpoint after this hook, so resuming keeps the run's own weights)."""
        if stage == "fit" and self.init_from is not None:
            self.model.load_state_dict(load_model(self.init_from).state_dict())

    # ---- training -------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        pred = self.model(batch.pos, batch.batch)  # (N, 3)
        loss = self.loss_fn(pred, batch.normal)
        angle = angle_deg(pred.detach(), batch.normal).mean()
        log = {"batch_size": batch.num_graphs, "sync_dist": True, "on_step": True}
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, **log)
        self.log("train/angle", angle, prog_bar=True, on_epoch=True, **log)
        return loss

    # ---- evaluation -----------------------------------------------------------------
    def _protocol_names(self, stage: str) -> list[str]:
        datamodule = getattr(self.trainer, "datamodule", None)
        names = getattr(datamodule, f"{stage}_protocol_names", None)
        count = len(self._loaders(stage))
        if names is None or len(names) != count:
            names = [str(i) for i in range(count)] if count > 1 else ["all"]
        return list(names)

    def _loaders(self, stage: str) -> list:
        loaders = getattr(self.trainer, f"{stage}_dataloaders", None)
        if loaders is None:
            return []
        if isinstance(loaders, dict):
            return list(loaders.values())
        return list(loaders) if isinstance(loaders, list | tuple) else [loaders]

    def _start(self, stage: str) -> None:
        self._metrics[stage] = [NormalErrors().to(self.device) for _ in self._protocol_names(stage)]

    def _step(self, stage: str, batch: Batch, dataloader_idx: int) -> None:
        pred = self.model(batch.pos, batch.batch)
        name = self._protocol_names(stage)[dataloader_idx]
        self.log(
            f"{stage}/{name}/loss",
            self.loss_fn(pred, batch.normal),
            batch_size=batch.num_graphs,
            sync_dist=True,
            add_dataloader_idx=False,
        )
        self._metrics[stage][dataloader_idx].update(
            pred, batch.normal, batch.batch, batch.num_graphs
        )

    def _end(self, stage: str) -> dict[str, Tensor]:
        results: dict[str, Tensor] = {}
        angles = []
        metrics = self._metrics.pop(stage, [])
        names = self._protocol_names(stage) if metrics else []
        for name, metric in zip(names, metrics, strict=True):
            if not metric.update_called:
                continue
            for key, value in metric.compute().items():
                results[f"{stage}/{name}/{key}"] = value
            angles.append(results[f"{stage}/{name}/angle"])
        if angles:
            # already reduced over ranks by NormalErrors; sync_dist keeps ranks identical
            self.log_dict(results, sync_dist=True)
            results[f"{stage}/angle"] = torch.stack(angles).mean()
            self.log(f"{stage}/angle", results[f"{stage}/angle"], prog_bar=True, sync_dist=True)
        return results

    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step("val", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._end("val")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step("test", batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._end("test")

    # ---- optimisation ---------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams.scheduler_interval,
                "frequency": 1,
                "monitor": self.hparams.monitor,
            },
        }
