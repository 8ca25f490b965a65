"""Every non-default architecture option: forces = -dE/dx and stress = dE/dstrain / V
(finite differences, float64), and no jump when an atom crosses the cutoff."""

import ase
import numpy as np
import pytest
from conftest import molecule, tiny_pet, triclinic_alloy

from pet_mta.evaluation import compute_properties

CUTOFF = 3.5

# one option away from the defaults (pet_mta/hypers.py), then the original PET's
# choices all together
OPTIONS = {
    "PostLN": dict(transformer_type="PostLN"),
    "LayerNorm": dict(normalization="LayerNorm"),
    "SiLU": dict(activation="SiLU"),
    "Cosine": dict(cutoff_function="Cosine"),
    "temperature": dict(attention_temperature=2.5),
    "residual": dict(featurizer_type="residual"),
    "distance": dict(edge_embedding="distance"),
    "central_stream": dict(central_stream=True),
    "radial_basis": dict(radial_basis=6),
    "all": dict(
        transformer_type="PostLN",
        normalization="LayerNorm",
        activation="SiLU",
        cutoff_function="Cosine",
        attention_temperature=0.5,
        featurizer_type="residual",
    ),
}
parametrize = pytest.mark.parametrize("name", list(OPTIONS))


def model_with(name):
    return tiny_pet(cutoff=CUTOFF, cutoff_width=0.5, **OPTIONS[name])


def energy(model, atoms):
    return float(compute_properties(model, atoms, False, False)["energy"])


def slope(model, atoms, change, h=1e-5):
    """Central difference ``dE/dt`` of ``E(change(atoms, t))`` at ``t = 0``."""
    plus = energy(model, change(atoms, h))
    minus = energy(model, change(atoms, -h))
    return (plus - minus) / (2 * h)


def displaced(direction):
    def change(atoms, t):
        moved = atoms.copy()
        moved.positions += t * direction
        return moved

    return change


def strained(strain):
    def change(atoms, t):
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ (np.eye(3) + t * strain), scale_atoms=True)
        return moved

    return change


@parametrize
def test_option_reaches_the_model(name):
    atoms = molecule()
    assert abs(energy(model_with(name), atoms) - energy(tiny_pet(), atoms)) > 1e-6


@parametrize
@pytest.mark.parametrize("make", [molecule, triclinic_alloy])
def test_forces_and_stress_are_energy_derivatives(name, make):
    model = model_with(name)
    atoms = make()
    result = compute_properties(model, atoms)
    forces = result["forces"]
    assert np.abs(forces).max() > 1e-3
    rng = np.random.default_rng(0)
    # random directions: every component of every force enters each check
    for _ in range(2):
        direction = rng.normal(size=forces.shape)
        expected = -np.sum(forces * direction)
        numeric = slope(model, atoms, displaced(direction))
        # truncation h^2 E''' and round-off 1e-16 E / h: ~1e-10
        assert abs(numeric - expected) < 1e-7 * np.abs(forces).sum(), name
    if atoms.pbc.all():
        strain = rng.normal(size=(3, 3))
        expected = atoms.get_volume() * np.sum(result["stress"] * strain)
        numeric = slope(model, atoms, strained(strain))
        assert abs(expected) > 1e-3
        assert abs(numeric - expected) < 1e-7 * abs(expected), name


def carbon_and_oxygen(d):
    """Only the C-O distance (= d) is near the cutoff."""
    return ase.Atoms(
        "CHHO", positions=[[0, 0, 0], [0.9, 0.5, 0], [-0.6, 0.9, 0.0], [d, 0.0, 0.0]]
    )


@parametrize
def test_no_jump_when_an_atom_crosses_the_cutoff(name):
    model = model_with(name)
    for delta in (1e-4, 1e-6):
        inside = compute_properties(
            model, carbon_and_oxygen(CUTOFF - delta), stress=False
        )
        outside = compute_properties(
            model, carbon_and_oxygen(CUTOFF + delta), stress=False
        )
        f_in, f_out = inside["forces"], outside["forces"]
        # O also moves relative to the H atoms: the energy changes by the work of
        # the force (trapezoid rule), nothing more, and the forces barely change.
        # The cosine switch's second derivative jumps at the cutoff (by
        # (pi / width)^2 / 2 = 20 / A^2): the trapezoid rule then misses O(delta^2)
        # (measured 1.1 delta^2 eV / A^2); a jump in the energy stays as it is
        work = -0.5 * (f_in[3, 0] + f_out[3, 0]) * 2 * delta
        step = float(outside["energy"] - inside["energy"])
        assert abs(step - work) < 1e-11 + 3 * delta**2, (name, delta, step, work)
        np.testing.assert_allclose(f_in, f_out, atol=20 * delta)


@parametrize
def test_neighbour_at_the_cutoff_adds_nothing(name):
    model = model_with(name)
    pair = ase.Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]])
    separate = energy(model, pair) + energy(model, ase.Atoms("H"))
    # the new H is within the cutoff of C only; the cosine switch is (pi x)^2 / 4
    # at x = gap / width from the cutoff: 1e-11 here
    gap = 1e-6
    entering = pair + ase.Atoms("H", positions=[[-(CUTOFF - gap), 0, 0]])
    assert abs(energy(model, entering) - separate) < 1e-10
    # and it does interact once inside the switching region
    inside = pair + ase.Atoms("H", positions=[[-(CUTOFF - 0.25), 0, 0]])
    assert abs(energy(model, inside) - separate) > 1e-6
