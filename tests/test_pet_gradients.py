"""Forces and stress from autograd equal finite differences of the energy (fp64)."""

import numpy as np
import pytest
from conftest import molecule, perturbed, tiny_pet, triclinic_alloy

from pet_mta.evaluation import compute_properties


def _energy(model, atoms):
    return float(compute_properties(model, atoms, forces=False, stress=False)["energy"])


@pytest.mark.parametrize("hypers", [{}, {"edge_stream": True}], ids=["", "stream"])
@pytest.mark.parametrize("make", [triclinic_alloy, molecule])
def test_forces_are_minus_energy_gradient(make, hypers):
    model = perturbed(tiny_pet(**hypers))
    atoms = make()
    forces = compute_properties(model, atoms, stress=False)["forces"]
    assert np.abs(forces).max() > 1e-6, "forces should not vanish for a rattled cell"
    h = 1e-5
    finite = np.zeros_like(forces)
    for i in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, a] += h
            minus.positions[i, a] -= h
            finite[i, a] = -(_energy(model, plus) - _energy(model, minus)) / (2 * h)
    np.testing.assert_allclose(forces, finite, atol=1e-8, rtol=1e-6)


def test_stress_is_strain_derivative():
    model = tiny_pet()
    atoms = triclinic_alloy()
    stress = compute_properties(model, atoms)["stress"]
    assert np.abs(stress).max() > 1e-8
    h = 1e-5
    finite = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                strained = atoms.copy()
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                strained.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
                energies.append(_energy(model, strained))
            finite[a, b] = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
    np.testing.assert_allclose(stress, finite, atol=1e-9, rtol=1e-6)


def test_systems_from_ase_gives_cell_gradients():
    from metatomic.torch import ModelOutput

    from pet_mta.neighbors import systems_from_ase

    model = tiny_pet()
    atoms = triclinic_alloy()
    systems = systems_from_ase(
        [atoms], model, positions_requires_grad=True, cell_requires_grad=True
    )
    energy = model(systems, {"energy": ModelOutput()}, None)["energy"].block().values
    energy.sum().backward()
    assert systems[0].cell.grad is not None
    assert float(systems[0].cell.grad.abs().max()) > 0
