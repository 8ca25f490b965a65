"""float32: the same weights as in float64 give the same energies, forces and stress
(to the float32 round-off), and float32 forces are the gradient of float32 energies.

Tolerances. float32 rounds every operation to u = 6e-8 (relative). Over three seeds,
a molecule and a rattled crystal, the tiny model's float32 energies differ from
float64 by at most 6e-7 relative (1.3e-6 eV), forces by 4e-6 and stress by 3e-6 of
their largest component: the errors of a few hundred roundings that partly cancel.
The tests allow 1e-5 (energies) and 5e-5 (forces, stress), a factor ten above
these; a computation done in lower precision (bfloat16: 4e-3) or a float32-only
path that differs from the float64 one fails.
"""

import copy

import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy

from pet_mta.evaluation import compute_properties


def same_weights(seed):
    """A float32 PET and its float64 copy (exact: every float32 is a float64)."""
    single = tiny_pet(dtype=torch.float32, seed=seed)
    double = copy.deepcopy(single).to(torch.float64)
    assert next(single.parameters()).dtype == torch.float32
    return single, double


def rattled_crystal():
    atoms = triclinic_alloy()
    # forces well above their round-off (0.01 eV/A at the default rattle)
    atoms.rattle(0.2, seed=5)
    return atoms


def largest(values):
    return np.abs(values).max()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("make", [molecule, rattled_crystal])
def test_float32_agrees_with_float64(make, seed):
    single, double = same_weights(seed)
    atoms = make()
    result = compute_properties(single, atoms)
    reference = compute_properties(double, atoms)
    energy = float(reference["energy"])
    assert abs(float(result["energy"]) - energy) < 1e-5 * abs(energy)
    # far above the float32 round-off (~1e-6 eV/A), so the comparison means something
    assert largest(reference["forces"]) > 0.02
    np.testing.assert_allclose(
        result["forces"],
        reference["forces"],
        rtol=0,
        atol=5e-5 * largest(reference["forces"]),
    )
    if "stress" in reference:
        np.testing.assert_allclose(
            result["stress"],
            reference["stress"],
            rtol=0,
            atol=5e-5 * largest(reference["stress"]),
        )


def test_float32_forces_are_the_energy_gradient():
    """Five-point differences of float32 energies, step h = 0.01 A along unit
    directions: the energy round-off (<= 1.3e-6 eV) gives an error of at most
    1.5 x 1.3e-6 / h = 2e-4 eV/A, the truncation h^4 E^(5) / 30 = 3e-10 E^(5)
    nothing; the slopes are checked to 3e-4 eV/A (measured 2e-5), against slopes of
    0.1 eV/A or more."""
    single, _ = same_weights(0)
    atoms = molecule()
    forces = compute_properties(single, atoms, stress=False)["forces"]
    rng = np.random.default_rng(1)
    h = 0.01

    def energy(direction, t):
        moved = atoms.copy()
        moved.positions += t * direction
        return float(compute_properties(single, moved, False, False)["energy"])

    for _ in range(3):
        # along the forces, turned by a random part: a large slope
        direction = forces / np.linalg.norm(forces)
        direction += rng.normal(size=forces.shape) / np.sqrt(forces.size)
        direction /= np.linalg.norm(direction)
        expected = -np.sum(forces * direction)
        assert abs(expected) > 0.1
        numeric = (
            -energy(direction, 2 * h)
            + 8 * energy(direction, h)
            - 8 * energy(direction, -h)
            + energy(direction, -2 * h)
        ) / (12 * h)
        assert abs(numeric - expected) < 3e-4, (numeric, expected)
