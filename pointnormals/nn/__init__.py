"""Equivariant layers built on tensor frames (plain ``nn.Module``s, no Lightning/Hydra)."""

from .change_frame import ToGlobal, ToLocal
from .interpolate import TensorialInterpolation
from .message_passing import TensorialMessagePassing
from .point_conv import TensorialPointConv
from .tf_pointnet import Stage, TFPointNet, normalize_clouds

__all__ = [
    "Stage",
    "TFPointNet",
    "TensorialInterpolation",
    "TensorialMessagePassing",
    "TensorialPointConv",
    "ToGlobal",
    "ToLocal",
    "normalize_clouds",
]
