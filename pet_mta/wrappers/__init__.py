"""Models that wrap other metatomic models (symmetrization, ...)."""

from .ecse import Symmetrized, distance_only_auxiliary
from .loading import Backbone, load_model

__all__ = ["Backbone", "Symmetrized", "distance_only_auxiliary", "load_model"]
