"""Wrappers of saved and foreign models: what the engine must compute reaches the
backbone, and a saved wrapper evaluates (in ASE's metatomic calculator)."""

import ase
import ase.build
import numpy as np
import pytest
from conftest import molecule, tiny_pet
from ecse_helpers import evaluate, save_pair_potential
from metatomic.torch import ModelOutput, load_atomistic_model
from metatomic_ase import MetatomicCalculator

from pet_mta import Ensemble, Symmetrized


def trimer() -> ase.Atoms:
    """Ni3, non-equilateral (frames exist, the pair potential is not trivial)."""
    return ase.Atoms("Ni3", positions=[[0, 0, 0], [2.4, 0, 0], [0.7, 2.2, 0.3]])


def nickel_cell() -> ase.Atoms:
    """A rattled 4-atom fcc Ni cell (periodic images within the cutoff)."""
    atoms = ase.build.bulk("Ni", "fcc", a=3.52, cubic=True)
    atoms.rattle(0.1, seed=4)
    return atoms


def ase_results(path: str, atoms: ase.Atoms):
    """Energy and forces of a saved model, with metatomic's ASE calculator."""
    atoms = atoms.copy()
    atoms.calc = MetatomicCalculator(path, uncertainty_threshold=None)
    return atoms.get_potential_energy(), atoms.get_forces()


def cutoffs(path: str):
    return sorted(
        o.cutoff for o in load_atomistic_model(path).requested_neighbor_lists()
    )


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_symmetrized_file_keeps_the_backbone_lists(tmp_path, mode):
    pet = tiny_pet(cutoff=4.0)  # two layers: interaction_range 8
    source = str(tmp_path / "pet.pt")
    pet.export().save(source)
    target = str(tmp_path / "sym.pt")
    Symmetrized(source, outer_cutoff=5.0, mode=mode).export().save(target)
    # the backbone's own list (4.0) besides the frames' (5.0) and, in local mode,
    # the receptive fields' (8.0)
    assert 4.0 in cutoffs(target) and 5.0 in cutoffs(target)
    # far from the molecule, an H2 without frames: in local mode its atoms get
    # the rotation-average auxiliary, the backbone on the whole structure
    atoms = molecule()
    atoms.extend(ase.Atoms("H2", positions=[[0, 0, 9.0], [0, 0, 9.8]]))
    energy, forces = ase_results(target, atoms)
    expected = evaluate(Symmetrized(pet, outer_cutoff=5.0, mode=mode), atoms)
    assert energy == pytest.approx(expected["energy"][0], rel=1e-12)
    np.testing.assert_allclose(forces, expected["forces"], atol=1e-10)


def test_auxiliary_file_keeps_its_lists(tmp_path):
    pet = tiny_pet(num_gnn_layers=1, cutoff=4.0)
    auxiliary = tiny_pet(num_gnn_layers=1, cutoff=3.0, edge_embedding="distance")
    path = str(tmp_path / "aux.pt")
    auxiliary.export().save(path)
    target = str(tmp_path / "sym.pt")
    Symmetrized(pet, auxiliary=path).export().save(target)
    assert 3.0 in cutoffs(target)
    # collinear: no frame at all, the prediction is the auxiliary model's
    atoms = ase.Atoms("OCO", positions=[[0, 0, 0], [1.16, 0, 0], [2.32, 0, 0]])
    energy, _ = ase_results(target, atoms)
    assert energy == pytest.approx(evaluate(auxiliary, atoms)["energy"][0], rel=1e-12)


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_invariant_half_list_pair_potential_comes_back_unchanged(tmp_path, mode):
    # total energy only: whole mode; per atom: both modes
    pair = save_pair_potential(str(tmp_path / "pair.pt"), per_atom=mode == "local")
    target = str(tmp_path / "sym.pt")
    Symmetrized(pair, mode=mode).export().save(target)
    for atoms in (trimer(), nickel_cell()):
        energy, forces = ase_results(target, atoms)
        plain_energy, plain_forces = ase_results(pair, atoms)
        assert abs(plain_energy) > 1e-3
        assert energy == pytest.approx(plain_energy, abs=1e-10)
        np.testing.assert_allclose(forces, plain_forces, atol=1e-10)


def test_ensemble_with_a_total_energy_member(tmp_path):
    pet = str(tmp_path / "pet.pt")
    tiny_pet(atomic_types=(28,), cutoff=3.5).export().save(pet)
    pair = save_pair_potential(str(tmp_path / "pair.pt"))
    target = str(tmp_path / "ensemble.pt")
    Ensemble([pet, pair]).export().save(target)
    outputs = load_atomistic_model(target).capabilities().outputs
    for name in ("energy", "energy_ensemble", "energy_uncertainty"):
        assert outputs[name].sample_kind == "system"

    for atoms in (trimer(), nickel_cell()):
        members = [ase_results(path, atoms) for path in (pet, pair)]
        atoms = atoms.copy()
        # the calculator's defaults (it asks for per-atom energies and
        # uncertainties where the model declares them)
        calculator = MetatomicCalculator(
            target,
            additional_outputs={
                "energy_uncertainty": ModelOutput(sample_kind="system")
            },
        )
        atoms.calc = calculator
        energy = atoms.get_potential_energy()
        assert energy == pytest.approx((members[0][0] + members[1][0]) / 2, abs=1e-10)
        np.testing.assert_allclose(
            atoms.get_forces(), (members[0][1] + members[1][1]) / 2, atol=1e-10
        )
        spread = calculator.additional_outputs["energy_uncertainty"].block().values
        spread = spread.detach()
        assert float(spread[0, 0]) == pytest.approx(
            abs(members[0][0] - members[1][0]) / np.sqrt(2), abs=1e-10
        )


def test_ensemble_files_with_different_cutoffs(tmp_path):
    paths = []
    for seed, cutoff in enumerate((3.0, 4.0)):
        path = str(tmp_path / f"member-{seed}.pt")
        tiny_pet(seed=seed, cutoff=cutoff, num_gnn_layers=1).export().save(path)
        paths.append(path)
    target = str(tmp_path / "ensemble.pt")
    Ensemble(paths).export().save(target)
    assert cutoffs(target) == [3.0, 4.0]
    atoms = molecule()
    energy, forces = ase_results(target, atoms)
    members = [ase_results(path, atoms) for path in paths]
    assert energy == pytest.approx((members[0][0] + members[1][0]) / 2, abs=1e-10)
    np.testing.assert_allclose(forces, (members[0][1] + members[1][1]) / 2, atol=1e-10)
