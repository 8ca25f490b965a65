"""Ensembles of PET models with one architecture run in one stacked pass."""

import json

import numpy as np
import pytest
import torch
from conftest import molecule, perturbed, tiny_pet, triclinic_alloy
from ecse_helpers import ToyBackbone
from metatensor.torch import Labels
from metatomic.torch import ModelOutput

from pet_mta import PET, Ensemble
from pet_mta.hypers import MODEL_HYPERS
from pet_mta.neighbors import systems_from_ase
from pet_mta.stacked import stack_members

TYPES = (1, 6, 8, 13, 29)
TARGETS = {
    "energy": {"unit": "eV", "quantity": "energy"},
    "mtt::dipole": {"kind": "cartesian", "unit": "e*angstrom"},
    "non_conservative_stress": {"kind": "stress", "unit": "eV/A^3"},
}
VARIANTS = {
    "default": {},
    "post-LN, LayerNorm, SiLU, residual read-out": dict(
        normalization="LayerNorm",
        activation="SiLU",
        transformer_type="PostLN",
        featurizer_type="residual",
        num_attention_layers=2,
    ),
    "distance-only edges, radial basis, cosine cutoff": dict(
        edge_embedding="distance", radial_basis=4, cutoff_function="Cosine"
    ),
    "central stream, post-LN": dict(central_stream=True, transformer_type="PostLN"),
    "edge stream, 3 layers": dict(edge_stream=True, num_gnn_layers=3),
}


def outputs(kind):
    return {name: ModelOutput(sample_kind=kind) for name in TARGETS}


def predictions(ensemble, atoms_list, kind, selected_atoms=None):
    """Every output of the ensemble (members' mean, ensemble, uncertainty), and the
    gradients of the mean energy with respect to positions and cells."""
    systems = systems_from_ase(
        atoms_list, ensemble, dtype=torch.float64, positions_requires_grad=True
    )
    for system in systems:
        system.cell.requires_grad_(True)
    requests = outputs(kind)
    requests["energy_uncertainty"] = ModelOutput(sample_kind=kind)
    requests["energy_ensemble"] = ModelOutput(sample_kind=kind)
    result = ensemble(systems, requests, selected_atoms)
    values = {k: v.block().values.detach() for k, v in result.items()}
    inputs = [s.positions for s in systems] + [systems[0].cell]
    grads = torch.autograd.grad(result["energy"].block().values.sum(), inputs)
    return values, grads


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stacked_pass_equals_members_one_by_one(variant):
    members = [
        perturbed(
            tiny_pet(TYPES, seed=seed, targets=TARGETS, **VARIANTS[variant]), seed=seed
        )
        for seed in range(3)
    ]
    stacked = Ensemble(members)
    one_by_one = Ensemble(members, stack=False)
    assert stacked.is_stacked and not one_by_one.is_stacked
    atoms = [molecule(), triclinic_alloy()]
    selection = Labels(["system", "atom"], torch.tensor([[0, 2], [1, 0], [1, 3]]))
    for kind, selected in (("system", None), ("atom", None), ("atom", selection)):
        ours, our_grads = predictions(stacked, atoms, kind, selected)
        theirs, their_grads = predictions(one_by_one, atoms, kind, selected)
        assert float(theirs["energy_uncertainty"].abs().max()) > 1e-4
        for name in theirs:
            torch.testing.assert_close(
                ours[name], theirs[name], rtol=0, atol=1e-12, equal_nan=True
            )
        for ours_grad, their_grad in zip(our_grads, their_grads):
            torch.testing.assert_close(ours_grad, their_grad, rtol=0, atol=1e-12)


def test_chunks_do_not_change_the_stacked_pass():
    members = [tiny_pet(TYPES, seed=seed) for seed in range(2)]
    whole = stack_members(members)
    chunked = stack_members(members)
    chunked.tokens_per_chunk = 2 * 8  # a few atoms per chunk and member
    systems = systems_from_ase([triclinic_alloy().repeat(2)], members[0])
    request = {"energy": ModelOutput(sample_kind="atom")}
    pairs = zip(
        whole.predict_members(systems, request),
        chunked.predict_members(systems, request),
    )
    for a, b in pairs:
        torch.testing.assert_close(
            a["energy"].block().values, b["energy"].block().values, rtol=0, atol=1e-12
        )


def test_exported_members_are_stacked(tmp_path):
    paths = []
    for seed in range(2):
        path = tmp_path / f"member-{seed}.pt"
        tiny_pet(TYPES, seed=seed).export().save(str(path))
        paths.append(str(path))
    ensemble = Ensemble(paths)
    assert ensemble.is_stacked
    # only the stacked weights are kept, not a copy of every member
    assert not any(key.startswith("members.") for key in ensemble.state_dict())
    exported = ensemble.export()
    path = tmp_path / "ensemble.pt"
    exported.save(str(path))
    atoms = [molecule()]
    request = {"energy": ModelOutput(sample_kind="system")}
    systems = systems_from_ase(atoms, ensemble, dtype=torch.float64)
    result = torch.jit.load(str(path)).module(systems, request, None)
    # the one-by-one ensemble (no stacked model) exports too, and agrees
    one_by_one = tmp_path / "one-by-one.pt"
    Ensemble(paths, stack=False).export().save(str(one_by_one))
    reference = torch.jit.load(str(one_by_one)).module(systems, request, None)
    np.testing.assert_allclose(
        result["energy"].block().values.detach(),
        reference["energy"].block().values.detach(),
        atol=1e-12,
    )


def test_only_one_architecture_is_stacked():
    base = tiny_pet(TYPES, seed=0)
    assert not Ensemble([base, tiny_pet(TYPES, seed=1, d_pet=8)]).is_stacked
    assert not Ensemble([base, tiny_pet(TYPES, seed=1, cutoff=3.0)]).is_stacked
    assert not Ensemble([base, tiny_pet((1, 6, 8, 13), seed=1)]).is_stacked
    foreign = ToyBackbone()
    assert stack_members([base, foreign]) is None
    assert Ensemble([base, tiny_pet(TYPES, seed=1)]).is_stacked


def test_the_stacked_model_is_a_pet_with_the_members_layers():
    """One source: the stack is a PET built with a member axis, with the members'
    state-dict entries (stacked), so a new layer of PET reaches it by itself."""
    members = [tiny_pet(TYPES, seed=seed, targets=TARGETS) for seed in range(3)]
    stacked = stack_members(members)
    assert isinstance(stacked, PET) and stacked.n_members == 3
    assert set(stacked.state_dict()) == set(members[0].state_dict())
    for key, value in stacked.state_dict().items():
        own = [m.state_dict()[key] for m in members]
        if value.shape == own[0].shape:
            assert all(torch.equal(value, o) for o in own)
        else:
            assert torch.equal(value, torch.stack(own))
    assert not any(p.requires_grad for p in stacked.parameters())
    with pytest.raises(ValueError, match="predict_members"):
        stacked(systems_from_ase([molecule()], members[0]), outputs("system"))
    with pytest.raises(ValueError, match="single model"):
        stacked.export()


def test_stacked_features_equal_each_members_features():
    """Outputs the ensemble does not average (features, last-layer features) come
    out of the stacked pass too, member by member."""
    members = [
        tiny_pet(TYPES, seed=seed, featurizer_type="residual") for seed in range(2)
    ]
    stacked = stack_members(members)
    systems = systems_from_ase([molecule(), triclinic_alloy()], members[0])
    request = {
        name: ModelOutput(sample_kind="atom")
        for name in ("energy", "feature", "mtt::aux::energy_last_layer_features")
    }
    selection = Labels(["system", "atom"], torch.tensor([[0, 1], [1, 2]]))
    for selected in (None, selection):
        results = stacked.predict_members(systems, request, selected)
        assert len(results) == 2
        for member, result in zip(members, results):
            expected = member(systems, request, selected)
            for name in request:
                torch.testing.assert_close(
                    result[name].block().values,
                    expected[name].block().values,
                    rtol=0,
                    atol=1e-12,
                )


def test_architecture_survives_export_and_rebuilds_the_model(tmp_path):
    model = tiny_pet(TYPES, targets=TARGETS, normalization="LayerNorm")
    path = tmp_path / "model.pt"
    model.export().save(str(path))
    scripted = torch.jit.load(str(path)).module
    assert scripted.architecture == model.architecture
    again = PET.from_architecture(scripted.architecture)
    assert again.architecture == model.architecture
    again.load_state_dict(model.state_dict())  # same entries and shapes


def test_architecture_older_than_an_option_rebuilds_its_legacy_value():
    """An architecture string written before the hyper-parameters with a legacy value
    (``radial_basis``, ``central_stream``, ...) existed rebuilds the model those
    versions had: it takes the old model's weights (a default-valued model would
    not: other shapes) and has their legacy values."""
    legacy = {h.name: h.legacy[0] for h in MODEL_HYPERS if h.legacy}
    assert {"radial_basis", "central_stream", "edge_embedding"} <= set(legacy)
    model = tiny_pet(TYPES, targets=TARGETS, **legacy)
    spec = json.loads(model.architecture)
    for name in legacy:
        del spec["hypers"][name]
    again = PET.from_architecture(json.dumps(spec))
    assert {name: again.hypers[name] for name in legacy} == legacy
    again.load_state_dict(model.state_dict())  # same entries and shapes


def test_members_with_other_tables_are_not_stacked():
    """Entries without a member axis (here the species table) must agree."""
    first, second = tiny_pet(TYPES, seed=0), tiny_pet(TYPES, seed=1)
    assert stack_members([first, second]) is not None
    second.type_to_index[1] = 2  # H read as O: no longer the same model layout
    assert stack_members([first, second]) is None
