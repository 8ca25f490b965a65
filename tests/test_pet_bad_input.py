"""Bad input gives a clear error (or a documented result), never silent garbage."""

import ase
import numpy as np
import pytest
import torch
from conftest import triclinic_alloy
from metatomic.torch import ModelOutput, System

from pet_mta import PET
from pet_mta.evaluation import compute_properties
from pet_mta.neighbors import add_neighbor_lists, systems_from_ase

ENERGY = {"energy": ModelOutput(sample_kind="system")}


def test_unknown_species_names_them(model64):
    atoms = ase.Atoms("CuAu", positions=[[0, 0, 0], [2.5, 0, 0]])
    with pytest.raises(ValueError, match=r"\[79\].*\[1, 6, 8, 13, 29\]"):
        compute_properties(model64, atoms)


@pytest.mark.parametrize("where", ["positions", "cell"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input(model64, where, value):
    atoms = triclinic_alloy()
    systems = systems_from_ase([atoms], model64)
    system = systems[0]
    positions, cell = system.positions.clone(), system.cell.clone()
    if where == "positions":
        positions[1, 2] = value
    else:
        cell[0, 0] = value
    broken = System(types=system.types, positions=positions, cell=cell, pbc=system.pbc)
    options = model64.requested_neighbor_lists()[0]
    broken.add_neighbor_list(options, system.get_neighbor_list(options))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model64([broken], ENERGY, None)


def test_empty_system_gives_zero(model64):
    empty = System(
        types=torch.zeros(0, dtype=torch.int32),
        positions=torch.zeros((0, 3), dtype=torch.float64),
        cell=torch.zeros((3, 3), dtype=torch.float64),
        pbc=torch.tensor([False, False, False]),
    )
    other = systems_from_ase([triclinic_alloy()], model64)[0]
    add_neighbor_lists([empty], model64)
    result = model64([empty, other], ENERGY, None)["energy"].block().values.detach()
    assert result.shape == (2, 1)
    assert float(result[0, 0]) == 0.0
    alone = model64([other], ENERGY, None)["energy"].block().values.detach()
    assert float(result[1, 0]) == pytest.approx(float(alone[0, 0]), abs=1e-12)
    per_atom = model64([empty], {"energy": ModelOutput(sample_kind="atom")}, None)
    assert per_atom["energy"].block().values.shape == (0, 1)


def test_overlapping_atoms(model64):
    atoms = ase.Atoms("CH", positions=[[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="overlapping atoms"):
        compute_properties(model64, atoms)


def test_unknown_output(model64, alloy):
    systems = systems_from_ase([alloy], model64)
    with pytest.raises(ValueError, match="cannot compute the output 'dipole'.*energy"):
        model64(systems, {"dipole": ModelOutput()}, None)


def test_wrong_dtype(model64, alloy):
    systems = systems_from_ase([alloy], model64, dtype=torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        model64(systems, ENERGY, None)


def test_unconvertible_length_unit():
    model = PET(atomic_types=[1], length_unit="parsec", d_pet=8, num_heads=2)
    with pytest.raises(ValueError, match="unit 'parsec'"):
        model.export()


def test_bad_hypers():
    with pytest.raises(ValueError, match="unknown PET hyper-parameter 'd_pett'"):
        PET(atomic_types=[1], d_pett=8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        PET(atomic_types=[1], d_pet=10, num_heads=4)
    with pytest.raises(ValueError, match="zbl"):
        PET(atomic_types=[1], zbl=True)
    with pytest.raises(ValueError, match="at least one atomic number"):
        PET(atomic_types=[])
