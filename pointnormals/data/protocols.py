"""Named, seeded evaluation protocols and the training augmentation (same code).

A :class:`Protocol` is the fixed pipeline

    normalise → density variation → noise → patch crop → subsample → rotation / reflection

with per-sample random choices drawn from one ``torch.Generator``. Evaluation seeds the
generator from ``(seed, index)`` only, so two protocols that differ only in their
rotation see *the same* subsampled, noised cloud, rotated or not. Training seeds it
from the process RNG (seeded by Lightning's ``seed_everything(..., workers=True)``),
so every epoch sees new augmentations.

Names are ``+``-joined tokens, any order, each group optional::

    rotation: aligned | z | so3 | o3           (default aligned)
    noise:    clean | noise_low | noise_med | noise_high | noise=<fraction>
    density:  uniform | gradient | stripes

>>> get_protocol("o3+noise_med").noise
(0.0065,)
>>> get_protocol("stripes").rotation
'none'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from pointnormals.pyg import Data

from pointnormals.data import transforms as T

__all__ = [
    "STANDARD_PROTOCOLS",
    "Protocol",
    "ProtocolDataset",
    "get_protocol",
    "protocol_datasets",
]

_ROTATION_TOKENS = {"aligned": "none", "none": "none", "z": "z", "so3": "so3", "o3": "o3"}
_DENSITY_TOKENS = {"uniform": "none", "gradient": "gradient", "stripes": "stripes"}
STANDARD_PROTOCOLS = tuple(
    f"{pose}+{variant}"
    for pose in ("aligned", "o3")
    for variant in ("clean", "noise_low", "noise_med", "noise_high", "gradient", "stripes")
)
"""The PCPNet-style benchmark suite, in canonical pose and under O(3)."""


@dataclass(frozen=True)
class Protocol:
    """One augmentation / evaluation pipeline.

    Args:
        name: label used in logs (``val/<name>/...``).
        rotation: ``none | z | so3 | o3``.
        noise: noise levels (fraction of the box diagonal); one is drawn per sample.
        density: density modes ``none | gradient | stripes``; one is drawn per sample.
        num_points: points kept per cloud (``None``: all).
        patch: fractions of the cloud kept as one local patch (see
            :func:`~pointnormals.data.transforms.crop_patch`); one is drawn per sample,
            ``1.0`` keeps the whole cloud.
        up_axis: the axis of ``z`` rotations (loaders return z-up clouds).
    """

    name: str
    rotation: str = "none"
    noise: tuple[float, ...] = (0.0,)
    density: tuple[str, ...] = ("none",)
    num_points: int | None = 2048
    patch: tuple[float, ...] = (1.0,)
    up_axis: int = 2

    def __post_init__(self) -> None:
        if self.rotation not in T.ROTATION_MODES:
            raise ValueError(f"protocol {self.name!r}: unknown rotation {self.rotation!r}")
        if not self.noise or any(level < 0 for level in self.noise):
            raise ValueError(f"protocol {self.name!r}: noise levels must be >= 0")
        if not self.density or any(mode not in T.DENSITY_MODES for mode in self.density):
            raise ValueError(f"protocol {self.name!r}: density modes from {T.DENSITY_MODES}")
        if not self.patch or any(not 0 < f <= 1 for f in self.patch):
            raise ValueError(f"protocol {self.name!r}: patch fractions must be in (0, 1]")

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Apply the pipeline to one cloud (the input is not modified)."""
        data = T.normalize(data)
        density = self.density[_pick(len(self.density), generator)]
        data = T.vary_density(data, density, generator)
        # noise relative to the whole shape, before any crop: a patch of a noisy scan
        # is as noisy as the scan (relative to the patch, small patches are noisier)
        level = self.noise[_pick(len(self.noise), generator)]
        data = T.add_noise(data, level, generator)
        if self.patch != (1.0,):  # draws nothing for whole clouds (evaluation seeds)
            data = T.crop_patch(data, self.patch[_pick(len(self.patch), generator)], generator)
        data = T.subsample(data, self.num_points, generator)
        # last, so that protocols differing only in rotation share everything else
        return T.rotate(data, self.rotation, generator, axis=self.up_axis)


def _pick(n: int, generator: torch.Generator) -> int:
    """A uniform index in ``range(n)``; draws nothing when ``n == 1``."""
    return 0 if n == 1 else int(torch.randint(n, (), generator=generator))


def get_protocol(name: str, num_points: int | None = 2048) -> Protocol:
    """Parse a protocol name such as ``"o3+noise_high+gradient"`` (see module doc)."""
    rotation, noise, density = "none", 0.0, "none"
    for token in name.split("+"):
        token = token.strip()
        if token in _ROTATION_TOKENS:
            rotation = _ROTATION_TOKENS[token]
        elif token in _DENSITY_TOKENS:
            density = _DENSITY_TOKENS[token]
        elif token == "clean":
            noise = 0.0
        elif token in T.PCPNET_NOISE:
            noise = T.PCPNET_NOISE[token]
        elif token.startswith("noise="):
            noise = float(token.removeprefix("noise="))
        else:
            raise ValueError(
                f"bad protocol token {token!r} in {name!r}: expected aligned|z|so3|o3, "
                f"clean|noise_low|noise_med|noise_high|noise=<x>, uniform|gradient|stripes"
            )
    return Protocol(name, rotation, (noise,), (density,), num_points)


class ProtocolDataset(Dataset):
    """A dataset of raw clouds seen through a :class:`Protocol`.

    Args:
        base: dataset returning :class:`~torch_geometric.data.Data` with ``pos``, ``normal``.
        protocol: the pipeline applied to every item.
        seed: evaluation seed; ``None`` draws a fresh seed per item from the torch RNG
            (training augmentation).
    """

    def __init__(self, base: Dataset, protocol: Protocol, seed: int | None = 0) -> None:
        self.base = base
        self.protocol = protocol
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def item_seed(self, index: int) -> int:
        """The generator seed of item ``index``."""
        if self.seed is None:
            return int(torch.randint(2**62, ()))
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1, np.uint64)[0])

    def __getitem__(self, index: int) -> Data:
        generator = torch.Generator().manual_seed(self.item_seed(index))
        return self.protocol(self.base[index], generator)


def protocol_datasets(
    base: Dataset, names: Sequence[str], num_points: int | None, seed: int
) -> list[ProtocolDataset]:
    """One seeded :class:`ProtocolDataset` per protocol name, all over ``base``."""
    return [ProtocolDataset(base, get_protocol(n, num_points), seed) for n in names]
