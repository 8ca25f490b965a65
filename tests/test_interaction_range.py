"""``interaction_range`` is the ghost-shell width domain-decomposed engines need.

LAMMPS with several MPI ranks gives each rank its own atoms plus "ghost" copies of
every atom (periodic images included) within the model's ``interaction_range``
of its sub-domain, evaluates the model on this non-periodic cut-out with
``selected_atoms`` = its own atoms, and sums the forces on ghosts back onto their
owners. Here two "ranks" split a periodic box in halves along x and do the same.
"""

import itertools

import ase
import ase.build
import numpy as np
import pytest
import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput

from pet_mta import PET
from pet_mta.neighbors import systems_from_ase

CUTOFF = 3.0
LAYERS = 2


@pytest.fixture(scope="module")
def model() -> PET:
    torch.manual_seed(0)
    model = PET(
        atomic_types=[28, 29],
        cutoff=CUTOFF,
        cutoff_width=0.5,
        d_pet=16,
        d_head=16,
        d_node=16,
        d_feedforward=32,
        num_heads=2,
        num_gnn_layers=LAYERS,
    )
    return model.to(torch.float64).eval()


@pytest.fixture(scope="module")
def periodic() -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((4, 3, 3))
    atoms.symbols[::3] = "Ni"
    atoms.rattle(0.1, seed=7)
    atoms.wrap()
    return atoms


def interaction_range(model: PET) -> float:
    return float(model.export().capabilities().interaction_range)


def energies_and_forces(model, atoms, selected=None):
    """Per-atom energies of ``selected`` atoms and gradient of their sum."""
    systems = systems_from_ase([atoms], model, positions_requires_grad=True)
    if selected is not None:
        values = torch.stack([torch.zeros_like(selected), selected], dim=1)
        selected = Labels(["system", "atom"], values.to(torch.int32))
    output = model(systems, {"energy": ModelOutput(sample_kind="atom")}, selected)
    block = output["energy"].block()
    energies = block.values.reshape(-1)
    energies.sum().backward()
    atom = block.samples.column("atom")
    return atom.numpy(), energies.detach().numpy(), -systems[0].positions.grad.numpy()


def rank_cutout(atoms: ase.Atoms, x_range, ghost_width: float):
    """Local atoms of the slab ``x_range`` (Å) plus ghosts within ``ghost_width``.

    :return: the non-periodic cut-out, the index in ``atoms`` of every cut-out
        atom, and the number of local atoms (they come first)
    """
    cell = atoms.cell.array
    lengths = np.diag(cell)  # orthorhombic box
    low = np.array([x_range[0], 0.0, 0.0])
    high = np.array([x_range[1], lengths[1], lengths[2]])
    local, ghosts = [], []
    for shift in itertools.product([-1, 0, 1], repeat=3):
        images = atoms.positions + np.array(shift) @ cell
        outside = np.maximum(low - images, 0.0) + np.maximum(images - high, 0.0)
        distance = np.linalg.norm(outside, axis=1)
        for i in np.nonzero(distance < ghost_width)[0]:
            is_local = shift == (0, 0, 0) and distance[i] == 0.0
            is_local = is_local and images[i, 0] < x_range[1]
            (local if is_local else ghosts).append((i, images[i]))
    entries = local + ghosts
    index = np.array([i for i, _ in entries])
    cutout = ase.Atoms(
        numbers=atoms.numbers[index],
        positions=np.array([p for _, p in entries]),
        pbc=False,
    )
    return cutout, index, len(local)


def decomposed(model, atoms, ghost_width):
    """Per-atom energies and forces assembled from two 'ranks' (halves along x)."""
    half = atoms.cell[0, 0] / 2
    energies = np.full(len(atoms), np.nan)
    forces = np.zeros((len(atoms), 3))
    owned = 0
    for x_range in [(0.0, half), (half, atoms.cell[0, 0])]:
        cutout, index, n_local = rank_cutout(atoms, x_range, ghost_width)
        selected = torch.arange(n_local)
        atom, local_energies, cutout_forces = energies_and_forces(
            model, cutout, selected
        )
        energies[index[atom]] = local_energies
        # "reverse communication": forces on ghosts go back to their owners
        np.add.at(forces, index, cutout_forces)
        owned += n_local
    assert owned == len(atoms)
    return energies, forces


def test_exported_interaction_range_is_layers_times_cutoff(model):
    assert interaction_range(model) == pytest.approx(LAYERS * CUTOFF)


def test_ghost_shell_of_interaction_range_reproduces_periodic_run(model, periodic):
    width = interaction_range(model)
    atom, expected_energies, expected_forces = energies_and_forces(model, periodic)
    assert np.array_equal(atom, np.arange(len(periodic)))

    energies, forces = decomposed(model, periodic, width)
    np.testing.assert_allclose(energies, expected_energies, rtol=0, atol=1e-10)
    np.testing.assert_allclose(forces, expected_forces, rtol=0, atol=1e-10)
    assert np.abs(expected_forces).max() > 1e-2


def test_thinner_ghost_shell_changes_predictions(model, periodic):
    """One cutoff of ghosts is not enough with two message-passing layers."""
    _, expected_energies, _ = energies_and_forces(model, periodic)
    energies, _ = decomposed(model, periodic, CUTOFF)
    assert np.abs(energies - expected_energies).max() > 1e-6
