"""pet_mta: the Point Edge Transformer as a native metatomic model."""

from ._version import __version__
from .model import PET
from .targets import Target
from .wrappers.ecse import Symmetrized
from .wrappers.ensemble import Ensemble

__all__ = ["Ensemble", "PET", "Symmetrized", "Target", "__version__"]
