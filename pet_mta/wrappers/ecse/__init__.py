"""ECSE: exact rotational symmetrization of any metatomic model."""

from .frames import FrameHypers
from .symmetrized import FRAME_DEFAULTS, Symmetrized

__all__ = ["FRAME_DEFAULTS", "FrameHypers", "Symmetrized"]
