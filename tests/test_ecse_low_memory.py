"""ECSE local mode with ``low_memory``: the same energies and first derivatives."""

import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy
from ecse_helpers import evaluate, make_systems
from metatomic.torch import ModelOutput

from pet_mta import Symmetrized


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_same_energy_forces_and_stress(structure):
    pet = tiny_pet(num_gnn_layers=2)
    atoms = (
        molecule() if structure == "molecule" else triclinic_alloy().repeat((2, 1, 1))
    )
    # small batches: every atom's frames are spread over several batches
    reference = evaluate(
        Symmetrized(pet, mode="local", batch_size=7, low_memory=False), atoms
    )
    low = Symmetrized(pet, mode="local", batch_size=7, low_memory=True)
    result = evaluate(low, atoms)
    assert np.abs(reference["forces"]).max() > 1e-3
    for name in reference:
        np.testing.assert_allclose(result[name], reference[name], rtol=0, atol=1e-12)


def test_per_atom_energies_keep_their_own_gradients():
    pet = tiny_pet(num_gnn_layers=2)
    atoms = molecule()
    gradients = []
    for low in (False, True):
        model = Symmetrized(pet, mode="local", batch_size=5, low_memory=low)
        systems = make_systems(atoms, model)
        energies = model(systems, {"energy": ModelOutput(sample_kind="atom")})
        values = energies["energy"].block().values
        gradients.append(torch.autograd.grad(values[3, 0], systems[0].positions)[0])
    assert gradients[0].abs().max() > 1e-3
    torch.testing.assert_close(gradients[1], gradients[0], rtol=0, atol=1e-12)


def test_scripted_and_without_gradients():
    pet = tiny_pet(num_gnn_layers=1)
    model = torch.jit.script(Symmetrized(pet, mode="local", low_memory=True))
    systems = make_systems(molecule(), Symmetrized(pet, mode="local"))
    request = {"energy": ModelOutput(sample_kind="system")}
    with torch.no_grad():
        value = model(systems, request, None)["energy"].block().values
    expected = Symmetrized(pet, mode="local")(systems, request)["energy"]
    torch.testing.assert_close(value, expected.block().values.detach())


def test_limits():
    pet = tiny_pet(
        num_gnn_layers=1,
        targets={
            "energy": {"unit": "eV", "quantity": "energy"},
            "mtt::dipole": {"kind": "cartesian", "unit": "e*angstrom"},
        },
    )
    with pytest.raises(ValueError, match="local and auto modes"):
        Symmetrized(pet, mode="whole", low_memory=True)
    model = Symmetrized(pet, mode="local", low_memory=True)
    with pytest.raises(ValueError, match="scalar outputs only"):
        evaluate(model, molecule(), outputs=("energy", "mtt::dipole"))
