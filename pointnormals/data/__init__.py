"""Datasets, transforms and evaluation protocols for normal estimation.

* :class:`SyntheticShapes`: procedural shapes with exact normals (offline default);
* :class:`ModelNet40`: both published layouts, auto-detected, cached per shape;
* :mod:`~pointnormals.data.sources`: the datasets as objects the datamodule is given
  (:class:`SyntheticSource`, :class:`ModelNetSource`);
* :mod:`~pointnormals.data.transforms` and :class:`Protocol`: normalisation,
  subsampling, rotations ``none | z | so3 | o3``, noise, density variation;
* ``NormalsDataModule`` (:mod:`pointnormals.data.datamodule`, imports Lightning, so it
  is loaded only when accessed).
"""

from __future__ import annotations

from typing import Any

from pointnormals.data.modelnet import ModelNet40, detect_layout
from pointnormals.data.protocols import Protocol, ProtocolDataset, get_protocol
from pointnormals.data.sources import ModelNetSource, SyntheticSource
from pointnormals.data.synthetic import SyntheticShapes

__all__ = [
    "ModelNet40",
    "ModelNetSource",
    "NormalsDataModule",
    "Protocol",
    "ProtocolDataset",
    "SyntheticShapes",
    "SyntheticSource",
    "detect_layout",
    "get_protocol",
]


def __getattr__(name: str) -> Any:
    if name == "NormalsDataModule":
        from pointnormals.data.datamodule import NormalsDataModule

        return NormalsDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
