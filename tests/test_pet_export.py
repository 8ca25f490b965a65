"""TorchScript, export -> save -> load round trip, capabilities, metadata."""

import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy
from metatomic.torch import (
    ModelEvaluationOptions,
    ModelOutput,
    check_atomistic_model,
    load_atomistic_model,
)

from pet_mta.evaluation import compute_properties
from pet_mta.neighbors import systems_from_ase


def test_torchscript_matches_eager(model64, alloy):
    scripted = torch.jit.script(model64)
    systems = systems_from_ase([alloy], model64)
    outputs = {"energy": ModelOutput(sample_kind="atom")}
    eager = model64(systems, outputs, None)["energy"].block().values
    script = scripted(systems, outputs, None)["energy"].block().values
    torch.testing.assert_close(eager, script, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_export_round_trip(tmp_path, dtype):
    model = tiny_pet(dtype=dtype)
    exported = model.export()
    capabilities = exported.capabilities()
    assert capabilities.dtype == ("float32" if dtype == torch.float32 else "float64")
    assert capabilities.atomic_types == [1, 6, 8, 13, 29]
    assert capabilities.interaction_range == pytest.approx(2 * 3.5)
    assert capabilities.length_unit == "angstrom"
    assert capabilities.outputs["energy"].unit == "eV"
    assert "cpu" in capabilities.supported_devices
    metadata = exported.metadata()
    assert "Pozdnyakov" in str(metadata)

    path = str(tmp_path / "model.pt")
    exported.save(path)
    check_atomistic_model(path)
    loaded = load_atomistic_model(path)

    for atoms in (triclinic_alloy(), molecule()):
        systems = systems_from_ase([atoms], model, positions_requires_grad=True)
        options = ModelEvaluationOptions(
            length_unit="angstrom",
            outputs={"energy": ModelOutput(sample_kind="system")},
        )
        energy = loaded(systems, options, check_consistency=True)["energy"]
        energy = energy.block().values
        value = float(energy.detach())
        (grad,) = torch.autograd.grad(energy.sum(), systems[0].positions)
        reference = compute_properties(model, atoms, stress=False)
        tolerance = 1e-5 if dtype == torch.float32 else 1e-11
        assert abs(value - reference["energy"]) < tolerance * max(
            1, abs(reference["energy"])
        )
        np.testing.assert_allclose(
            -grad.numpy(), reference["forces"], atol=tolerance * 10
        )


def test_export_does_not_alias_the_model(model64, alloy):
    exported = model64.export()
    before = compute_properties(model64, alloy, stress=False)["energy"]
    model64.set_scale("energy", 3.0)
    systems = systems_from_ase([alloy], model64)
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs={"energy": ModelOutput(sample_kind="system")}
    )
    value = exported(systems, options, check_consistency=True)["energy"]
    assert abs(float(value.block().values) - before) < 1e-12


def test_exported_model_serves_per_atom_and_per_system(model64, alloy):
    exported = model64.export()
    assert exported.capabilities().outputs["energy"].sample_kind == "atom"
    systems = systems_from_ase([alloy], model64)
    for kind, n_samples in (("atom", len(alloy)), ("system", 1)):
        options = ModelEvaluationOptions(
            length_unit="angstrom", outputs={"energy": ModelOutput(sample_kind=kind)}
        )
        result = exported(systems, options, check_consistency=True)["energy"]
        assert result.block().values.shape == (n_samples, 1)
