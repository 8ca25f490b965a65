"""ECSE: loading path, export -> load -> ASE, and the ``symmetrize`` command."""

import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy
from ecse_helpers import evaluate
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator

from pet_mta import Symmetrized
from pet_mta.cli import main
from pet_mta.wrappers import load_model


@pytest.mark.parametrize(
    "mode, auxiliary",
    [("whole", "rotation-average"), ("local", "rotation-average"), ("local", None)],
)
def test_export_load_ase(tmp_path, mode, auxiliary):
    """Exported (TorchScript) wrappers give the Python module's numbers, with and
    without an auxiliary model."""
    pet = tiny_pet(num_gnn_layers=1)
    model = Symmetrized(pet, mode=mode, auxiliary=auxiliary)
    atoms = molecule() if mode == "whole" else triclinic_alloy()
    expected = evaluate(model, atoms)
    path = str(tmp_path / "ecse.pt")
    model.export().save(path)
    loaded = load_atomistic_model(path)
    capabilities = loaded.capabilities()
    assert "ecse::variance::energy" in capabilities.outputs
    if mode == "whole":
        assert capabilities.interaction_range == float("inf")
    else:
        assert capabilities.interaction_range == pytest.approx(pet.cutoff)
    atoms.calc = MetatomicCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(
        expected["energy"][0], rel=1e-12
    )
    np.testing.assert_allclose(atoms.get_forces(), expected["forces"], atol=1e-10)


def test_symmetrize_command_wraps_an_exported_file(tmp_path):
    pet = tiny_pet(num_gnn_layers=1)
    source = str(tmp_path / "pet.pt")
    pet.export().save(source)
    target = str(tmp_path / "sym.pt")
    assert main(["symmetrize", source, "-o", target, "--inversion"]) == 0
    # the same numbers as wrapping the Python module
    atoms = molecule()
    atoms.calc = MetatomicCalculator(target)
    expected = evaluate(Symmetrized(pet, inversion=True), atoms)
    assert atoms.get_potential_energy() == pytest.approx(
        expected["energy"][0], rel=1e-12
    )
    # and wrapping the file in Python works too
    backbone = load_model(source)
    assert backbone.dtype == torch.float64
    assert backbone.outputs["energy"].unit == "eV"
    from_file = evaluate(Symmetrized(source, inversion=True), atoms)
    assert from_file["energy"][0] == pytest.approx(expected["energy"][0], rel=1e-12)
