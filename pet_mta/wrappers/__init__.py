"""Models that wrap other metatomic models (symmetrization, ...)."""

from .ecse import Symmetrized
from .loading import Backbone, load_model

__all__ = ["Backbone", "Symmetrized", "load_model"]
