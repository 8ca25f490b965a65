"""Fine-tuning onto a data set with elements the model was not trained on: new
embedding rows, old predictions unchanged, baselines fitted for the new elements
only, then training. Tiny models (three message-passing layers, so the stacked
per-layer species embeddings are extended too), EMT data, float64."""

import numpy as np
import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import torch  # noqa: E402
from finetune_helpers import (  # noqa: E402
    CHARGES,
    energies_forces,
    energy_dataset,
    finetune_hypers,
    load,
    pretrained,
    train,
    weights,
)
from metatrain_helpers import emt_frames  # noqa: E402

OLD = (28, 29)
NEW = (13, 79)  # one before and one after the old types: every old index moves


def _setup(tmp_path):
    """Checkpoint of a Cu/Ni model, Cu/Ni test structures, and an Al/Cu/Ni/Au
    fine-tuning set with its dataset info."""
    path = pretrained(tmp_path, emt_frames(6), num_gnn_layers=3)
    ft_frames = emt_frames(8, seed=4, symbols=("Cu", "Ni", "Au", "Al"))
    assert all(set(NEW) & set(atoms.numbers) for atoms in ft_frames)
    dataset, info = energy_dataset(tmp_path / "ft.xyz", ft_frames)
    return path, emt_frames(3, seed=9), ft_frames, dataset, info


def test_new_species_keep_old_predictions(tmp_path):
    """After adding Al and Au, Cu/Ni structures get the pretrained energies and
    forces (1e-12), before and after the normalisation is fitted; the old rows
    of every species table moved to the new indices unchanged."""
    path, old_frames, _, dataset, info = _setup(tmp_path)
    pretrained_model = load(path)
    energy, forces = energies_forces(pretrained_model.pet, old_frames)

    model = load(path).restart(info)
    assert model.pet.atomic_types == sorted(OLD + NEW)
    assert model.new_atomic_types == sorted(NEW)
    assert model.dataset_info.atomic_types == sorted(OLD + NEW)
    old_rows, new_rows = [1, 2], [0, 3]
    for name in ("neighbor_embedding", "gnn_layers.1.central_embedding"):
        old_table = pretrained_model.pet.get_submodule(name).weight
        table = model.pet.get_submodule(name).weight
        assert table.shape[0] == 4
        assert torch.equal(table[old_rows], old_table)
    blocks = model.pet.layer_species.weight.reshape(2, 4, -1)
    old_blocks = pretrained_model.pet.layer_species.weight.reshape(2, 2, -1)
    assert torch.equal(blocks[:, old_rows], old_blocks)

    for stage in ("restarted", "normalised"):
        if stage == "normalised":
            finetune = finetune_hypers(path, "full")
            train(model, dataset, tmp_path, num_epochs=0, finetune=finetune)
        new_energy, new_forces = energies_forces(model.pet, old_frames)
        torch.testing.assert_close(new_energy, energy, rtol=0, atol=1e-12)
        torch.testing.assert_close(new_forces, forces, rtol=0, atol=1e-12)
    assert torch.all(model.pet.neighbor_embedding.weight[new_rows] != 0)


def test_baseline_is_fitted_for_the_new_species_only(tmp_path):
    """The old baselines and the scale are kept; those of Al and Au are the least
    squares fit of what the old baselines leave of the fine-tuning energies."""
    path, _, ft_frames, dataset, info = _setup(tmp_path)
    pretrained_model = load(path)
    old_baseline = pretrained_model.pet.get_baseline("energy")
    old_scale = pretrained_model.pet.readouts["energy"].scale.clone()

    model = load(path).restart(info)
    train(
        model, dataset, tmp_path, num_epochs=0, finetune=finetune_hypers(path, "full")
    )
    baseline = model.pet.get_baseline("energy")
    assert model.new_atomic_types == []
    for z in OLD:
        assert baseline[z] == old_baseline[z]
    assert torch.equal(model.pet.readouts["energy"].scale, old_scale)

    def counts(types):
        return np.array([[np.sum(a.numbers == z) for z in types] for a in ft_frames])

    energies = np.array([a.info["energy"] for a in ft_frames])
    residual = energies - counts(OLD) @ np.array([old_baseline[z] for z in OLD])
    expected = np.linalg.lstsq(counts(NEW), residual, rcond=None)[0]
    np.testing.assert_allclose([baseline[z] for z in NEW], expected, rtol=1e-6)


def test_per_atom_baseline_of_new_species(tmp_path):
    """For a per-atom target the new species' baseline is the mean of their
    atoms' values (what the old baselines leave is the value itself)."""
    path = pretrained(tmp_path, emt_frames(4, dipole=True), CHARGES)
    old = load(path).pet.get_baseline("mtt::charge")
    frames = emt_frames(4, seed=2, dipole=True, symbols=("Cu", "Ni", "Au"))
    dataset, info = energy_dataset(tmp_path / "ft.xyz", frames, CHARGES)
    model = load(path).restart(info)
    finetune = finetune_hypers(path, "full")
    train(model, dataset, tmp_path, num_epochs=0, finetune=finetune)
    baseline = model.pet.get_baseline("mtt::charge")
    charges = np.concatenate([a.arrays["partial_charge"] for a in frames])
    gold = np.concatenate([a.numbers for a in frames]) == 79
    assert gold.sum() > 0
    assert baseline[79] == pytest.approx(charges[gold].mean(), rel=1e-6)
    assert (baseline[28], baseline[29]) == (old[28], old[29])


def test_fixed_baselines_of_new_species(tmp_path):
    """``atomic_baseline: {target: {Z: value}}`` gives the new species' values."""
    path, _, _, dataset, info = _setup(tmp_path)
    model = load(path).restart(info)
    old = model.pet.get_baseline("energy")
    fixed = {"energy": {13: 1.5, 28: 0.0, 29: 0.0, 79: -2.0}}
    finetune = finetune_hypers(path, "full")
    train(
        model, dataset, tmp_path, num_epochs=0, finetune=finetune, atomic_baseline=fixed
    )
    baseline = model.pet.get_baseline("energy")
    assert (baseline[13], baseline[79]) == (1.5, -2.0)
    assert (baseline[28], baseline[29]) == (old[28], old[29])


def test_training_with_new_species(tmp_path):
    """Full fine-tuning trains every weight, the new rows included; the exported
    model handles the new elements."""
    path, _, ft_frames, dataset, info = _setup(tmp_path)
    model = load(path).restart(info)
    before = weights(model)
    trainer = train(
        model, dataset, tmp_path, num_epochs=1, finetune=finetune_hypers(path, "full")
    )
    assert trainer.epoch == 0
    assert trainer.last_validation and all(
        np.isfinite(v) for v in trainer.last_validation.values()
    )
    after = weights(model)
    parameters = [n for n, p in model.named_parameters() if p.numel() > 0]
    assert [n for n in parameters if torch.equal(after[n], before[n])] == []

    exported = model.export()
    assert exported.capabilities().atomic_types == sorted(OLD + NEW)
    energy, forces = energies_forces(model.pet, ft_frames[:2])
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()


@pytest.mark.parametrize("method", ["heads", "lora"])
def test_frozen_embeddings_refuse_new_species(tmp_path, method):
    path, _, _, dataset, info = _setup(tmp_path)
    model = load(path).restart(info)
    with pytest.raises(ValueError, match=r"adds atomic types \[13, 79\].*'full'"):
        train(
            model,
            dataset,
            tmp_path,
            num_epochs=1,
            finetune=finetune_hypers(path, method),
        )
