"""Equivariant layers built on tensor frames (plain ``nn.Module``s, no Lightning/Hydra)."""

from .change_frame import ToGlobal, ToLocal
from .message_passing import TensorialMessagePassing
from .point_conv import TensorialPointConv

__all__ = ["TensorialMessagePassing", "TensorialPointConv", "ToGlobal", "ToLocal"]
