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


def _least_squares(frames, energies):
    """Baseline ``{13: b_Al, 29: b_Cu}`` and the RMS per-atom residual, from numpy's
    least squares on the species counts (independent of ``fit_composition``)."""
    counts = np.array([[np.sum(a.numbers == z) for z in (13, 29)] for a in frames])
    weights = np.linalg.lstsq(counts, np.asarray(energies), rcond=None)[0]
    per_atom = (energies - counts @ weights) / counts.sum(axis=1)
    return dict(zip((13, 29), weights)), np.sqrt(np.mean(per_atom**2))


def test_stored_in_model():
    model = tiny_pet(atomic_types=[13, 29])
    frames = _frames()
    rng = np.random.default_rng(4)
    energies = []
    for atoms in frames:
        n_al = (atoms.numbers == 13).sum()
        energy = -1.0 * n_al - 2.0 * (len(atoms) - n_al) + rng.normal(scale=0.05)
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        energies.append(energy)
    expected, scale = _least_squares(frames, energies)
    assert scale > 1e-3, "the composition must not explain the data exactly"
    fit_energy_baseline(model, frames)
    assert model.get_baseline("energy") == pytest.approx(expected, rel=1e-6)
    # predictions: scale x raw network output + per-species baseline
    raw = tiny_pet(atomic_types=[13, 29])
    for atoms in (ase.Atoms("Cu"), frames[0]):
        energy = compute_properties(model, atoms, forces=False, stress=False)
        raw_energy = compute_properties(raw, atoms, forces=False, stress=False)
        offset = sum(expected[int(z)] for z in atoms.numbers)
        assert energy["energy"] == pytest.approx(
            scale * raw_energy["energy"] + offset, rel=1e-6
        )


def test_unknown_species_in_data():
    with pytest.raises(ValueError, match="atomic type 79"):
        fit_composition([ase.Atoms("Au")], [1.0], [13, 29])
