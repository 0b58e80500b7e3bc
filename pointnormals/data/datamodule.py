"""The LightningDataModule of the training pipeline (built from ``conf/data/*.yaml``).

Validation and test each return *two or more* loaders side by side, one per protocol
(default ``aligned`` and ``o3``): the same clouds, subsampled and noised identically,
once in their canonical pose and once under fixed seeded rotations and reflections.
Their names are :attr:`NormalsDataModule.val_protocol_names` and
:attr:`NormalsDataModule.test_protocol_names`, in dataloader order, so metrics can be
logged as ``val/aligned/...`` and ``val/o3/...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
from torch.utils.data import ConcatDataset, Dataset
from pointnormals.pyg import DataLoader

from pointnormals.data.protocols import Protocol, ProtocolDataset, protocol_datasets
from pointnormals.data.sources import SPLITS, Source, SyntheticSource

__all__ = ["NormalsDataModule"]


class NormalsDataModule(L.LightningDataModule):
    """Point clouds with ground-truth normals, batched the PyG way (``batch`` vector).

    Args:
        sources: the datasets by name (:mod:`pointnormals.data.sources`), their splits
            concatenated in this order; a ``None`` entry is skipped (how a config drops
            an inherited source). Default: ``{"synthetic": SyntheticSource()}``.
        num_points: points per training cloud.
        eval_num_points: points per validation / test cloud (``None``: all).
        batch_size: clouds per training batch.
        eval_batch_size: clouds per evaluation batch (default ``batch_size``).
        num_workers: loader worker processes.
        seed: seed of the evaluation protocols. Training augmentation uses the process
            RNG instead (seed it with ``lightning.seed_everything(seed, workers=True)``).
        train_rotation: ``none | z | so3 | o3`` augmentation while training.
        train_noise: noise levels (fraction of the box diagonal), one drawn per cloud.
        train_density: density modes ``none | gradient | stripes``, one drawn per cloud.
        train_patch: fractions of a cloud kept as one local patch, one drawn per cloud
            (``1.0``: the whole cloud; see :func:`~pointnormals.data.transforms.crop_patch`).
        val_protocols: protocol names of the validation loaders (see
            :func:`~pointnormals.data.protocols.get_protocol`).
        test_protocols: protocol names of the test loaders.
    """

    def __init__(
        self,
        sources: Mapping[str, Source | None] | None = None,
        num_points: int = 1024,
        eval_num_points: int | None = 1024,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        train_rotation: str = "none",
        train_noise: Sequence[float] = (0.0, 0.00125, 0.0065, 0.012),
        train_density: Sequence[str] = ("none",),
        train_patch: Sequence[float] = (1.0,),
        val_protocols: Sequence[str] = ("aligned", "o3"),
        test_protocols: Sequence[str] = ("aligned", "o3"),
    ) -> None:
        super().__init__()
        sources = {"synthetic": SyntheticSource()} if sources is None else sources
        self.sources = {name: s for name, s in sources.items() if s is not None}
        if not self.sources:
            raise ValueError("NormalsDataModule: no data source (every entry is null)")
        self.save_hyperparameters(ignore=["sources"])  # checkpoints stay plain data
        self.num_points, self.eval_num_points = num_points, eval_num_points
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.train_protocol = Protocol(
            "train",
            rotation=train_rotation,
            noise=tuple(float(x) for x in train_noise),
            density=tuple(str(x) for x in train_density),
            num_points=num_points,
            patch=tuple(float(x) for x in train_patch),
        )
        self.val_protocol_names = tuple(str(x) for x in val_protocols)
        self.test_protocol_names = tuple(str(x) for x in test_protocols)
        self._bases: dict[str, Dataset] | None = None

    def prepare_data(self) -> None:
        """Generate caches and check paths of every source (one process)."""
        for source in self.sources.values():
            source.prepare()

    def setup(self, stage: str | None = None) -> None:
        """Build the raw train / val / test datasets (idempotent)."""
        if self._bases is not None:
            return
        parts: dict[str, list[Dataset]] = {split: [] for split in SPLITS}
        for source in self.sources.values():
            for split, dataset in source.splits().items():
                parts[split].append(dataset)
        self._bases = {k: v[0] if len(v) == 1 else ConcatDataset(v) for k, v in parts.items()}

    def base_dataset(self, split: str) -> Dataset:
        """The raw (untransformed) dataset of ``split``: ``train``, ``val`` or ``test``."""
        self.setup()
        assert self._bases is not None
        return self._bases[split]

    def train_dataloader(self) -> DataLoader:
        """Shuffled training clouds under the training augmentation."""
        dataset = ProtocolDataset(self.base_dataset("train"), self.train_protocol, seed=None)
        return self._loader(dataset, self.batch_size, shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per name in :attr:`val_protocol_names`, same clouds in each."""
        names, base = self.val_protocol_names, self.base_dataset("val")
        sets = protocol_datasets(base, names, self.eval_num_points, self.seed)
        return [self._loader(s, self.eval_batch_size, shuffle=False) for s in sets]

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per name in :attr:`test_protocol_names`, same clouds in each."""
        names, base = self.test_protocol_names, self.base_dataset("test")
        sets = protocol_datasets(base, names, self.eval_num_points, self.seed + 1)
        return [self._loader(s, self.eval_batch_size, shuffle=False) for s in sets]

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
