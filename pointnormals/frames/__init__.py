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
    """A frame construction from plain data: a short name, or a ``_target_`` dict (what
    configs and checkpoints hold, so that any :class:`FrameBuilder` class loads).

    >>> build_frames("identity")
    IdentityFrames()
    >>> build_frames({"_target_": "pointnormals.frames.PCAFrames", "k": 8}).k
    8
    """
    if isinstance(spec, str):
        if spec not in _BUILDERS:
            raise ValueError(f"unknown frames {spec!r}; expected one of {sorted(_BUILDERS)}")
        return _BUILDERS[spec]()
    import importlib

    spec = dict(spec)
    target = spec.pop("_target_", None)
    module, _, name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, FrameBuilder)):
        raise ValueError(f"frames: _target_ {target!r} is not a FrameBuilder class")
    return cls(**spec)


def target_of(name: str) -> str:
    """The ``_target_`` of a short name: ``"pca"`` → ``"pointnormals.frames.PCAFrames"``."""
    return f"{__name__}.{_BUILDERS[name].__name__}"


__all__ += ["build_frames", "target_of"]
