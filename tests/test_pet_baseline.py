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


def test_scale_is_the_rms_of_the_per_atom_residual():
    frames = _frames(n=4000, seed=1)
    rng = np.random.default_rng(2)
    # per-atom energies -2 + noise of standard deviation 0.1
    energies = [len(a) * (-2.0 + rng.normal(scale=0.1)) for a in frames]
    _, scale = fit_composition(frames, energies, [13, 29])
    assert scale == pytest.approx(0.1, rel=0.05)


def test_forces_set_the_scale_when_larger():
    """Energies trained with forces: the scale is the mean absolute force component
    times 1 Å when that is larger than the energy residual (so raw outputs change by
    O(1) per Å)."""
    frames = _frames(n=400, seed=1)
    rng = np.random.default_rng(3)
    energies = [len(a) * (-2.0 + rng.normal(scale=0.01)) for a in frames]
    forces = [rng.normal(scale=0.5, size=(len(a), 3)) for a in frames]
    _, energy_only = fit_composition(frames, energies, [13, 29])
    _, with_forces = fit_composition(frames, energies, [13, 29], forces=forces)
    assert energy_only == pytest.approx(0.01, rel=0.1)
    # mean |x| of a normal distribution: sigma * sqrt(2 / pi)
    assert with_forces == pytest.approx(0.5 * np.sqrt(2 / np.pi), rel=0.05)
    # small forces leave the energy scale
    small = [0.001 * f for f in forces]
    _, with_small = fit_composition(frames, energies, [13, 29], forces=small)
    assert with_small == energy_only


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
