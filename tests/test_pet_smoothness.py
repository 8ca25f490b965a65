"""Energy and forces are continuous when an atom crosses the cutoff sphere."""

import ase
import numpy as np
from conftest import tiny_pet

from pet_mta.evaluation import compute_properties

CUTOFF = 3.5


def _evaluate(model, d):
    # only the C-O distance (= d) crosses the cutoff for d around 3.5 Å
    atoms = ase.Atoms(
        "CHHO",
        positions=[[0, 0, 0], [0.9, 0.5, 0], [-0.6, 0.9, 0.0], [d, 0.0, 0.0]],
    )
    result = compute_properties(model, atoms, stress=False)
    return float(result["energy"]), result["forces"]


def test_no_jump_at_the_cutoff():
    model = tiny_pet(cutoff=CUTOFF, cutoff_width=0.5)
    for delta in (1e-4, 1e-6):
        e_in, f_in = _evaluate(model, CUTOFF - delta)
        e_out, f_out = _evaluate(model, CUTOFF + delta)
        # moving O also moves it relative to the H atoms: the energy changes by the
        # work of the force, nothing more (no jump), and the forces barely change
        work = -0.5 * (f_in[3, 0] + f_out[3, 0]) * 2 * delta
        assert abs((e_out - e_in) - work) < 1e-11
        np.testing.assert_allclose(f_in, f_out, atol=20 * delta)


def test_energy_lipschitz_through_switching_region():
    model = tiny_pet(cutoff=CUTOFF, cutoff_width=0.5)
    distances = np.linspace(2.9, 3.6, 701)
    energies, forces = zip(*(_evaluate(model, d) for d in distances))
    energies, forces = np.array(energies), np.array(forces)
    step = distances[1] - distances[0]
    # |dE| between neighbouring points bounded by (max force on O) * step
    assert (
        np.abs(np.diff(energies)).max() <= 1.01 * step * np.abs(forces[:, 3, 0]).max()
    )
    # the force on O along x is the negative slope of the energy curve
    slope = -np.gradient(energies, step)
    np.testing.assert_allclose(slope[1:-1], forces[1:-1, 3, 0], atol=1e-4)
    # the interaction switches on: the energy changes across the switching region
    assert abs(energies[0] - energies[-1]) > 1e-6


def test_entering_neighbour_has_no_effect_at_cutoff():
    model = tiny_pet(cutoff=CUTOFF, cutoff_width=0.5)
    base = ase.Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]])
    e_base = float(compute_properties(model, base, stress=False)["energy"])
    e_h = float(compute_properties(model, ase.Atoms("H"), stress=False)["energy"])
    for gap in (1e-3, 1e-5):
        # the new H is within the cutoff of C only (H-H distance is 4.6 Å)
        atoms = ase.Atoms(
            "CHH", positions=[[0, 0, 0], [1.1, 0, 0], [-(CUTOFF - gap), 0, 0]]
        )
        e = float(compute_properties(model, atoms, stress=False)["energy"])
        assert abs(e - (e_base + e_h)) < 1e-9
