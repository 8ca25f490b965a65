"""pet_mta: the Point Edge Transformer as a native metatomic model."""

__version__ = "0.1.0"

from .model import PET  # noqa: E402
from .targets import Target  # noqa: E402
from .wrappers.ecse import Symmetrized  # noqa: E402
from .wrappers.ensemble import Ensemble  # noqa: E402

__all__ = ["Ensemble", "PET", "Symmetrized", "Target", "__version__"]
