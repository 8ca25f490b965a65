"""pet_mta as a metatrain architecture (optional: needs ``pip install pet-mta[train]``).

metatrain imports this package as ``metatrain.pet_mta`` through the bridge module
``_pet_mta_metatrain_bridge`` (installed with pet_mta), so ``name: pet_mta`` in an
``mtt train`` options file selects it.
"""

import _pet_mta_metatrain_bridge

from .model import PETModel
from .trainer import Trainer

_pet_mta_metatrain_bridge.install()

__model__ = PETModel
__trainer__ = Trainer
__capabilities__ = {
    "supported_devices": __model__.__supported_devices__,
    "supported_dtypes": __model__.__supported_dtypes__,
}

__authors__ = [("pet_mta developers", "")]
__maintainers__ = [("pet_mta developers", "")]

__all__ = ["PETModel", "Trainer"]
