"""Normals in Open3D's idiom: ``pointnormals.estimate_normals(cloud)``.

Takes what a Python user holds — an ``open3d.geometry.PointCloud``, an
``open3d.t.geometry.PointCloud``, a NumPy ``(N, 3)`` array or a torch ``(N, 3)`` tensor —
and answers in kind. Open3D clouds get their normals set **in place**, as Open3D's own
``cloud.estimate_normals()`` does (the cloud is also returned, for chaining); arrays and
tensors are never modified and the normals come back as a new ``(N, 3)`` array/tensor in
the input's floating dtype and on its device.

>>> import numpy as np
>>> points = np.random.default_rng(0).normal(size=(500, 3))
>>> normals = estimate_normals(points, method="pca", k=20)
>>> normals.shape, normals.dtype
((500, 3), dtype('float64'))

:func:`estimate` is the tensor core shared by this function, ``predict.py`` and the demo
(the one place that calls :func:`~pointnormals.inference.predict_normals`). Open3D is
imported only for Open3D inputs and ``method="pca"``. On CPU the model's first call
makes glibc keep freed memory for the rest of the process (:mod:`pointnormals.allocator`:
about 15 % faster; ``POINTNORMALS_KEEP_FREED_MEMORY=0`` opts out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from pointnormals import allocator, geometry, graph, inference

__all__ = ["METHODS", "ORIENTATIONS", "check_extent", "estimate", "estimate_normals", "load_model"]

METHODS = ("model", "pca")
"""``model``: the O(3)-equivariant network; ``pca``: Open3D's PCA of ``k`` neighbours."""

ORIENTATIONS = ("none", "outward", "mst", "viewpoint", "auto")
"""Sign conventions, see :func:`pointnormals.orient.orient`."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; ``total == 0`` when the stage is not counted."""

CloudT = TypeVar("CloudT")


def load_model(
    checkpoint: str | Path | None = None,
    device: str | torch.device = "auto",
    precision: str = "mixed",
) -> nn.Module:
    """The shipped model (or ``checkpoint``) on ``device`` (``auto``: CUDA if present),
    in float64 for ``precision="float64"``, else in float32 (``mixed``, ``float32``)."""
    if precision not in inference.PRECISIONS:
        raise ValueError(f"precision must be one of {inference.PRECISIONS}, got {precision!r}")
    model = inference.load_pretrained(checkpoint, inference.resolve_device(device))
    return model.to(torch.float64 if precision == "float64" else torch.float32)


def check_extent(points: Tensor) -> None:
    """``ValueError`` when all points coincide (up to 1e-12 of the coordinates' size):
    such a cloud has no surface and no normal.

    Shapes:
        points: ``(N, 3)``.
    """
    pos64 = points.detach().to(torch.float64)
    extent = (pos64 - pos64.mean(0)).norm(dim=-1).max()
    if extent <= 1e-12 * pos64.abs().max():
        raise ValueError(
            f"all {points.size(0):,} points coincide (the cloud has no extent): "
            "normals are undefined"
        )


def estimate(
    points: Tensor,
    *,
    method: str = "model",
    model: nn.Module | None = None,
    k: int = 30,
    orient: str = "none",
    viewpoint: Sequence[float] | Tensor | None = None,
    progress: Progress | None = None,
    **predict_options: Any,
) -> Tensor:
    """Unit normals of ``points`` with ``method``, then oriented (the shared core).

    Coincident points (merged scans, overlapping tiles, coordinates quantised on
    writing) are estimated once and share one normal: ``k`` nearest points that are
    mostly copies of a few span no surface (:func:`~pointnormals.geometry.distinct_points`).

    Args:
        points: the cloud, any floating dtype and device.
        method: one of :data:`METHODS`.
        model: the network of ``method="model"`` (see :func:`load_model`).
        k: neighbours of ``method="pca"``.
        orient: one of :data:`ORIENTATIONS`; ``auto`` uses ``viewpoint`` when given,
            else ``mst``.
        viewpoint: sensor position ``(3,)`` for ``orient="viewpoint"``/``"auto"``.
        progress: ``progress(stage, done, total)`` as work advances.
        **predict_options: passed to :func:`~pointnormals.inference.predict_normals`
            (``patch_points``, ``batch_points``, ``overlap``, ...).

    Returns:
        Unit normals in the dtype and on the device of ``points``.

    Shapes:
        points: ``(N, 3)`` → ``(N, 3)``; viewpoint: ``(3,)``.
    """
    report = progress or (lambda stage, done, total: None)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}, expected one of {METHODS}")
    if orient not in ORIENTATIONS:
        raise ValueError(f"unknown orientation {orient!r}, expected one of {ORIENTATIONS}")
    if orient == "viewpoint" and viewpoint is None:
        raise ValueError("orient='viewpoint' needs a viewpoint (x, y, z)")
    inference.validate_points(points)
    check_extent(points)
    distinct = geometry.distinct_points(points)
    cloud = points  # what is estimated: every distinct point once
    if distinct is not None:  # coincident points: their normal is shared
        first, inverse = distinct
        if first.numel() < inference.MIN_POINTS:
            raise ValueError(
                f"only {first.numel()} distinct points among {points.size(0):,}: "
                f"need at least {inference.MIN_POINTS}"
            )
        cloud = points[first]
    if method == "pca":
        report("estimating", 0, 0)
        from pointnormals import o3d

        # in the KD-tree's order, where neighbours sit close together in memory: Open3D's
        # search is 2-2.5x faster than on a shuffled cloud (the same neighbours; exact
        # ties, as on quantised coordinates, it breaks by the order it is given anyway)
        order = graph.PatchSearch(cloud).order.cpu()
        pca = o3d.estimate_normals_pca(cloud.detach().cpu()[order].numpy(), k)
        normals = torch.empty(pca.shape, dtype=cloud.dtype)
        normals[order] = torch.from_numpy(pca).to(cloud.dtype)
        normals = normals.to(cloud.device)
    else:
        if model is None:
            raise ValueError("method='model' needs a model (see pointnormals.api.load_model)")
        if cloud.device.type == "cpu":
            allocator.keep_freed_memory()  # large temporaries reused, not faulted in again
        report("planning", 0, 0)
        normals = inference.predict_normals(
            model,
            cloud,
            progress=report,
            **predict_options,
        )
    if orient != "none":
        report("orienting", 0, 0)
        from pointnormals import orient as orienting

        if viewpoint is not None:
            viewpoint = torch.as_tensor(viewpoint, dtype=cloud.dtype, device=cloud.device)
        normals = orienting.orient(cloud, normals, orient, viewpoint)
    normals = normals.to(points.device, points.dtype)
    return normals if distinct is None else normals[inverse]


def estimate_normals(
    cloud: CloudT,
    *,
    method: str = "model",
    orient: str = "none",
    viewpoint: Sequence[float] | None = None,
    device: str = "auto",
    checkpoint: str | Path | None = None,
    k: int = 30,
    precision: str = "mixed",
    model: nn.Module | None = None,
    **predict_options: Any,
) -> CloudT:
    """Normals of ``cloud``, answered in kind (see the module docstring).

    Args:
        cloud: ``open3d.geometry.PointCloud`` or ``open3d.t.geometry.PointCloud``
            (normals set in place and the cloud returned), NumPy array or torch tensor
            ``(N, 3)`` (normals returned, input untouched).
        method: ``model`` (default) or ``pca`` (Open3D, ``k`` neighbours).
        orient: ``none`` (unoriented, default), ``outward``, ``mst``, ``viewpoint``
            or ``auto`` (``viewpoint`` when given, else ``mst``).
        viewpoint: sensor position ``(x, y, z)`` for ``orient="viewpoint"``.
        device: where the model runs: ``auto`` (CUDA if present), ``cpu``, ``cuda:N``.
        checkpoint: a ``train.py`` checkpoint instead of the shipped model.
        k: neighbours of ``method="pca"``.
        precision: ``mixed`` (default: geometry in float64, the MLPs in float32; exactly
            equivariant), ``float64`` (everything; slower) or ``float32`` (everything;
            fastest, a few normals change under rotations).
        model: an already loaded model (skips loading; ``device``/``checkpoint`` are
            then unused).
        **predict_options: passed to :func:`~pointnormals.inference.predict_normals`.

    Returns:
        The same Open3D cloud, or the normals as an array/tensor like ``cloud``.

    Shapes:
        cloud: ``N`` points → normals ``(N, 3)``.
    """
    points, put = _adapt(cloud)
    if method == "model" and model is None:
        model = load_model(checkpoint, device, precision)
    normals = estimate(
        points,
        method=method,
        model=model,
        k=k,
        orient=orient,
        viewpoint=viewpoint,
        **({"precision": precision} if method == "model" else {}),
        **predict_options,
    )
    return put(normals)


def _adapt(cloud: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """The points of ``cloud`` as a tensor, and how to answer with normals in kind."""
    if isinstance(cloud, Tensor):
        points = cloud.detach()
        return (points if points.is_floating_point() else points.double()), lambda n: n
    if type(cloud).__module__.startswith("open3d"):
        return _adapt_open3d(cloud)
    array = np.asarray(cloud)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return torch.from_numpy(np.array(array)), lambda n: n.numpy()


def _adapt_open3d(cloud: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    import open3d as o3d

    if isinstance(cloud, o3d.geometry.PointCloud):

        def put_legacy(normals: Tensor) -> Any:
            cloud.normals = o3d.utility.Vector3dVector(normals.numpy().astype(np.float64))
            return cloud

        return torch.from_numpy(np.asarray(cloud.points).copy()), put_legacy
    if isinstance(cloud, o3d.t.geometry.PointCloud):
        if "positions" not in cloud.point:
            raise ValueError("the open3d.t PointCloud has no 'positions'")
        positions = cloud.point.positions

        def put_tensor(normals: Tensor) -> Any:
            cloud.point.normals = o3d.core.Tensor(normals.numpy()).to(positions.device)
            return cloud

        return torch.from_numpy(positions.cpu().numpy().copy()), put_tensor
    raise TypeError(f"unsupported Open3D type {type(cloud).__name__}, expected a PointCloud")
