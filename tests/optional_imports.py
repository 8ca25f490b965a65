"""Optional dependencies of the tests (pet_mta's ``train`` and ``engines`` extras).

Without them, the tests that need them are skipped, so that ``pytest`` runs with a
plain install. tox and CI install every extra and set ``PET_MTA_REQUIRE_EXTRAS=1``:
there a missing or broken extra is a failure, not a skip. metatrain is probed as
``metatrain.utils.architectures``: pet_mta's adapter (``metatrain/pet_mta/``) makes a
bare ``import metatrain`` succeed even without metatrain.
"""

import importlib
import os
from types import ModuleType

import pytest

REQUIRED = os.environ.get("PET_MTA_REQUIRE_EXTRAS", "") == "1"


def unavailable(message: str) -> None:
    """Skip the calling test (or module), or fail it when extras are required."""
    if REQUIRED:
        pytest.fail(f"{message} (PET_MTA_REQUIRE_EXTRAS=1)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` of the extra ``extra``, or :func:`unavailable`."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        unavailable(
            f"{module} does not import ({error}): pip install 'pet-mta[{extra}]'"
        )
