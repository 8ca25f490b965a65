"""ECSE: smoothness across the adaptive inner cutoff and the collinear gate, and
forces = -dE/dx."""

import ase
import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet
from ecse_helpers import evaluate, make_systems

from pet_mta import Symmetrized
from pet_mta.wrappers import distance_only_auxiliary
from pet_mta.wrappers.ecse.frames import frames_per_group


def frame_count(model, atoms):
    system = make_systems(atoms, model)[0]
    nl = system.get_neighbor_list(model.frame_list)
    frames, weights, _, aux = frames_per_group(
        nl.samples.column("first_atom").to(torch.long),
        nl.values.reshape(-1, 3).detach(),
        len(atoms),
        torch.zeros(len(atoms), dtype=torch.long),
        1,
        model.hypers,
        False,
    )
    return frames.shape[0], float(aux[0])


def residual(model, structures):
    """Sum over steps of |energy step - work of the autograd forces| (trapezoid).

    For a smooth path it falls like h^2 with the step h; a jump keeps it at the size
    of the jump.
    """
    results = [evaluate(model, atoms) for atoms in structures]
    total = 0.0
    for k in range(len(structures) - 1):
        dx = structures[k + 1].positions - structures[k].positions
        work = -0.5 * np.sum((results[k]["forces"] + results[k + 1]["forces"]) * dx)
        step = results[k + 1]["energy"][0] - results[k]["energy"][0]
        total += abs(step - work)
    return total


def check_smooth_path(model, make, start, stop, n=16):
    coarse = residual(model, [make(t) for t in np.linspace(start, stop, n)])
    fine = residual(model, [make(t) for t in np.linspace(start, stop, 4 * n - 3)])
    # 4x smaller steps: ~16x smaller for a smooth path, unchanged for a jump
    assert fine < coarse / 6, (coarse, fine)


@pytest.mark.parametrize(
    "mode", ["whole", pytest.param("local", marks=pytest.mark.slow)]
)
def test_neighbour_crossing_inner_cutoff(mode):
    pet = tiny_pet(num_gnn_layers=1)
    # without pruning: the radial switches and the adaptive r_in alone (the
    # pruning makes weights vary on mA scales, tested below)
    model = Symmetrized(pet, mode=mode, n_prunings=0)
    base = molecule()
    direction = base.positions[4] - base.positions[0]
    direction /= np.linalg.norm(direction)

    def make(t):
        atoms = base.copy()
        atoms.positions[4] += t * direction
        return atoms

    counts = {frame_count(model, make(t))[0] for t in np.linspace(1.0, 1.1, 11)}
    assert len(counts) > 1, "the path must change the set of frames"
    check_smooth_path(model, make, 1.0, 1.1, n=10)


def test_collinear_gate_and_auxiliary_switch():
    pet = tiny_pet(num_gnn_layers=1)
    model = Symmetrized(pet, auxiliary=distance_only_auxiliary(pet))

    def make(angle):
        theta = np.radians(angle)
        return ase.Atoms(
            "OCO",
            positions=[
                [-1.16, 0, 0],
                [0, 0, 0],
                [1.16 * np.cos(theta), 1.16 * np.sin(theta), 0],
            ],
        )

    auxes = [frame_count(model, make(a))[1] for a in np.linspace(0.0, 40.0, 41)]
    assert auxes[0] == 1.0 and auxes[-1] == 0.0
    assert any(0.0 < a < 1.0 for a in auxes), "the path must cross the gate"
    check_smooth_path(model, make, 0.0, 40.0, n=21)


def test_pruning_is_continuous():
    model = Symmetrized(tiny_pet(num_gnn_layers=1), n_prunings=4)
    base = molecule()
    direction = base.positions[4] - base.positions[0]
    direction /= np.linalg.norm(direction)

    def make(t):
        atoms = base.copy()
        atoms.positions[4] += t * direction
        return atoms

    counts = {frame_count(model, make(t))[0] for t in np.linspace(0.975, 0.985, 5)}
    assert len(counts) > 1, "frames must be pruned along the path"
    levels = [
        residual(model, [make(t) for t in np.linspace(0.975, 0.985, n)])
        for n in (6, 21, 81)
    ]
    # steep but continuous: the residual keeps falling (a jump would not)
    assert levels[1] < levels[0] / 2 and levels[2] < levels[1] / 3, levels


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_finite_difference_forces(mode):
    model = Symmetrized(tiny_pet(num_gnn_layers=1), mode=mode)
    atoms = molecule()
    forces = evaluate(model, atoms)["forces"]
    h = 1e-4

    def energy(atom, axis, shift):
        moved = atoms.copy()
        moved.positions[atom, axis] += shift
        return evaluate(model, moved)["energy"][0]

    for atom, axis in [(0, 0), (3, 1), (5, 2)]:
        # five-point stencil: O(h^4) truncation, so steep switches do not matter
        numeric = -(
            -energy(atom, axis, 2 * h)
            + 8 * energy(atom, axis, h)
            - 8 * energy(atom, axis, -h)
            + energy(atom, axis, -2 * h)
        ) / (12 * h)
        assert abs(numeric - forces[atom, axis]) < 1e-6 * max(
            1.0, abs(forces[atom, axis])
        )
