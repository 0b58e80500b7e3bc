"""The LightningDataModule of scan patches (``data=scans``): the regime ``predict.py`` serves.

Training draws fresh :class:`~pointnormals.data.scan_patches.ScanPatches` every epoch;
validation and test are the same generator with fixed seeds (test on other seeds), so
their numbers are comparable between runs. The dense clouds are generated once and
cached (:func:`~pointnormals.data.dense.build_dense_clouds`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from pointnormals.pyg import DataLoader

from pointnormals.data.dense import DenseClouds, build_dense_clouds
from pointnormals.data.scan_patches import ScanPatches

__all__ = ["ScanDataModule"]


class ScanDataModule(L.LightningDataModule):
    """Batches of scan patches, PyG style (``batch`` vector).

    Args:
        clouds: keyword arguments of :func:`~pointnormals.data.dense.build_dense_clouds`.
        patches: keyword arguments of :class:`~pointnormals.data.scan_patches.ScanPatches`
            (patch size, scales, noise, artefacts).
        train_length: training patches per epoch.
        val_length: validation (and test) patches.
        batch_size: patches per batch.
        num_workers: loader worker processes.
        seed: seed of the validation patches (test uses ``seed + 1``).
    """

    def __init__(
        self,
        clouds: dict[str, Any],
        patches: dict[str, Any] | None = None,
        train_length: int = 4096,
        val_length: int = 128,
        batch_size: int = 8,
        num_workers: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.clouds_kwargs, self.patches_kwargs = dict(clouds), dict(patches or {})
        self.train_length, self.val_length = train_length, val_length
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_protocol_names = self.test_protocol_names = ("scans",)
        self._clouds: DenseClouds | None = None

    def prepare_data(self) -> None:
        """Generate the dense-cloud cache (one process)."""
        build_dense_clouds(**self.clouds_kwargs)

    @property
    def clouds(self) -> DenseClouds:
        if self._clouds is None:
            self._clouds = build_dense_clouds(**self.clouds_kwargs)
        return self._clouds

    def _patches(self, length: int, seed: int | None) -> ScanPatches:
        return ScanPatches(self.clouds, length, seed=seed, **self.patches_kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._patches(self.train_length, None), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._patches(self.val_length, self.seed), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._patches(self.val_length, self.seed + 1), shuffle=False)

    def _loader(self, dataset: ScanPatches, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
