"""Local frames: the :class:`Frames` object and equivariant frame constructions."""

from .frames import Frames  # noqa: I001  (first: the constructions import it)
from .base import FrameBuilder
from .gram_schmidt import gram_schmidt_frames
from .identity import IdentityFrames
from .learned import FrameUpdate, LearnedFrames
from .pca import PCAFrames
from .random import RandomFrames, random_orthogonal
from .three_nn import ThreeNNFrames

__all__ = [
    "FrameBuilder",
    "FrameUpdate",
    "Frames",
    "IdentityFrames",
    "LearnedFrames",
    "PCAFrames",
    "RandomFrames",
    "ThreeNNFrames",
    "gram_schmidt_frames",
    "random_orthogonal",
]

_BUILDERS = {
    "identity": IdentityFrames,
    "random": RandomFrames,
    "pca": PCAFrames,
    "three_nn": ThreeNNFrames,
    "learned": LearnedFrames,
}


def build_frames(spec: str | dict) -> FrameBuilder:
    """A frame construction from a plain spec, e.g. ``{"kind": "pca", "k": 16}``.

    >>> build_frames("identity")
    IdentityFrames()
    """
    spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = spec.pop("kind", None)
    if kind not in _BUILDERS:
        raise ValueError(f"unknown frames kind {kind!r}; expected one of {sorted(_BUILDERS)}")
    return _BUILDERS[kind](**spec)


__all__ += ["build_frames"]
