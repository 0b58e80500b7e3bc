"""Lightning callbacks of the training pipeline."""

from __future__ import annotations

from datetime import timedelta
from os import PathLike

from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["LastCheckpoint"]


class LastCheckpoint(ModelCheckpoint):
    """Keeps ``<dirpath>/last.ckpt`` = the latest full training state, whatever its score.

    Written at the end of every epoch (after validation) *and*, for fault tolerance
    within long epochs, every ``every_n_train_steps`` optimiser steps and/or every
    ``train_time_interval``. Lightning's own ``ModelCheckpoint`` allows only one of these
    triggers, and its ``save_last`` skips epochs whose score did not improve; resuming
    (``ckpt_path=last``) needs the latest state. Files are written atomically by
    Lightning (temporary file + rename), so a kill mid-write leaves the previous one.

    Args:
        dirpath: checkpoint directory.
        filename: file name without ``.ckpt``.
        every_n_train_steps: also save every N optimiser steps (``None``: off).
        train_time_interval: also save after this much training time (``None``: off).
    """

    def __init__(
        self,
        dirpath: str | PathLike,
        filename: str = "last",
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            enable_version_counter=False,
        )
        self._every_n_epochs = 1  # on top of the step / time trigger
