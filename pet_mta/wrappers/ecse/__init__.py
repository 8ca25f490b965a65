"""ECSE: exact rotational symmetrization of any metatomic model."""

from .frames import FrameHypers
from .symmetrized import FRAME_DEFAULTS, PUBLISHED_INNER_CUTOFF, Symmetrized

__all__ = ["FRAME_DEFAULTS", "PUBLISHED_INNER_CUTOFF", "FrameHypers", "Symmetrized"]
