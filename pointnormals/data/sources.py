"""Where training clouds come from: objects that hand the datamodule its three splits.

A *source* has two methods: ``prepare()`` (generate caches, check paths: run once, in
one process) and ``splits()`` (the raw ``train``, ``val`` and ``test`` datasets of
:class:`torch_geometric.data.Data` clouds with ``pos`` and ``normal``).
:class:`~pointnormals.data.datamodule.NormalsDataModule` takes any number of them, by
name, and concatenates their splits; a config adds a dataset by adding an entry with a
``_target_`` (``conf/data/*.yaml``), with no string switch in the datamodule.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     source = SyntheticSource(sizes=(2, 1, 1), points=300, cache_dir=tmp)
...     source.prepare()
...     [len(d) for d in source.splits().values()]
[2, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from torch.utils.data import Dataset, Subset

from pointnormals.data.modelnet import ModelNet40, detect_layout
from pointnormals.data.synthetic import SyntheticShapes

__all__ = ["SPLITS", "ModelNetSource", "Source", "SyntheticSource"]

SPLITS = ("train", "val", "test")


class Source(Protocol):
    """What the datamodule needs of a dataset."""

    def prepare(self) -> None: ...

    def splits(self) -> dict[str, Dataset]: ...


class SyntheticSource:
    """Procedural shapes with exact normals (:class:`~pointnormals.data.synthetic.SyntheticShapes`),
    generated once and cached: the offline default.

    Args:
        sizes: number of ``(train, val, test)`` shapes.
        points: points sampled per shape.
        seed: data seed (which shapes; each split draws its own).
        cache_dir: where the generated shapes go.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (384, 64, 64),
        points: int = 4096,
        seed: int = 0,
        cache_dir: str = "data",
    ) -> None:
        if len(sizes) != 3:
            raise ValueError(f"sizes: (train, val, test) shape counts, got {list(sizes)}")
        self.sizes = tuple(int(s) for s in sizes)
        self.points, self.seed, self.cache_dir = points, seed, Path(cache_dir)

    def prepare(self) -> None:
        self.splits()  # generating is what building the datasets does

    def splits(self) -> dict[str, Dataset]:
        return {
            split: SyntheticShapes(self.cache_dir, split, size, self.points, self.seed)
            for split, size in zip(SPLITS, self.sizes, strict=True)
        }


class ModelNetSource:
    """ModelNet40 in either layout (auto-detected, :mod:`pointnormals.data.modelnet`): its
    test split, and its train split less a seeded validation share.

    Args:
        root: the ModelNet40 directory (``ModelNet40/`` meshes or
            ``modelnet40_normal_resampled/``).
        points: points sampled per mesh (mesh layout only).
        val_fraction: share of the train split held out for validation.
        seed: data seed (which shapes go to validation).
        cache_dir: where sampled meshes are cached.
    """

    def __init__(
        self,
        root: str,
        points: int = 10_000,
        val_fraction: float = 0.1,
        seed: int = 0,
        cache_dir: str = "data",
    ) -> None:
        if not root:
            raise ValueError("ModelNetSource needs root=<ModelNet40 directory>")
        self.root, self.points, self.val_fraction = str(root), points, val_fraction
        self.seed, self.cache_dir = seed, Path(cache_dir)

    def prepare(self) -> None:
        detect_layout(self.root)  # fails early with a one-line message

    def splits(self) -> dict[str, Dataset]:
        full = ModelNet40(self.root, "train", self.cache_dir, self.points)
        order = np.random.default_rng(self.seed).permutation(len(full))
        num_val = max(1, round(self.val_fraction * len(full)))
        return {
            "train": Subset(full, sorted(order[num_val:])),
            "val": Subset(full, sorted(order[:num_val])),
            "test": ModelNet40(self.root, "test", self.cache_dir, self.points),
        }
