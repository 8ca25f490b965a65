"""pet_mta as a metatrain architecture (optional: needs ``pip install pet-mta[train]``).

Installing pet_mta puts a re-export of this package into metatrain's own package
(``metatrain/pet_mta/``, from ``adapter/``), so ``name: pet_mta`` in an
``mtt train`` options file selects it.
"""

from .model import PETModel
from .trainer import Trainer

__model__ = PETModel
__trainer__ = Trainer
__capabilities__ = {
    "supported_devices": __model__.__supported_devices__,
    "supported_dtypes": __model__.__supported_dtypes__,
}

__authors__ = [("pet_mta developers", "")]
__maintainers__ = [("pet_mta developers", "")]

__all__ = ["PETModel", "Trainer"]
