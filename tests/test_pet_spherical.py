"""Spherical targets of the core model: blocks, samples, selection, export, baseline."""

import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy
from metatensor.torch import Labels
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model

from pet_mta import PET
from pet_mta.neighbors import systems_from_ase
from pet_mta.targets import Target

IRREPS = [(0, 1), (2, 1), (1, -1), (3, -1)]
N_PROPERTIES = 2


def _model() -> PET:
    targets = {
        "energy": {"unit": "eV", "quantity": "energy"},
        "mtt::tensor": {
            "kind": "spherical",
            "irreps": IRREPS,
            "n_properties": N_PROPERTIES,
        },
    }
    return tiny_pet(targets=targets)


def _frames():
    return [molecule(), triclinic_alloy(2)]


def test_blocks_and_per_system_sums():
    model = _model()
    systems = systems_from_ase(_frames(), model)
    per_atom = model(systems, {"mtt::tensor": ModelOutput(sample_kind="atom")})
    total = model(systems, {"mtt::tensor": ModelOutput(sample_kind="system")})
    tensor = per_atom["mtt::tensor"]
    assert tensor.keys.names == ["o3_lambda", "o3_sigma"]
    assert tensor.keys.values.tolist() == [list(irrep) for irrep in IRREPS]
    n_atoms = sum(len(frame) for frame in _frames())
    for (o3_lambda, _), block, summed in zip(
        IRREPS, tensor.blocks(), total["mtt::tensor"].blocks()
    ):
        assert block.values.shape == (n_atoms, 2 * o3_lambda + 1, N_PROPERTIES)
        assert block.components[0].names == ["o3_mu"]
        assert block.components[0].values[:, 0].tolist() == list(
            range(-o3_lambda, o3_lambda + 1)
        )
        assert block.properties.names == ["n"]
        assert summed.samples.names == ["system"]
        sums = torch.zeros_like(summed.values).index_add(
            0, block.samples.column("system"), block.values
        )
        torch.testing.assert_close(sums, summed.values)
        # unconstrained heads: every component is predicted, none is zero
        assert bool(torch.all(block.values != 0))


def test_selected_atoms_give_the_same_rows():
    model = _model()
    systems = systems_from_ase(_frames(), model)
    request = {"mtt::tensor": ModelOutput(sample_kind="atom")}
    full = model(systems, request)["mtt::tensor"]
    selection = Labels(["system", "atom"], torch.tensor([[0, 1], [1, 0], [1, 3]]))
    chosen = model(systems, request, selection)["mtt::tensor"]
    rows = [1, len(_frames()[0]), len(_frames()[0]) + 3]
    for block, reference in zip(chosen.blocks(), full.blocks()):
        assert block.samples == selection
        torch.testing.assert_close(block.values, reference.values[rows])


def test_exported_model_selects_outputs(tmp_path):
    model = _model()
    frames = _frames()
    systems = systems_from_ase(frames, model)
    eager = model(systems, {"mtt::tensor": ModelOutput(sample_kind="system")})
    path = str(tmp_path / "model.pt")
    model.export().save(path)
    loaded = load_atomistic_model(path)
    assert "mtt::tensor" in loaded.capabilities().outputs
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"mtt::tensor": ModelOutput(sample_kind="system")},
    )
    result = loaded(systems, options, check_consistency=True)
    assert list(result.keys()) == ["mtt::tensor"]
    assert result["mtt::tensor"].keys == eager["mtt::tensor"].keys
    for block, reference in zip(
        result["mtt::tensor"].blocks(), eager["mtt::tensor"].blocks()
    ):
        torch.testing.assert_close(block.values, reference.values)


def test_baseline_only_on_the_invariant_block():
    model = _model()
    readout = model.readouts["mtt::tensor"]
    assert readout.has_baseline
    target = model.target_list[1]
    assert target.invariant_columns == list(range(N_PROPERTIES))
    systems = systems_from_ase(_frames(), model)
    request = {"mtt::tensor": ModelOutput(sample_kind="atom")}
    before = model(systems, request)["mtt::tensor"]
    with torch.no_grad():
        readout.baseline[:, target.invariant_columns] = 2.5
    after = model(systems, request)["mtt::tensor"]
    for (o3_lambda, o3_sigma), old, new in zip(IRREPS, before.blocks(), after.blocks()):
        shift = 2.5 if (o3_lambda, o3_sigma) == (0, 1) else 0.0
        torch.testing.assert_close(new.values, old.values + shift)
    with pytest.raises(ValueError, match="not a scalar"):
        model.set_baseline("mtt::tensor", {1: 1.0})


def test_no_baseline_without_an_invariant_block():
    model = tiny_pet(
        targets={"mtt::vector": {"kind": "spherical", "irreps": [(1, 1), (0, -1)]}}
    )
    assert not model.readouts["mtt::vector"].has_baseline


@pytest.mark.parametrize(
    "irreps, match",
    [
        ([], "irreps must be given"),
        ([(-1, 1)], "o3_lambda >= 0"),
        ([(1, 0)], "o3_sigma"),
        ([(1, 1), (1, 1)], "repeated"),
    ],
)
def test_bad_irreps(irreps, match):
    with pytest.raises(ValueError, match=match):
        Target(name="mtt::t", kind="spherical", irreps=irreps)


def test_irreps_only_for_spherical_targets():
    with pytest.raises(ValueError, match="only for them"):
        Target(name="mtt::t", kind="cartesian", irreps=[(1, 1)])
    spelled = Target(
        name="mtt::t", kind="spherical", irreps=[{"o3_lambda": 2, "o3_sigma": -1}]
    )
    assert spelled.irreps == ((2, -1),)
    assert spelled.n_components == 5


def test_ase_calculator_selects_the_spherical_output(tmp_path):
    """An engine (ASE's metatomic calculator) asks for the spherical output alone,
    per atom and per structure, with a selection of atoms."""
    from metatomic_ase import MetatomicCalculator

    model = _model()
    path = str(tmp_path / "model.pt")
    model.export().save(path)
    calculator = MetatomicCalculator(path, check_consistency=True)
    atoms = molecule()
    systems = systems_from_ase([atoms], model)
    for kind in ("atom", "system"):
        request = {"mtt::tensor": ModelOutput(sample_kind=kind)}
        result = calculator.run_model(atoms, request)
        assert list(result) == ["mtt::tensor"]
        reference = model(systems, request)["mtt::tensor"]
        for block, expected in zip(result["mtt::tensor"].blocks(), reference.blocks()):
            torch.testing.assert_close(block.values, expected.values)
    selection = Labels(["system", "atom"], torch.tensor([[0, 2], [0, 5]]))
    request = {"mtt::tensor": ModelOutput(sample_kind="atom")}
    chosen = calculator.run_model(atoms, request, selection)["mtt::tensor"]
    for block in chosen.blocks():
        assert block.samples == selection


PRODUCT = [(1, 1, 1, 1), (1, 0, 1, 1), (0, 1, 1, 1), (0, 0, 1, 1)]


def test_products_of_irreps():
    """metatrain's ``product: cartesian`` layout: keys ``o3_lambda_1, o3_lambda_2,
    o3_sigma_1, o3_sigma_2``, components ``o3_mu_1, o3_mu_2``, properties ``n_1,
    n_2``; per-system values are sums of the atomic ones; TorchScript export."""
    model = tiny_pet(
        targets={
            "mtt::pair": {"kind": "spherical", "irreps": PRODUCT, "n_properties": 4}
        }
    )
    systems = systems_from_ase(_frames(), model)
    per_atom = model(systems, {"mtt::pair": ModelOutput(sample_kind="atom")})
    total = model(systems, {"mtt::pair": ModelOutput(sample_kind="system")})
    tensor = per_atom["mtt::pair"]
    assert tensor.keys.names == [
        "o3_lambda_1",
        "o3_lambda_2",
        "o3_sigma_1",
        "o3_sigma_2",
    ]
    assert tensor.keys.values.tolist() == [list(key) for key in PRODUCT]
    n_atoms = sum(len(frame) for frame in _frames())
    for key, block, summed in zip(
        PRODUCT, tensor.blocks(), total["mtt::pair"].blocks()
    ):
        sizes = (2 * key[0] + 1, 2 * key[1] + 1)
        assert block.values.shape == (n_atoms, *sizes, 4)
        assert [c.names for c in block.components] == [["o3_mu_1"], ["o3_mu_2"]]
        assert block.properties.names == ["n_1", "n_2"]
        assert block.properties.values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        sums = torch.zeros_like(summed.values).index_add(
            0, block.samples.column("system"), block.values
        )
        torch.testing.assert_close(sums, summed.values)
    scripted = torch.jit.script(model)
    again = scripted(systems, {"mtt::pair": ModelOutput(sample_kind="atom")})
    for block, reference in zip(again["mtt::pair"].blocks(), tensor.blocks()):
        torch.testing.assert_close(block.values, reference.values)
    with pytest.raises(ValueError, match="square number"):
        Target(name="mtt::t", kind="spherical", irreps=PRODUCT, n_properties=2)
