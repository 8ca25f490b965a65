"""NaN or infinite positions or cells are refused before any neighbour list is built.

vesin dies with SIGFPE on such input: a missing check kills the test process.
"""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from conftest import triclinic_alloy

from pet_mta.evaluation import compute_properties
from pet_mta.metrics import prediction_errors
from pet_mta.neighbors import systems_from_ase


def broken_alloy(where: str, value: float):
    atoms = triclinic_alloy()
    if where == "positions":
        atoms.positions[2, 1] = value
    else:
        cell = atoms.cell.array.copy()
        cell[1, 1] = value
        atoms.cell = cell
    return atoms


CASES = [
    ("positions", np.nan, "has NaN or infinite atomic positions"),
    ("positions", -np.inf, "has NaN or infinite atomic positions"),
    ("cell", np.nan, "has a NaN or infinite cell"),
    ("cell", np.inf, "has a NaN or infinite cell"),
]


@pytest.mark.parametrize("where, value, message", CASES)
def test_systems_from_ase_names_the_system(model64, where, value, message):
    frames = [triclinic_alloy(), broken_alloy(where, value)]
    with pytest.raises(ValueError, match="system 1 " + message):
        systems_from_ase(frames, model64)


@pytest.mark.parametrize("where, value, message", CASES)
def test_compute_properties(model64, where, value, message):
    with pytest.raises(ValueError, match=message):
        compute_properties(model64, broken_alloy(where, value))


@pytest.mark.parametrize("where, value, message", CASES)
def test_prediction_errors_names_the_structure(where, value, message):
    good = triclinic_alloy()
    good.calc = EMT()
    good.get_potential_energy()
    frames = [good, good.copy(), broken_alloy(where, value)]
    with pytest.raises(ValueError, match="structure 2 " + message):
        prediction_errors(frames, EMT())


def test_prediction_errors_without_labels():
    with pytest.raises(ValueError, match="none of the 2 structures has an energy"):
        prediction_errors([triclinic_alloy(), triclinic_alloy()], EMT())
