"""ECSE: the stress the engines compute is the strain derivative of the energy."""

import ase.build
import numpy as np
import pytest
import torch
from conftest import tiny_pet
from ecse_helpers import evaluate

from pet_mta import Symmetrized
from pet_mta.evaluation import compute_properties


def sheared_pair() -> ase.Atoms:
    """Two atoms (Cu, Al) in a rattled, sheared (triclinic) fcc cell."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    shear = np.array([[1.0, 0.05, -0.08], [0.1, 1.0, 0.06], [-0.04, 0.07, 1.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.numbers[1] = 13
    atoms.rattle(0.1, seed=7)
    return atoms


def strained_energy(model, atoms, a, b, shift):
    """Energy with positions and cell deformed by ``1 + shift e_a e_b^T``."""
    deformation = np.eye(3)
    deformation[a, b] += shift
    strained = atoms.copy()
    strained.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
    with torch.no_grad():
        return float(compute_properties(model, strained, False, False)["energy"])


def strain_derivative(model, atoms, h=1e-5):
    """``dE/dstrain / V``, all nine components by central differences."""
    result = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            plus = strained_energy(model, atoms, a, b, h)
            minus = strained_energy(model, atoms, a, b, -h)
            result[a, b] = (plus - minus) / (2 * h) / atoms.get_volume()
    return result


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_stress_is_the_strain_derivative(mode):
    # small cutoff: each atom has its 12 nearest neighbours only (2.5 A)
    model = Symmetrized(tiny_pet(num_gnn_layers=1, cutoff=3.0), mode=mode)
    atoms = sheared_pair()
    result = evaluate(model, atoms)
    stress = result["stress"]
    scale = np.abs(stress).max()
    assert scale > 1e-3, "the cell is strained: the stress must not vanish"
    # the cell gradient alone is not the stress (the sum of r x F term matters)
    assert np.abs(result["forces"]).max() > 1e-2
    finite = strain_derivative(model, atoms)
    # truncation h^2 E''' and round-off 1e-16 E / h: ~1e-10 of the stress
    np.testing.assert_allclose(stress, finite, rtol=0, atol=1e-7 * scale)
    # an invariant energy has a symmetric stress (antisymmetric strain = rotation)
    np.testing.assert_allclose(stress, stress.T, rtol=0, atol=1e-10 * scale)
