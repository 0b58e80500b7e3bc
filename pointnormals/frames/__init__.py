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
