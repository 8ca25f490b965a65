"""metatrain's entry to the ``pet_mta`` architecture.

Installing pet_mta (wheel or editable) copies this folder into metatrain's own
package as ``metatrain/pet_mta/``: metatrain (2026.4) discovers architectures only
as folders there, so ``name: pet_mta`` then works like one of its own architectures.
The architecture is :mod:`pet_mta.metatrain`; keep this file a re-export (an
editable install copies it once, so changes here need a re-install).
"""

from pet_mta.metatrain import (  # noqa: F401
    PETModel,
    Trainer,
    __authors__,
    __capabilities__,
    __maintainers__,
    __model__,
    __trainer__,
)
