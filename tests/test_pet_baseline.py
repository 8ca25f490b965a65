"""Composition baseline and scale fitted from data and stored in the model."""

import ase
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import tiny_pet

from pet_mta.baseline import fit_composition, fit_energy_baseline
from pet_mta.evaluation import compute_properties


def _frames(n=12, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        numbers = rng.choice([13, 29], size=rng.integers(2, 9))
        atoms = ase.Atoms(numbers=numbers, positions=rng.normal(size=(len(numbers), 3)))
        frames.append(atoms)
    return frames


def test_recovers_exact_composition_energies():
    frames = _frames()
    truth = {13: -3.5, 29: -4.25}
    energies = [sum(truth[int(z)] for z in a.numbers) for a in frames]
    baseline, scale = fit_composition(frames, energies, [13, 29])
    assert baseline[13] == pytest.approx(-3.5, abs=1e-6)
    assert baseline[29] == pytest.approx(-4.25, abs=1e-6)
    assert scale == 1.0  # nothing left to scale


def test_scale_matches_per_atom_noise():
    frames = _frames(n=4000, seed=1)
    rng = np.random.default_rng(2)
    energies = [
        -2.0 * len(a) + rng.normal(scale=0.1, size=len(a)).sum() for a in frames
    ]
    _, scale = fit_composition(frames, energies, [13, 29])
    assert scale == pytest.approx(0.1, rel=0.05)


def test_stored_in_model():
    model = tiny_pet(atomic_types=[13, 29])
    frames = _frames()
    for atoms in frames:
        energy = -1.0 * (atoms.numbers == 13).sum() - 2.0 * (atoms.numbers == 29).sum()
        atoms.calc = SinglePointCalculator(atoms, energy=energy + 0.01)
    baseline, scale = fit_energy_baseline(model, frames)
    assert model.get_baseline("energy") == pytest.approx(baseline)
    isolated = compute_properties(model, ase.Atoms("Cu"), forces=False, stress=False)
    raw = tiny_pet(atomic_types=[13, 29])
    raw_isolated = compute_properties(raw, ase.Atoms("Cu"), forces=False, stress=False)
    assert isolated["energy"] == pytest.approx(
        scale * raw_isolated["energy"] + baseline[29], abs=1e-10
    )


def test_unknown_species_in_data():
    with pytest.raises(ValueError, match="atomic type 79"):
        fit_composition([ase.Atoms("Au")], [1.0], [13, 29])
