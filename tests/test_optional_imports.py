"""Missing extras: skipped in a plain ``pytest`` run, failures under tox and CI
(``PET_MTA_REQUIRE_EXTRAS=1``)."""

import optional_imports
import pytest
from _pytest.outcomes import Failed, Skipped

MISSING = "pet_mta_no_such_module"


def test_missing_extra_is_skipped_by_default(monkeypatch):
    monkeypatch.setattr(optional_imports, "REQUIRED", False)
    with pytest.raises((Failed, Skipped), match=f"{MISSING} does not import") as info:
        optional_imports.require(MISSING, "engines")
    assert info.type is Skipped


def test_missing_extra_fails_when_extras_are_required(monkeypatch):
    monkeypatch.setattr(optional_imports, "REQUIRED", True)
    with pytest.raises(
        (Failed, Skipped), match="pip install 'pet-mta\\[engines\\]'"
    ) as info:
        optional_imports.require(MISSING, "engines")
    assert info.type is Failed


def test_present_module_is_returned(monkeypatch):
    monkeypatch.setattr(optional_imports, "REQUIRED", True)
    assert optional_imports.require("json", "test").dumps([1]) == "[1]"


def test_tox_requires_the_extras():
    """tox (and so CI, which runs tox) sets the variable for every test run."""
    import configparser
    from pathlib import Path

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(Path(__file__).parents[1] / "tox.ini")
    assert "PET_MTA_REQUIRE_EXTRAS = 1" in tox["testenv"]["setenv"]
