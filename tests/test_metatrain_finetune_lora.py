"""LoRA fine-tuning (``finetune: {method: lora, config: {rank, alpha, ...}}``):
only the adapters train, the export folds them into the weights, checkpoints of a
LoRA run restart. Tiny models, EMT data, float64."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import torch  # noqa: E402
from finetune_helpers import (  # noqa: E402
    energies_forces,
    energy_dataset,
    finetune_hypers,
    load,
    lora_names,
    pretrained,
    train,
    weights,
)
from metatomic.torch import load_atomistic_model  # noqa: E402
from metatrain.utils.io import trainer_from_checkpoint  # noqa: E402
from metatrain_helpers import emt_frames, trainer_hypers  # noqa: E402

from pet_mta.metatrain import Trainer  # noqa: E402
from pet_mta.metatrain.finetune import add_lora, lora_config  # noqa: E402
from pet_mta.modules import lora  # noqa: E402

ORIGINAL = ".parametrizations.weight.original"


def _base_weights(model):
    """The state of ``model`` without adapters, under the names of a plain model
    (an adapted layer's frozen matrix is its ``weight``)."""
    return {
        k.replace(ORIGINAL, ".weight"): v
        for k, v in weights(model).items()
        if "lora_" not in k and ".parametrizations.weight.0." not in k
    }


def _lora_run(tmp_path, epochs=1, **config):
    """A pretrained model, LoRA-fine-tuned for ``epochs`` on other structures."""
    path = pretrained(tmp_path, emt_frames(6))
    ft_dataset, info = energy_dataset(tmp_path / "ft.xyz", emt_frames(8, seed=5))
    model = load(path).restart(info)
    before = weights(model)
    finetune = finetune_hypers(path, "lora", rank=2, alpha=3.0, **config)
    trainer = train(model, ft_dataset, tmp_path, num_epochs=epochs, finetune=finetune)
    return model, before, trainer, finetune, ft_dataset


def test_lora_trains_only_the_adapters(tmp_path):
    """Every pretrained weight, baseline and scale is bit-identical after the
    optimiser steps; every adapter matrix moved; the adapters sit on every
    attention projection, rank and scaling as configured."""
    model, before, _, _, _ = _lora_run(tmp_path)
    after = _base_weights(model)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name

    adapters = lora.adapted_layers(model.pet)
    n_layers = len(model.pet.gnn_layers) * len(model.pet.gnn_layers[0].blocks)
    assert sorted({name.rsplit(".", 1)[-1] for name in adapters}) == ["out", "qkv"]
    assert len(adapters) == 2 * n_layers
    for adapter in adapters.values():
        assert adapter.rank == 2
        assert float(adapter.scaling) == pytest.approx(1.5)
        assert torch.count_nonzero(adapter.lora_B) > 0  # starts at zero
    trainable = [n for n, p in model.pet.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert sorted(trainable) == sorted(lora_names(model.pet))


def test_adapters_start_from_the_pretrained_predictions(tmp_path):
    """Adding adapters (``B = 0``) changes no prediction; a non-zero ``B`` does,
    through both the module call (``out``) and direct reads of ``qkv.weight``."""
    path = pretrained(tmp_path, emt_frames(4))
    model = load(path)
    frames = emt_frames(3, seed=11)
    energy, forces = energies_forces(model.pet, frames)
    add_lora(model.pet, lora_config({"rank": 3}))
    adapted_energy, adapted_forces = energies_forces(model.pet, frames)
    torch.testing.assert_close(adapted_energy, energy, rtol=0, atol=1e-12)
    torch.testing.assert_close(adapted_forces, forces, rtol=0, atol=1e-12)
    for name in ("qkv", "out"):
        torch.manual_seed(2)
        trial = load(path)
        add_lora(trial.pet, lora_config({"rank": 3, "target_modules": [name]}))
        for adapter in lora.adapted_layers(trial.pet).values():
            torch.nn.init.normal_(adapter.lora_B, std=0.1)
        changed, _ = energies_forces(trial.pet, frames)
        assert torch.all((changed - energy).abs() > 1e-6), name


def test_metatrain_names_of_the_attention_projections():
    """metatrain's ``input_linear``/``output_linear`` adapt what pet_mta calls
    ``qkv``/``out``; a name matching no linear layer is an error."""
    from pet_mta import PET

    names = []
    for target_modules in (["input_linear", "output_linear"], ["qkv", "out"]):
        pet = PET([1, 8], cutoff=3.0, d_pet=8, d_feedforward=8, num_heads=2)
        names.append(lora.add_adapters(pet, target_modules, rank=2, alpha=2.0))
    assert names[0] == names[1] and len(names[0]) > 0
    with pytest.raises(ValueError, match="match no linear layer"):
        lora.add_adapters(pet, ["query"], rank=2, alpha=2.0)
    for rank in (0, 2.5, "4"):
        with pytest.raises(ValueError, match="'rank' must be a positive integer"):
            lora.add_adapters(pet, ["qkv"], rank=rank, alpha=2.0)
    for alpha in (0.0, float("nan"), "8"):
        with pytest.raises(ValueError, match="'alpha' must be a positive number"):
            lora.add_adapters(pet, ["qkv"], rank=2, alpha=alpha)
    with pytest.raises(ValueError, match="unknown LoRA option"):
        lora_config({"rank": 2, "dropout": 0.1})


def test_merged_export_predicts_as_the_adapted_model(tmp_path):
    """The exported model (adapters folded into the weights, then TorchScript)
    gives the adapted model's energies and forces to 1e-10, has no adapters,
    and differs from the pretrained weights."""
    model, before, _, _, _ = _lora_run(tmp_path)
    frames = emt_frames(3, seed=21)
    energy, forces = energies_forces(model.pet, frames)

    exported = model.export()
    assert not lora.adapted_layers(exported.module)
    state = exported.module.state_dict()
    assert not [k for k in state if "lora_" in k or "parametrizations" in k]
    qkv = "gnn_layers.0.blocks.0.attention.qkv.weight"
    assert not torch.allclose(state[qkv], before["pet." + qkv])

    exported.save(str(tmp_path / "lora.pt"))
    loaded = load_atomistic_model(str(tmp_path / "lora.pt"))
    assert not [k for k in loaded.state_dict() if "lora_" in k]
    scripted_energy, scripted_forces = energies_forces(loaded.module, frames, model.pet)
    torch.testing.assert_close(scripted_energy, energy, rtol=0, atol=1e-10)
    torch.testing.assert_close(scripted_forces, forces, rtol=0, atol=1e-10)
    # the model being trained keeps its adapters
    assert lora.adapted_layers(model.pet)


def test_lora_checkpoint_restarts_and_continues(tmp_path):
    """A checkpoint of a LoRA run restarts with its adapters (same predictions)
    and trains on, still only the adapters; loaded to fine-tune or export, it is
    a plain model with the adapters folded in."""
    model, before, trainer, finetune, dataset = _lora_run(tmp_path)
    frames = emt_frames(2, seed=31)
    energy, forces = energies_forces(model.pet, frames)
    path = tmp_path / "lora.ckpt"
    trainer.save_checkpoint(model, path)

    checkpoint = torch.load(path, weights_only=False)
    restarted = load(str(path), context="restart").restart(model.dataset_info)
    assert weights(restarted).keys() == weights(model).keys()
    restarted_energy, _ = energies_forces(restarted.pet, frames)
    torch.testing.assert_close(restarted_energy, energy, rtol=0, atol=1e-12)
    adapters = {k: v.clone() for k, v in weights(restarted).items() if "lora_" in k}

    hypers = trainer_hypers(num_epochs=2, finetune=finetune)
    resumed = trainer_from_checkpoint(checkpoint, context="restart", hypers=hypers)
    assert isinstance(resumed, Trainer) and resumed.epoch == 0
    train(restarted, dataset, tmp_path, trainer=resumed)
    assert resumed.epoch == 1
    after = weights(restarted)
    assert all(not torch.equal(after[k], v) for k, v in adapters.items())
    base = _base_weights(restarted)
    for name, value in before.items():
        assert torch.equal(base[name], value), name

    for context in ("finetune", "export"):
        plain = load(str(path), context=context)
        assert not lora.adapted_layers(plain) and not lora_names(plain)
        plain_energy, plain_forces = energies_forces(plain.pet, frames)
        torch.testing.assert_close(plain_energy, energy, rtol=0, atol=1e-10)
        torch.testing.assert_close(plain_forces, forces, rtol=0, atol=1e-10)


def test_lora_refusals(tmp_path):
    """A restarted LoRA run with another rank, and LoRA with a new target whose
    heads would stay random, are refused with the reason."""
    model, _, _, _, _ = _lora_run(tmp_path, epochs=0)
    with pytest.raises(ValueError, match="rank 2 .* not the configured rank 4"):
        add_lora(model.pet, lora_config({"rank": 4}))
    # the same configuration is accepted, also with the scaling stored in float32
    # (8 / 3 is not a float32 number)
    pet = load(pretrained(tmp_path, emt_frames(4))).pet.to(torch.float32)
    add_lora(pet, lora_config({"rank": 3, "alpha": 8.0}))
    add_lora(pet, lora_config({"rank": 3, "alpha": 8.0}))

    frames = emt_frames(4, seed=3)
    for atoms in frames:
        atoms.info["energy2"] = 2 * atoms.info["energy"]
    path = pretrained(tmp_path, emt_frames(4))
    from metatrain_helpers import load_dataset, write_frames

    data = write_frames(tmp_path / "two.xyz", frames)
    targets = {
        "mtt::energy2": {"read_from": data, "key": "energy2", "unit": "eV"},
    }
    dataset, infos = load_dataset(data, targets)
    from metatrain.utils.data import DatasetInfo

    fresh = load(path).restart(DatasetInfo("angstrom", [28, 29], infos))
    finetune = finetune_hypers(path, "lora", rank=2)
    with pytest.raises(ValueError, match="would keep random heads"):
        train(fresh, dataset, tmp_path, num_epochs=1, finetune=finetune)
    # with a source for its heads, LoRA fine-tunes the new target
    fresh = load(path).restart(DatasetInfo("angstrom", [28, 29], infos))
    finetune["inherit_heads"] = {"mtt::energy2": "energy"}
    train(fresh, dataset, tmp_path, num_epochs=1, finetune=finetune)
    assert lora_names(fresh.pet)


def test_adapter_compiles_with_torchscript():
    """The adapter alone compiles (exports fold it away, but a scripted adapted
    layer must not be ruled out by the adapter itself): same update eager and
    scripted, ``W + alpha / rank B A``."""
    adapter = lora.LowRankAdapter(6, 4, rank=2, scaling=1.5, dtype=torch.float64)
    torch.nn.init.normal_(adapter.lora_B)
    weight = torch.randn(6, 4, dtype=torch.float64)
    expected = weight + 1.5 * adapter.lora_B @ adapter.lora_A
    scripted = torch.jit.script(adapter)
    torch.testing.assert_close(adapter(weight), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(scripted(weight), expected, rtol=0, atol=1e-14)
