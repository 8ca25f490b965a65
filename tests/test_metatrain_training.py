"""Training pet_mta through its metatrain trainer: targets, normalisation, restart,
fine-tuning, checkpoints. Tiny models and EMT data; the CLI is tested in
``test_metatrain_cli.py``."""

import copy
import gzip
import json
from pathlib import Path

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatomic.torch import ModelOutput  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402
from metatrain.utils.data import DatasetInfo  # noqa: E402
from metatrain.utils.io import model_from_checkpoint, trainer_from_checkpoint  # noqa: E402
from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    checkpoint_predictions,
    emt_frames,
    energy_target,
    load_dataset,
    model_hypers,
    trainer_hypers,
    write_frames,
)
from metatrain_helpers import dataset_and_model as _setup  # noqa: E402
from metatrain_helpers import train_model as _train  # noqa: E402

from pet_mta import PET  # noqa: E402
from pet_mta.metatrain import PETModel, Trainer  # noqa: E402
from pet_mta.metatrain import checkpoints as ckpt_versions  # noqa: E402
from pet_mta.metatrain import trainer as trainer_module  # noqa: E402
from pet_mta.metatrain.trainer import make_optimizer  # noqa: E402
from pet_mta.neighbors import systems_from_ase  # noqa: E402


def _energies_forces(pet, frames):
    systems = systems_from_ase(frames, pet, positions_requires_grad=True)
    energy = pet(systems, {"energy": ModelOutput(sample_kind="system")})["energy"]
    energy = energy.block().values
    gradients = torch.autograd.grad(energy.sum(), [s.positions for s in systems])
    return energy.detach(), -torch.cat(gradients)


def test_energy_forces_stress_training_stores_baseline_and_scale(tmp_path):
    frames = emt_frames(12)
    dataset, model = _setup(tmp_path, frames, energy_target)
    # without the refit after every epoch (tests/test_metatrain_offsets.py), the
    # baseline stays the composition fit made before training
    trainer = _train(model, dataset, tmp_path, num_epochs=2, refit_baseline=False)
    assert trainer.epoch == 1

    # least-squares composition baseline, stored in the core model
    counts = np.array([[np.sum(f.numbers == z) for z in (28, 29)] for f in frames])
    energies = np.array([f.info["energy"] for f in frames])
    expected = np.linalg.lstsq(counts, energies, rcond=None)[0]
    baseline = model.pet.get_baseline("energy")
    np.testing.assert_allclose([baseline[28], baseline[29]], expected, rtol=1e-6)

    # scale = RMS of the per-atom residual energy, or the mean absolute force
    # component (times 1 Å) when forces are trained and that is larger, as here
    residual = (energies - counts @ expected) / counts.sum(1)
    forces = np.concatenate([f.arrays["forces"] for f in frames])
    energy_rms = np.sqrt(np.mean(residual**2))
    force_mean = np.mean(np.abs(forces))
    assert force_mean > energy_rms
    scale = float(model.pet.readouts["energy"].scale[0])
    assert scale == pytest.approx(force_mean, rel=1e-6)

    # checkpoints every epoch, readable by metatrain's generic loader
    checkpoint = torch.load(tmp_path / "model_1.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_mta"
    assert checkpoint["model_ckpt_version"] == PETModel.__checkpoint_version__
    assert checkpoint["trainer_ckpt_version"] == Trainer.__checkpoint_version__
    assert checkpoint["epoch"] == 1
    # the latest weights (restart) are those of the model trained here
    loaded = model_from_checkpoint(checkpoint, context="restart")
    assert isinstance(loaded, PETModel)

    # exported (the core PET), saved, and loaded back as TorchScript by the ASE
    # calculator: the predictions of the model trained in memory
    exported = loaded.export()
    assert isinstance(exported.module, PET)
    exported.save(str(tmp_path / "exported.pt"))
    model.eval()
    e_model, f_model = _energies_forces(model.pet, frames[:3])
    for i, atoms in enumerate(frames[:3]):
        atoms = atoms.copy()
        atoms.calc = MetatomicCalculator(str(tmp_path / "exported.pt"), device="cpu")
        assert atoms.get_potential_energy() == pytest.approx(
            float(e_model[i, 0]), rel=0, abs=1e-10
        )
        np.testing.assert_allclose(
            atoms.get_forces(), f_model[8 * i : 8 * (i + 1)], rtol=0, atol=1e-10
        )


def test_training_reduces_force_error(tmp_path):
    frames = emt_frames(16, seed=3)
    width = {"d_pet": 16, "d_head": 16, "d_node": 16, "d_feedforward": 16}
    dataset, model = _setup(tmp_path, frames, energy_target, **width)
    forces = torch.tensor(np.concatenate([f.arrays["forces"] for f in frames]))
    model.to(torch.float64)

    trainer = Trainer(trainer_hypers(num_epochs=0))
    _train(model, dataset, tmp_path, trainer=trainer)  # fits baseline/scale only
    _, before = _energies_forces(model.pet, frames)
    _train(model, dataset, tmp_path, num_epochs=25, learning_rate=1e-2)
    _, after = _energies_forces(model.pet, frames)
    error_before = (before - forces).abs().mean()
    error_after = (after - forces).abs().mean()
    assert error_after < 0.7 * error_before


def test_mixed_dataset_with_missing_forces(tmp_path):
    """Structures without forces/stress (NaN, as metatrain stores missing values)
    train next to complete ones, and only energies count for them."""
    frames = emt_frames(8, missing_forces_every=2)
    dataset, model = _setup(tmp_path, frames, energy_target)
    trainer = _train(model, dataset, tmp_path, num_epochs=1)
    assert np.isfinite(trainer.best_metric)
    for name, parameter in model.named_parameters():
        assert torch.all(torch.isfinite(parameter)), name


def test_energies_only_and_two_training_sets(tmp_path):
    """An energies-only set trains alone and next to a set with forces."""
    frames = emt_frames(8)
    path = write_frames(tmp_path / "a.xyz", frames[:4])
    only_energy, infos = load_dataset(path, energy_target(path, False, False))
    info = DatasetInfo("angstrom", [28, 29], infos)
    model = PETModel(model_hypers(), info)
    trainer = _train(model, only_energy, tmp_path, num_epochs=1)
    assert trainer.epoch == 0

    path_b = write_frames(tmp_path / "b.xyz", frames[4:])
    with_forces, infos_b = load_dataset(path_b, energy_target(path_b))
    info = DatasetInfo("angstrom", [28, 29], infos_b)
    model = PETModel(model_hypers(), info)
    trainer = _train(model, [with_forces, only_energy], tmp_path, num_epochs=1)
    assert np.isfinite(trainer.best_metric)


def test_vector_and_per_atom_targets(tmp_path):
    frames = emt_frames(8, dipole=True)

    def targets(path):
        return {
            "energy": {"read_from": path, "key": "energy", "unit": "eV"},
            "mtt::dipole": {
                "read_from": path,
                "key": "dipole_moment",
                "quantity": "",
                "unit": "",
                "type": {"cartesian": {"rank": 1}},
                "sample_kind": "system",
            },
            "mtt::charge": {
                "read_from": path,
                "key": "partial_charge",
                "quantity": "",
                "unit": "",
                "sample_kind": "atom",
            },
        }

    dataset, model = _setup(tmp_path, frames, targets)
    _train(model, dataset, tmp_path, num_epochs=1)
    pet = model.pet
    assert pet.target_components["mtt::dipole"] == 3
    # cartesian targets have no baseline, scalar per-atom ones do
    assert torch.all(pet.readouts["mtt::dipole"].baseline == 0)
    charge_baseline = pet.get_baseline("mtt::charge")
    assert charge_baseline[29] == pytest.approx(0.3, abs=0.05)
    assert charge_baseline[28] == pytest.approx(-0.3, abs=0.05)

    systems = systems_from_ase(frames[:2], pet)
    out = model(
        systems,
        {
            "mtt::dipole": ModelOutput(sample_kind="system"),
            "mtt::charge": ModelOutput(sample_kind="atom"),
        },
    )
    assert out["mtt::dipole"].block().values.shape == (2, 3, 1)
    assert out["mtt::charge"].block().values.shape == (16, 1)


def _restartable_run(tmp_path, epochs):
    frames = emt_frames(8, seed=5)
    dataset, model = _setup(tmp_path, frames, energy_target)
    torch.manual_seed(1)
    model = PETModel(model.hypers, model.dataset_info)
    trainer = _train(model, dataset, tmp_path, num_epochs=epochs)
    return dataset, model, trainer


def test_restart_continues_exactly(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, straight, _ = _restartable_run(tmp_path / "a", epochs=3)

    dataset, _, _ = _restartable_run(tmp_path / "b", epochs=3)
    # what `mtt train --restart model_1.ckpt` does
    checkpoint = torch.load(tmp_path / "b" / "model_1.ckpt", weights_only=False)
    model = model_from_checkpoint(checkpoint, context="restart")
    model = model.restart(model.dataset_info)
    trainer = trainer_from_checkpoint(
        checkpoint=checkpoint,
        hypers=trainer_hypers(num_epochs=3),
        context="restart",
    )
    assert trainer.epoch == 1
    _train(model, dataset, tmp_path / "b", trainer=trainer)  # restores the RNG state
    assert trainer.epoch == 2
    expected, restarted = straight.state_dict(), model.state_dict()
    assert restarted.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(restarted[name], value, rtol=0, atol=1e-12, msg=name)


def test_restarted_model_forces_match(tmp_path):
    frames = emt_frames(6)
    dataset, model = _setup(tmp_path, frames, energy_target)
    trainer = _train(model, dataset, tmp_path, num_epochs=1)
    trainer.save_checkpoint(model, tmp_path / "final.ckpt")
    checkpoint = torch.load(tmp_path / "final.ckpt", weights_only=False)
    loaded = model_from_checkpoint(checkpoint, context="restart")
    model.eval()
    loaded.eval()
    e1, f1 = _energies_forces(model.pet, frames)
    e2, f2 = _energies_forces(loaded.pet, frames)
    torch.testing.assert_close(e1, e2)
    torch.testing.assert_close(f1, f2)


def test_finetune_heads_with_new_target(tmp_path):
    frames = emt_frames(8, dipole=True)
    dataset, model = _setup(tmp_path, frames, energy_target)
    trainer = _train(model, dataset, tmp_path, num_epochs=1)
    trainer.save_checkpoint(model, tmp_path / "pretrained.ckpt")
    baseline = model.pet.get_baseline("energy")

    # new data set with an extra per-atom target, fine-tune the heads only
    path = write_frames(tmp_path / "ft.xyz", frames)
    targets = energy_target(path)
    targets["mtt::charge"] = {
        "read_from": path,
        "key": "partial_charge",
        "quantity": "",
        "unit": "",
        "sample_kind": "atom",
    }
    ft_dataset, infos = load_dataset(path, targets)
    info = DatasetInfo("angstrom", [28, 29], infos)
    checkpoint = torch.load(tmp_path / "pretrained.ckpt", weights_only=False)
    model = model_from_checkpoint(checkpoint, context="finetune")
    model = model.restart(info)
    assert model.has_new_targets and "mtt::charge" in model.pet.readouts
    frozen = {
        k: v.clone()
        for k, v in model.pet.state_dict().items()
        if not k.startswith("readouts.")
    }
    heads = copy.deepcopy(model.pet.readouts["energy"].state_dict())

    finetune = {
        "read_from": str(tmp_path / "pretrained.ckpt"),
        "method": "heads",
        "config": {},
        "inherit_heads": {},
    }
    _train(model, ft_dataset, tmp_path, num_epochs=1, finetune=finetune)
    state = model.pet.state_dict()
    for key, value in frozen.items():
        torch.testing.assert_close(state[key], value, msg=key)
    changed = [
        k
        for k, v in model.pet.readouts["energy"].state_dict().items()
        if k not in ("baseline", "scale") and not torch.equal(v, heads[k])
    ]
    assert changed, "the energy heads should have been trained"
    # the pretrained energy baseline is kept, the new target got its own
    assert model.pet.get_baseline("energy") == pytest.approx(baseline)
    assert model.pet.get_baseline("mtt::charge")[29] != 0.0


def _pretrained(tmp_path, frames):
    """A model trained for one epoch on ``frames`` and its checkpoint path (its
    energy baseline the composition fit: no refit after the epoch)."""
    dataset, model = _setup(tmp_path, frames, energy_target)
    trainer = _train(model, dataset, tmp_path, num_epochs=1, refit_baseline=False)
    path = tmp_path / "pretrained.ckpt"
    trainer.save_checkpoint(model, path)
    return model, str(path)


def test_full_finetuning_trains_every_weight(tmp_path):
    """``method: full`` starts from the pretrained weights and trains all of them
    (backbone and heads); the baseline and scale of the energy are kept."""
    pretrained, path = _pretrained(tmp_path, emt_frames(8))
    before = {k: v.clone() for k, v in pretrained.pet.state_dict().items()}

    ft_path = write_frames(tmp_path / "ft.xyz", emt_frames(8, seed=7))
    ft_dataset, infos = load_dataset(ft_path, energy_target(ft_path))
    checkpoint = torch.load(path, weights_only=False)
    model = model_from_checkpoint(checkpoint, context="finetune")
    model = model.restart(DatasetInfo("angstrom", [28, 29], infos))
    start = model.pet.state_dict()
    assert start.keys() == before.keys()
    for name, value in before.items():
        torch.testing.assert_close(start[name], value, rtol=0, atol=0, msg=name)

    finetune = {"read_from": path, "method": "full", "config": {}}
    _train(model, ft_dataset, tmp_path, num_epochs=1, finetune=finetune)
    after = model.pet.state_dict()
    weights = [n for n, p in model.pet.named_parameters() if p.numel() > 0]
    assert any(not n.startswith("readouts.") for n in weights)
    unchanged = [n for n in weights if torch.equal(after[n], before[n])]
    assert unchanged == []
    for name in ("readouts.energy.baseline", "readouts.energy.scale"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_inherit_heads_copies_the_source_heads(tmp_path):
    """``inherit_heads: {new: old}``: the heads of a new target start as a copy of
    those of ``old``; its baseline and scale are fitted on its own data."""
    frames = emt_frames(8)
    pretrained, path = _pretrained(tmp_path, frames)
    for atoms in frames:
        atoms.info["energy2"] = 2.0 * atoms.info["energy"]
    ft_path = write_frames(tmp_path / "ft.xyz", frames)
    targets = energy_target(ft_path)
    targets["mtt::energy2"] = {
        "read_from": ft_path,
        "key": "energy2",
        "quantity": "energy",
        "unit": "eV",
        "forces": False,
        "stress": False,
    }
    ft_dataset, infos = load_dataset(ft_path, targets)
    checkpoint = torch.load(path, weights_only=False)
    model = model_from_checkpoint(checkpoint, context="finetune")
    model = model.restart(DatasetInfo("angstrom", [28, 29], infos))
    source = {
        k: v.clone()
        for k, v in model.pet.readouts["energy"].state_dict().items()
        if k not in ("baseline", "scale")
    }
    fresh = model.pet.readouts["mtt::energy2"].state_dict()
    assert fresh.keys() >= source.keys()
    assert any(not torch.equal(fresh[k], v) for k, v in source.items())

    finetune = {
        "read_from": path,
        "method": "heads",
        "config": {},
        "inherit_heads": {"mtt::energy2": "energy"},
    }
    # no epoch: what the fine-tuning starts from (heads copied, normalisation fitted)
    _train(model, ft_dataset, tmp_path, num_epochs=0, finetune=finetune)
    inherited = model.pet.readouts["mtt::energy2"].state_dict()
    assert inherited.keys() == fresh.keys()
    for name, value in source.items():
        torch.testing.assert_close(inherited[name], value, rtol=0, atol=0, msg=name)
    baseline = model.pet.get_baseline("energy")
    baseline2 = model.pet.get_baseline("mtt::energy2")
    for z in (28, 29):
        assert baseline2[z] == pytest.approx(2 * baseline[z], rel=1e-6)


def test_unknown_finetuning_method_is_refused(tmp_path):
    frames = emt_frames(4)
    dataset, model = _setup(tmp_path, frames, energy_target)
    finetune = {"read_from": "x.ckpt", "method": "bitfit", "config": {}}
    with pytest.raises(ValueError, match="not available in pet_mta"):
        _train(model, dataset, tmp_path, num_epochs=1, finetune=finetune)


def test_restart_rejects_other_hypers(tmp_path):
    frames = emt_frames(4)
    dataset, model = _setup(tmp_path, frames, energy_target)
    with pytest.raises(ValueError):
        model.restart(model.dataset_info, model_hypers={"d_pet": 16})


def test_checkpoint_upgrade_path(monkeypatch):
    calls = []

    def v1_to_v2(checkpoint):
        calls.append(checkpoint["model_ckpt_version"])
        checkpoint["new_field"] = 1

    monkeypatch.setattr(ckpt_versions, "MODEL_UPGRADES", [v1_to_v2])
    monkeypatch.setattr(PETModel, "__checkpoint_version__", 2)
    upgraded = PETModel.upgrade_checkpoint({"model_ckpt_version": 1})
    assert upgraded == {"model_ckpt_version": 2, "new_field": 1}
    assert calls == [1]
    with pytest.raises(RuntimeError, match="Unable to upgrade the checkpoint"):
        PETModel.upgrade_checkpoint({"model_ckpt_version": 3})


def test_exported_capabilities_allow_per_atom_energies(tmp_path):
    frames = emt_frames(2)
    _, model = _setup(tmp_path, frames, energy_target)
    exported = model.export()
    assert exported.capabilities().outputs["energy"].sample_kind == "atom"
    assert exported.capabilities().length_unit == "angstrom"
    system = get_system_with_neighbor_lists(
        systems_from_ase(frames[:1], model.pet, dtype=torch.float32)[0],
        model.requested_neighbor_lists(),
    )
    from metatomic.torch import ModelEvaluationOptions

    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"energy": ModelOutput(sample_kind="atom")},
    )
    per_atom = exported([system], options, check_consistency=True)["energy"]
    assert per_atom.block().values.shape == (8, 1)


def test_adamw_when_weight_decay_is_set(tmp_path, monkeypatch):
    made = []

    def spy(parameters, hypers):
        made.append(make_optimizer(parameters, hypers))
        return made[-1]

    monkeypatch.setattr(trainer_module, "make_optimizer", spy)
    frames = emt_frames(4)
    dataset, model = _setup(tmp_path, frames, energy_target)
    trainer = _train(model, dataset, tmp_path, num_epochs=1, weight_decay=0.01)
    (optimizer,) = made
    assert type(optimizer) is torch.optim.AdamW  # not Adam + L2 penalty
    group = trainer.optimizer_state_dict["param_groups"][0]
    assert group["weight_decay"] == 0.01


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_weight_decay_is_decoupled(weight_decay):
    """With a zero gradient, decoupled decay shrinks a weight by lr * decay
    (AdamW); an L2 penalty would go through Adam's normalisation and move it by
    lr; without decay it does not move."""
    parameter = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    hypers = {"learning_rate": 0.1, "weight_decay": weight_decay}
    optimizer = make_optimizer([parameter], hypers)
    parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    expected = 2.0 if weight_decay is None else 2.0 * (1 - 0.1 * weight_decay)
    assert float(parameter.detach()) == pytest.approx(expected, rel=1e-12)


def test_warmup_then_cosine_schedule():
    from pet_mta.metatrain.schedule import warmup_cosine

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0
    assert rates[5] == pytest.approx(0.5)
    assert rates[10] == pytest.approx(1.0)
    assert rates[55] == pytest.approx(0.5, abs=1e-6)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] < 1e-3


CHECKPOINTS = Path(__file__).parent / "checkpoints"
REFERENCE = json.loads((CHECKPOINTS / "reference_outputs.json").read_text())


def test_every_checkpoint_has_reference_outputs():
    files = {p.relative_to(CHECKPOINTS).as_posix() for p in CHECKPOINTS.rglob("*.gz")}
    assert files == set(REFERENCE["checkpoints"])
    versions = {e["model_ckpt_version"] for e in REFERENCE["checkpoints"].values()}
    assert versions == set(range(1, PETModel.__checkpoint_version__ + 1))


@pytest.mark.parametrize("context", ["restart", "export"])
@pytest.mark.parametrize("name", sorted(REFERENCE["checkpoints"]))
def test_upgraded_checkpoints_predict_as_before(name, context):
    """Every stored checkpoint, upgraded by metatrain's loader, predicts the energies,
    forces and stresses that the code which wrote it predicted (computed by
    ``checkpoints/make_reference_outputs.py`` with that commit's code).

    Version 1 divided edge lengths by the cutoff before the geometry embedding (the
    upgrade moves that factor into the weights), version 3 added per-layer species
    embeddings (zeros); ``two_layers/`` has two message-passing layers, so that the
    per-layer parts count. Float64 evaluation: what may differ is the float32
    rounding of the weights divided by the cutoff (relative 6e-8) and the order of
    sums; seen: 3e-14 eV, 7e-15 eV/Å. Not dividing by the cutoff changes the
    one-layer v1 model by 1e-5 eV and 9e-6 eV/Å, hence the 1e-9 tolerances.
    """
    entry = REFERENCE["checkpoints"][name]
    with gzip.open(CHECKPOINTS / name, "rb") as fd:
        checkpoint = torch.load(fd, weights_only=False)
    assert checkpoint["model_ckpt_version"] == entry["model_ckpt_version"]
    model = model_from_checkpoint(checkpoint, context=context)
    assert isinstance(model, PETModel)

    predictions = checkpoint_predictions(model, REFERENCE["structures"])
    assert len(predictions) == len(entry["predictions"]) == 3
    for got, expected in zip(predictions, entry["predictions"]):
        assert got["energy"] == pytest.approx(expected["energy"], rel=0, abs=1e-9)
        assert np.abs(expected["forces"]).max() > 1e-4
        np.testing.assert_allclose(got["forces"], expected["forces"], rtol=0, atol=1e-9)
        if expected["stress"] is None:
            assert got["stress"] is None
        else:
            np.testing.assert_allclose(
                got["stress"], expected["stress"], rtol=0, atol=1e-10
            )


def test_nan_cell_in_training_data_is_refused_before_neighbour_lists(tmp_path):
    """vesin dies with SIGFPE on a NaN cell: the trainer refuses it first."""
    frames = emt_frames(4)
    frames[2].cell[0, 0] = np.nan
    dataset, model = _setup(tmp_path, frames, energy_target)
    with pytest.raises(ValueError, match="structure 2 of the training set has a NaN"):
        _train(model, dataset, tmp_path, num_epochs=1)
