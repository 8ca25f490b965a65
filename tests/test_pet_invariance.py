"""Permutation, translation, re-wrapping, supercells, small cells, rotations."""

import ase.build
import numpy as np
import pytest
from conftest import molecule, tiny_pet, triclinic_alloy
from scipy.spatial.transform import Rotation

from pet_mta.evaluation import compute_properties


def _props(model, atoms):
    return compute_properties(model, atoms, per_atom=True)


def test_permutation_invariance(model64, alloy):
    reference = _props(model64, alloy)
    order = np.random.default_rng(0).permutation(len(alloy))
    permuted = _props(model64, alloy[order])
    assert abs(permuted["energy"] - reference["energy"]) < 1e-10
    np.testing.assert_allclose(
        permuted["forces"], reference["forces"][order], atol=1e-10
    )
    np.testing.assert_allclose(
        permuted["energies"], reference["energies"][order], atol=1e-10
    )


def test_translation_and_rewrapping(model64, alloy):
    reference = _props(model64, alloy)
    moved = alloy.copy()
    moved.positions += np.array([0.7, -1.3, 2.9])
    shifted = _props(model64, moved)
    moved.wrap()
    wrapped = _props(model64, moved)
    for other in (shifted, wrapped):
        assert abs(other["energy"] - reference["energy"]) < 1e-10
        np.testing.assert_allclose(other["forces"], reference["forces"], atol=1e-10)
        np.testing.assert_allclose(other["stress"], reference["stress"], atol=1e-10)


def test_supercell_is_extensive(model64, alloy):
    reference = _props(model64, alloy)
    supercell = _props(model64, alloy.repeat((2, 2, 2)))
    assert abs(supercell["energy"] - 8 * reference["energy"]) < 1e-9
    np.testing.assert_allclose(
        supercell["forces"][: len(alloy)], reference["forces"], atol=1e-10
    )
    np.testing.assert_allclose(supercell["stress"], reference["stress"], atol=1e-10)


def test_cell_smaller_than_cutoff():
    # one-atom fcc primitive cell (2.5 Å nearest neighbours) with a 5 Å cutoff:
    # neighbours come from many periodic images
    model = tiny_pet(cutoff=5.0)
    primitive = ase.build.bulk("Cu", "fcc", a=3.6)
    cubic = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    e_primitive = _props(model, primitive)["energy"]
    e_big = _props(model, cubic)["energy"]
    assert np.isfinite(e_primitive)
    assert abs(e_big - len(cubic) * e_primitive) < 1e-8


def test_mixed_periodicity_slab(model64):
    slab = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=5.0, a=3.6)
    slab.pbc = (True, True, False)
    slab.rattle(0.05, seed=2)
    reference = _props(model64, slab)
    moved = slab.copy()
    moved.positions[:, 2] += 3.0  # along the non-periodic direction: no wrapping
    moved.positions[:, 0] += 1.0
    other = _props(model64, moved)
    assert abs(other["energy"] - reference["energy"]) < 1e-10
    double = _props(model64, slab.repeat((2, 1, 1)))
    assert abs(double["energy"] - 2 * reference["energy"]) < 1e-9


@pytest.mark.parametrize("make", [molecule, triclinic_alloy])
def test_rotations(make):
    atoms = make()
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rotation.T
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)

    # PET is unconstrained: a generic rotation changes the prediction a little
    plain = tiny_pet()
    e0, e1 = _props(plain, atoms)["energy"], _props(plain, rotated)["energy"]
    assert abs(e0 - e1) > 1e-8

    # ... while the distance-only variant is exactly invariant, and forces rotate
    invariant = tiny_pet(edge_embedding="distance")
    r0, r1 = _props(invariant, atoms), _props(invariant, rotated)
    assert abs(r0["energy"] - r1["energy"]) < 1e-10
    np.testing.assert_allclose(r1["forces"], r0["forces"] @ rotation.T, atol=1e-10)


@pytest.mark.parametrize("central_stream", [False, True])
@pytest.mark.parametrize("tokens_per_chunk", [1, 64, 500])
def test_chunked_layers_change_nothing(alloy, tokens_per_chunk, central_stream):
    """Message-passing layers run on chunks of atoms (small intermediate tensors);
    any chunk size, down to one atom per chunk, gives the same numbers."""
    model64 = tiny_pet(central_stream=central_stream)
    atoms = alloy.repeat((2, 2, 1))
    reference = _props(model64, atoms)
    model64.tokens_per_chunk = tokens_per_chunk
    chunked = _props(model64, atoms)
    assert abs(chunked["energy"] - reference["energy"]) < 1e-10
    np.testing.assert_allclose(chunked["forces"], reference["forces"], atol=1e-12)
    np.testing.assert_allclose(chunked["stress"], reference["stress"], atol=1e-12)
    np.testing.assert_allclose(chunked["energies"], reference["energies"], atol=1e-12)
