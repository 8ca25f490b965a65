"""Pretrained tiny models and fine-tuning runs shared by ``test_metatrain_finetune_*``.

The pretrained model has random (not small, not zero) weights in every parameter,
so that a weight that is lost, moved to the wrong place or left out of an export
changes the predictions.
"""

from pathlib import Path
from typing import Dict, List

import torch
from metatomic.torch import ModelOutput
from metatrain.utils.data import DatasetInfo, get_atomic_types
from metatrain.utils.io import model_from_checkpoint
from metatrain_helpers import (
    energy_target,
    load_dataset,
    model_hypers,
    write_frames,
)
from metatrain_helpers import train_model as train

from pet_mta.metatrain import PETModel
from pet_mta.neighbors import systems_from_ase

CHARGES = {
    "mtt::charge": {
        "key": "partial_charge",
        "quantity": "",
        "unit": "",
        "sample_kind": "atom",
    }
}
"""Per-atom target ``partial_charge`` of ``emt_frames(..., dipole=True)``."""


def energy_dataset(path: Path, frames, extra_targets=None):
    """``(dataset, DatasetInfo)`` of energies and forces of ``frames`` (and of
    ``extra_targets``, options sections without ``read_from``)."""
    path = write_frames(path, frames)
    targets = energy_target(path, stress=False)
    for name, target in (extra_targets or {}).items():
        targets[name] = {"read_from": path, **target}
    dataset, infos = load_dataset(path, targets)
    return dataset, DatasetInfo("angstrom", get_atomic_types(dataset), infos)


def pretrained(tmp_path: Path, frames, extra_targets=None, **model_overrides) -> str:
    """Checkpoint of a tiny model with random weights (standard deviation 0.3) and
    the baselines and scales fitted on ``frames``."""
    dataset, info = energy_dataset(tmp_path / "pretrain.xyz", frames, extra_targets)
    torch.manual_seed(1)
    model = PETModel(model_hypers(**model_overrides), info)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.3 * torch.randn_like(parameter))
    trainer = train(model, dataset, tmp_path, num_epochs=0)
    path = tmp_path / "pretrained.ckpt"
    trainer.save_checkpoint(model, path)
    return str(path)


def load(path: str, context: str = "finetune") -> PETModel:
    checkpoint = torch.load(path, weights_only=False)
    return model_from_checkpoint(checkpoint, context=context)


def energies_forces(pet, frames, lists_from=None):
    """Energies ``[n_frames]`` and forces ``[n_atoms, 3]`` of a core PET (or its
    TorchScript version, with the neighbour lists requested by ``lists_from``)."""
    pet = pet.eval()
    lists_from = pet if lists_from is None else lists_from
    systems = systems_from_ase(frames, lists_from, positions_requires_grad=True)
    output = {"energy": ModelOutput(sample_kind="system")}
    energy = pet(systems, output)["energy"].block().values.reshape(-1)
    gradients = torch.autograd.grad(energy.sum(), [s.positions for s in systems])
    return energy.detach(), -torch.cat(gradients)


def weights(model) -> Dict[str, torch.Tensor]:
    """Copies of the state dict entries of ``model``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def finetune_hypers(path: str, method: str, **config) -> Dict:
    return {"read_from": path, "method": method, "config": config}


def lora_names(module) -> List[str]:
    """State dict entries of LoRA adapters."""
    return [k for k in module.state_dict() if "lora_" in k]
