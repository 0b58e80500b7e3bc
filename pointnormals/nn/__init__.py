"""Equivariant layers built on tensor frames (plain ``nn.Module``s, no Lightning/Hydra),
the TF-PointNet++ model and its checkpoints (:func:`load_model`, :func:`save_model`)."""

from .change_frame import ToGlobal, ToLocal
from .checkpoint import load_model, save_model
from .interpolate import TensorialInterpolation
from .point_conv import TensorialPointConv
from .receiver_frames import in_receiver_frames
from .tf_pointnet import Stage, TFPointNet, normalize_clouds

__all__ = [
    "Stage",
    "TFPointNet",
    "TensorialInterpolation",
    "TensorialPointConv",
    "ToGlobal",
    "ToLocal",
    "in_receiver_frames",
    "load_model",
    "normalize_clouds",
    "save_model",
]
