"""PyTorch Geometric, imported in one place and without ``torch._dynamo``.

Every module of the package takes its PyG names from here (``from pointnormals.pyg
import MLP, MessagePassing, scatter``), as :mod:`pointnormals.graph` owns torch_cluster.

Why: ``import torch_geometric`` runs ``import torch._dynamo`` eagerly
(``torch_geometric/isinstance.py``, only to unwrap ``torch.compile``'d models in
``is_torch_instance``), and that import alone took 2.2 s of PyG's 2.4-2.8 s on 2 cores,
on every ``predict.py`` call, before any work; normal estimation never compiles anything.
torch itself loads ``torch._dynamo`` lazily, on first use (``torch.__getattr__``). So
while PyG is imported, a placeholder stands in ``sys.modules`` for
``torch._dynamo``: PyG's ``import torch._dynamo`` only binds the name ``torch``, and
reads ``torch._dynamo`` when a model is checked, by which time the placeholder is gone
and torch imports the real module (``torch.compile`` and ``is_torch_instance`` work as
before: ``tests/test_pyg.py``). Where ``torch._dynamo`` or PyG is loaded already (by
Lightning in training), nothing changes; should PyG ever read ``torch._dynamo`` while
it is imported, the placeholder imports the real module there and then.
"""

from __future__ import annotations

import importlib
import sys
import types

import torch

__all__ = ["MLP", "Batch", "Data", "DataLoader", "MessagePassing", "scatter"]


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules``; reading any attribute it lacks imports
    the real module (in its place) and reads it there."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _import_without_dynamo() -> None:
    """Import ``torch_geometric`` while a :class:`_Deferred` stands for ``torch._dynamo``."""
    if "torch_geometric" in sys.modules or "torch._dynamo" in sys.modules:
        return
    placeholder = _Deferred("torch._dynamo")
    sys.modules["torch._dynamo"] = placeholder
    try:
        import torch_geometric  # noqa: F401
    finally:
        if sys.modules.get("torch._dynamo") is placeholder:
            del sys.modules["torch._dynamo"]
        if torch.__dict__.get("_dynamo") is placeholder:
            del torch._dynamo


_import_without_dynamo()

from torch_geometric.data import Batch, Data  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402
from torch_geometric.nn import MLP, MessagePassing  # noqa: E402
from torch_geometric.utils import scatter  # noqa: E402
