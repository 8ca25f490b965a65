"""Per-atom and per-system outputs, selected atoms, extra targets, features."""

import ase
import numpy as np
import pytest
import torch
from conftest import triclinic_alloy
from metatensor.torch import Labels
from metatomic.torch import ModelOutput

from pet_mta import PET
from pet_mta.evaluation import compute_properties
from pet_mta.neighbors import systems_from_ase


def _run(model, frames, outputs, selected_atoms=None):
    systems = systems_from_ase(frames, model)
    return model(systems, outputs, selected_atoms)


def test_per_atom_energies_sum_to_total(model64):
    frames = [triclinic_alloy(1), triclinic_alloy(2).repeat((1, 1, 2))]
    per_atom = _run(model64, frames, {"energy": ModelOutput(sample_kind="atom")})
    total = _run(model64, frames, {"energy": ModelOutput(sample_kind="system")})
    block = per_atom["energy"].block()
    assert block.samples.names == ["system", "atom"]
    assert block.values.shape == (4 + 8, 1)
    sums = torch.zeros(2, dtype=torch.float64).index_add(
        0, block.samples.column("system"), block.values[:, 0]
    )
    torch.testing.assert_close(sums, total["energy"].block().values[:, 0])
    assert total["energy"].block().properties.names == ["energy"]


def test_selected_atoms(model64):
    frames = [triclinic_alloy(1), triclinic_alloy(2)]
    full = _run(model64, frames, {"energy": ModelOutput(sample_kind="atom")})
    selection = Labels(["system", "atom"], torch.tensor([[0, 2], [1, 0], [1, 3]]))
    chosen = _run(
        model64, frames, {"energy": ModelOutput(sample_kind="atom")}, selection
    )["energy"].block()
    assert chosen.samples == selection
    values = full["energy"].block().values[:, 0]
    expected = torch.stack([values[2], values[4], values[7]])
    torch.testing.assert_close(chosen.values[:, 0], expected)
    summed = _run(
        model64, frames, {"energy": ModelOutput(sample_kind="system")}, selection
    )["energy"].block()
    torch.testing.assert_close(
        summed.values[:, 0], torch.stack([values[2], values[4] + values[7]])
    )
    with pytest.raises(ValueError, match="selected atom"):
        bad = Labels(["system", "atom"], torch.tensor([[1, 4]]))
        _run(model64, frames, {"energy": ModelOutput(sample_kind="atom")}, bad)


def test_isolated_atom_and_atoms_without_neighbours(model64):
    single = compute_properties(model64, ase.Atoms("Cu"), per_atom=True)
    assert np.isfinite(single["energy"])
    np.testing.assert_array_equal(single["forces"], 0.0)
    # a bonded pair plus a far atom: the far atom's energy is the isolated one
    atoms = ase.Atoms("CHCu", positions=[[0, 0, 0], [1.1, 0, 0], [20.0, 0, 0]])
    result = compute_properties(model64, atoms, per_atom=True)
    assert np.all(np.isfinite(result["forces"]))
    assert abs(result["energies"][2] - single["energy"]) < 1e-12
    np.testing.assert_array_equal(result["forces"][2], 0.0)
    assert np.abs(result["forces"][:2]).max() > 0
    # also in a periodic cell too large for any neighbour
    box = ase.Atoms("Cu", cell=[10, 10, 10], pbc=True)
    assert abs(compute_properties(model64, box)["energy"] - single["energy"]) < 1e-12


def test_baseline_and_scale(model64, alloy):
    before = compute_properties(model64, alloy, per_atom=True)
    model64.set_scale("energy", 2.0)
    model64.set_baseline("energy", {29: -3.0, 13: 1.5})
    after = compute_properties(model64, alloy, per_atom=True)
    n_cu = int((alloy.numbers == 29).sum())
    n_al = len(alloy) - n_cu
    expected = 2.0 * before["energy"] - 3.0 * n_cu + 1.5 * n_al
    assert abs(after["energy"] - expected) < 1e-10
    np.testing.assert_allclose(after["forces"], 2.0 * before["forces"], atol=1e-12)
    assert model64.get_baseline("energy")[29] == -3.0
    with pytest.raises(ValueError, match="atomic type 47"):
        model64.set_baseline("energy", {47: 1.0})


def test_dipole_target_and_features():
    model = PET(
        atomic_types=[1, 6],
        targets={
            "energy": {"unit": "eV", "quantity": "energy"},
            "mtt::dipole": {"kind": "cartesian", "unit": "e*angstrom"},
        },
        d_pet=16,
        d_head=8,
        d_node=12,
        d_feedforward=16,
        num_heads=2,
    ).double()
    atoms = ase.build.molecule("CH4")
    outputs = {
        "mtt::dipole": ModelOutput(sample_kind="system"),
        "feature": ModelOutput(sample_kind="atom"),
        "mtt::aux::energy_last_layer_features": ModelOutput(sample_kind="system"),
        "energy": ModelOutput(sample_kind="system"),
    }
    result = _run(model, [atoms], outputs)
    dipole = result["mtt::dipole"].block()
    assert dipole.values.shape == (1, 3, 1)
    assert dipole.components[0].names == ["xyz"]
    assert result["feature"].block().values.shape == (5, 12 + 16)
    last = result["mtt::aux::energy_last_layer_features"].block().values
    assert last.shape == (1, 2 * 8 * 1)
    # the energy is an affine function of the last-layer features
    readout = model.readouts["energy"]
    w = torch.cat(
        [readout.node_heads[0].last.weight, readout.edge_heads[0].last.weight], 1
    )
    n_atoms = len(atoms)
    energy = last @ w.T + n_atoms * readout.node_heads[0].last.bias
    torch.testing.assert_close(energy, result["energy"].block().values)
    with pytest.raises(ValueError, match="mtt::dipole"):
        PET(atomic_types=[1], targets={"dipole": {"kind": "cartesian"}})
    ase_dipole = _run(model, [atoms], {"mtt::dipole": ModelOutput(sample_kind="atom")})
    torch.testing.assert_close(
        ase_dipole["mtt::dipole"].block().values.sum(0), dipole.values[0]
    )
