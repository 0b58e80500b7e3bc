"""TF-PointNet++: an O(3)-equivariant PointNet++ for per-point normals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .. import graph
from ..frames import FrameUpdate, build_frames
from ..frames.frames import Frames
from ..pyg import MLP, scatter
from ..reps import as_reps
from .interpolate import TensorialInterpolation
from .point_conv import TensorialPointConv


@dataclass(frozen=True)
class Stage:
    """One level of the network: how it samples, groups and what it computes.

    Args:
        reps: representation of this level's features (e.g. ``"32x0n+8x1n+4x2n"``).
        ratio: fraction of the previous level's points kept as centres (FPS); the first
            stage uses ``1.0`` (no sampling: a local embedding of every input point).
        k: neighbours per centre (kNN), or the cap inside the ball when ``radius`` is set.
        radius: ball radius on the unit-sphere-normalised cloud; ``None`` for kNN.
        hidden: hidden widths of the set-abstraction message MLP.
        up_hidden: hidden widths of the feature-propagation MLP back to this level.
    """

    reps: str
    ratio: float = 1.0
    k: int = 16
    radius: float | None = None
    hidden: tuple[int, ...] = (64,)
    up_hidden: tuple[int, ...] = (64,)


@dataclass
class _Level:
    pos: Tensor
    batch: Tensor
    frames: Frames
    x: Tensor


_IGNORE_REPEATS = ("max", "min")
"""Aggregations whose result a repeated message does not change."""

_STAGE_TARGETS = ("pointnormals.nn.Stage", f"{Stage.__module__}.{Stage.__qualname__}")


def _as_stage(stage: Stage | dict) -> Stage:
    if isinstance(stage, Stage):
        return stage
    stage = dict(stage)
    target = stage.pop("_target_", _STAGE_TARGETS[0])  # the config names the class
    if target not in _STAGE_TARGETS:
        raise ValueError(f"TFPointNet: a stage is a {_STAGE_TARGETS[0]}, not {target}")
    for key in ("hidden", "up_hidden"):
        if key in stage:
            stage[key] = tuple(stage[key])
    return Stage(**stage)


def normalize_clouds(pos: Tensor, batch: Tensor, num_clouds: int) -> Tensor:
    r"""Centre every cloud and scale it into the unit ball.

    .. math::
        p' = (p - \bar p) / \max \lVert p - \bar p \rVert

    Equivariant (:math:`\bar p \to Q\bar p + t`) and scale invariant.
    """
    centroid = scatter(pos, batch, dim=0, dim_size=num_clouds, reduce="mean")
    centred = pos - centroid[batch]
    radius = centred.norm(dim=-1)
    # torch's own amax: PyG's scatter(reduce="max") imports torch.onnx (0.3 s of start-up)
    scale = radius.new_zeros(num_clouds)
    scale.scatter_reduce_(0, batch, radius, "amax", include_self=False)
    return centred / scale.clamp_min(torch.finfo(pos.dtype).tiny)[batch].unsqueeze(-1)


class TFPointNet(nn.Module):
    r"""TF-PointNet++ normal regressor (``frames="identity"`` gives plain PointNet++).

    1. Per-point frames :math:`R_i` (learned Gram–Schmidt, PCA, identity, ...).
    2. Stage 0 embeds every point from its neighbourhood, stages 1.. are set
       abstractions: FPS centres, a radius/kNN graph from all points to the centres and
       a :class:`TensorialPointConv` (messages :math:`\rho(R_i R_j^\top) f_j`,
       :math:`R_i(p_j - p_i)`, aggregated by max). Centres keep their point's frame,
       optionally updated by a :class:`~pointnormals.frames.FrameUpdate`.
    3. Feature propagation back to every point: :class:`TensorialInterpolation` from the
       ``interp_k`` nearest coarse points, concatenation with the skip features, MLP.
    4. Head: a linear map to a ``1x1n`` vector :math:`v_i` in the local frame; the normal
       is :math:`n_i = R_i^\top v_i / \lVert v_i \rVert`.

    Mixed precision (``torch.autocast``, e.g. Lightning's ``bf16-mixed``): frames,
    normalisation, every frame change and the output rotation run in the input's
    precision; only the MLPs round to the low precision. Likewise float64 positions into a
    float32 model (with :func:`~pointnormals.nn.precision.float32_mlps`, as ``predict.py``
    runs it): every discrete decision (neighbours, sampling, frame signs) is taken in
    float64, so it commutes exactly with rotations and reflections, and the features are
    computed in float32 from positions and frames rounded only after those decisions.

    All hyper-parameters form a plain dict (:attr:`config`), so a checkpoint rebuilds the
    model with ``TFPointNet(**config)``.

    Args:
        stages: list of :class:`Stage` (or dicts), finest first; or a dict of them by name
            (the config's form, so an option can change one field of one stage), whose
            ``None`` entries are skipped. ``stages[0].ratio`` must be 1.
        frames: frame construction for :func:`~pointnormals.frames.build_frames`: a
            short name (``"pca"``) or a ``{"_target_": ..., **kwargs}`` dict.
        reps_kind: ``"tensor"`` (Cartesian) or ``"irreps"``.
        frame_update: update the centre frames after every set abstraction.
        interp_k: neighbours used by the interpolation.
        aggr: aggregation of the set abstraction (``"max"``, ``"mean"``, ...).
        norm: normalisation inside MLPs (PyG name, or ``None``).
        normalize: centre and scale every cloud to the unit ball first (scale invariance).

    Shapes:
        pos: ``(N, 3)``, batch: ``(N,)`` (sorted cloud index) → normals ``(N, 3)``.
    """

    def __init__(
        self,
        stages: list[Stage | dict] | Mapping[str, Stage | dict | None],
        frames: dict | str = "learned",
        reps_kind: str = "tensor",
        frame_update: bool = False,
        interp_k: int = 3,
        aggr: str = "max",
        norm: str | None = "batch_norm",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(stages, Mapping):
            stages = [s for s in stages.values() if s is not None]
        stages = [_as_stage(s) for s in stages]
        if not stages or stages[0].ratio != 1.0:
            raise ValueError("TFPointNet: stages[0] must embed every point (ratio=1.0)")
        if isinstance(frames, dict | str):
            frames_spec = frames if isinstance(frames, str) else dict(frames)
        else:
            raise ValueError(
                "TFPointNet: frames must be plain data, e.g. 'learned' or "
                "{'_target_': 'pointnormals.frames.LearnedFrames', 'k': 16}"
            )
        self.config = {
            "stages": [asdict(s) for s in stages],
            "frames": frames_spec,
            "reps_kind": reps_kind,
            "frame_update": frame_update,
            "interp_k": interp_k,
            "aggr": aggr,
            "norm": norm,
            "normalize": normalize,
        }
        self.stages = stages
        self.aggr = aggr
        self.normalize = normalize
        self.interp_k = interp_k
        self.frames = build_frames(frames_spec)
        reps = [as_reps(s.reps, reps_kind) for s in stages]
        self.down = nn.ModuleList()
        self.updates = nn.ModuleList()
        for i, stage in enumerate(stages):
            reps_in = as_reps("", reps_kind) if i == 0 else reps[i - 1]
            self.down.append(TensorialPointConv(reps_in, reps[i], list(stage.hidden), aggr, norm))
            # an update matters if features carry orientation or a later level reads
            # positions in these frames; otherwise it would be a dead branch
            matters = not reps[i].is_scalar or i < len(stages) - 1
            use_update = frame_update and i > 0 and reps[i].num_scalars > 0 and matters
            self.updates.append(FrameUpdate(reps[i].num_scalars) if use_update else nn.Identity())
        self.interps = nn.ModuleList(TensorialInterpolation(r) for r in reps[1:])
        self.up = nn.ModuleList(
            MLP([reps[i].dim + reps[i + 1].dim, *stages[i].up_hidden, reps[i].dim], norm=norm)
            for i in range(len(stages) - 1)
        )
        self.head = nn.Linear(reps[0].dim, 3)  # a 1x1n vector in the local frame
        self.reps = reps

    def forward(self, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        if batch is None:
            batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
        num_clouds = int(batch[-1]) + 1 if batch.numel() else 0
        with torch.autocast(pos.device.type, enabled=False):  # geometry in full precision
            if self.normalize:
                pos = normalize_clouds(pos, batch, num_clouds)
            nbhd = self._neighbours(self.stages[0], (pos, batch), pos, batch)
            shared = self.stages[0].radius is None and self.frames.knn_k == self.stages[0].k
            frames = self.frames(pos, batch, nbhd.edge_index if shared else None)
        levels = [self._embed(pos, batch, frames, nbhd)]  # geometry: pos.dtype
        for i in range(1, len(self.stages)):
            levels.append(self._abstract(levels[-1], i))
        x = levels[-1].x
        for i in range(len(self.stages) - 2, -1, -1):
            fine, coarse = levels[i], levels[i + 1]
            nbhd = graph.Neighbourhood.knn(
                coarse.pos, fine.pos, self.interp_k, coarse.batch, fine.batch
            )
            x_up = self.interps[i](
                x,
                (self._features(coarse.pos), self._features(fine.pos)),
                nbhd,
                (self._features(coarse.frames), self._features(fine.frames)),
            )
            x = self.up[i](torch.cat([fine.x, x_up], dim=-1))
        v_local = self.head(x).to(pos.dtype)  # (N, 3), a 1x1n vector in the local frame
        with torch.autocast(pos.device.type, enabled=False):
            if not frames.is_identity:
                v_local = (frames.matrices.transpose(-1, -2) @ v_local.unsqueeze(-1)).squeeze(-1)
            return nn.functional.normalize(v_local, dim=-1, eps=1e-12)

    def _neighbours(
        self, stage: Stage, src: tuple[Tensor, Tensor], pos: Tensor, batch: Tensor
    ) -> graph.Neighbourhood:
        pos_src, batch_src = src
        if stage.radius is None:
            return graph.Neighbourhood.knn(pos_src, pos, stage.k, batch_src, batch)
        nbhd = graph.Neighbourhood.radius(pos_src, pos, stage.radius, batch_src, batch, stage.k)
        if self.aggr in _IGNORE_REPEATS and not self.training:
            # the same maximum with a fixed degree: one frame matrix per receiver (in
            # training, repeated edges would weigh in the batch norms' statistics)
            nbhd = nbhd.repeat_to(stage.k)
        return nbhd

    def _features(self, geometry: Tensor | Frames) -> Tensor | Frames:
        """Positions or frames in the dtype of the weights (after every decision on them)."""
        return geometry.to(self.head.weight.dtype)

    def _embed(
        self, pos: Tensor, batch: Tensor, frames: Frames, nbhd: graph.Neighbourhood
    ) -> _Level:
        x = self.down[0](None, self._features(pos), nbhd, self._features(frames))
        return _Level(pos, batch, frames, x)

    def _abstract(self, prev: _Level, i: int) -> _Level:
        stage = self.stages[i]
        idx = graph.farthest_point_sample(prev.pos, stage.ratio, prev.batch)
        pos, batch, frames = prev.pos[idx], prev.batch[idx], prev.frames[idx]
        nbhd = self._neighbours(stage, (prev.pos, prev.batch), pos, batch)
        x = self.down[i](
            prev.x,
            (self._features(prev.pos), self._features(pos)),
            nbhd,
            (self._features(prev.frames), self._features(frames)),
        )
        update = self.updates[i]
        if isinstance(update, FrameUpdate):
            scalars = x[:, self.reps[i].scalar_index].to(pos.dtype)
            with torch.autocast(pos.device.type, enabled=False):
                frames, delta = update(scalars, frames)
            delta = delta.to(x.dtype)
            x = self.reps[i].transform(x, delta, torch.ones_like(delta[:, 0, 0]))
        return _Level(pos, batch, frames, x)

    def extra_repr(self) -> str:
        return f"frames={self.config['frames']}, reps={[str(r) for r in self.reps]}"
