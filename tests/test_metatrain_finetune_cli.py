"""Fine-tuning through ``mtt train``: LoRA options as written for metatrain's
``pet`` pass metatrain's option checks, the LoRA checkpoint restarts, exports are
plain models; a new element through the command line."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import torch  # noqa: E402
import yaml  # noqa: E402
from metatomic.torch import load_atomistic_model  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    TINY_MODEL,
    emt_frames,
    run_mtt,
    write_frames,
)


def options(data, epochs, finetune=None):
    training = {"batch_size": 4, "num_epochs": epochs, "num_workers": 0}
    if finetune is not None:
        training["finetune"] = finetune
    return {
        "seed": 0,
        "architecture": {"name": "pet_mta", "model": TINY_MODEL, "training": training},
        "training_set": {
            "systems": {"read_from": data, "length_unit": "angstrom"},
            "targets": {"energy": {"key": "energy", "unit": "eV", "forces": False}},
        },
        "validation_set": 0.25,
        "test_set": 0.0,
    }


def write(path, content):
    path.write_text(yaml.safe_dump(content))
    return path.name


@pytest.mark.slow
def test_lora_and_new_element_through_mtt_train(tmp_path):
    write_frames(tmp_path / "cu_ni.xyz", emt_frames(8))
    write_frames(tmp_path / "au.xyz", emt_frames(8, seed=3, symbols=("Cu", "Au")))
    pretrain = write(tmp_path / "pretrain.yaml", options("cu_ni.xyz", 1))
    run_mtt(tmp_path, "train", pretrain, "-o", "pretrained.pt")

    lora = {
        "read_from": "pretrained.ckpt",
        "method": "lora",
        "config": {
            "rank": 2,
            "alpha": 4,
            "target_modules": ["input_linear", "output_linear"],
        },
    }
    lora_options = write(tmp_path / "lora.yaml", options("cu_ni.xyz", 1, lora))
    run_mtt(tmp_path, "train", lora_options, "-o", "lora.pt")
    state = torch.load(tmp_path / "lora.ckpt", weights_only=False)["model_state_dict"]
    assert any("lora_A" in k for k in state) and any("lora_B" in k for k in state)
    exported = torch.jit.load(str(tmp_path / "lora.pt"))
    assert not [k for k in exported.state_dict() if "lora_" in k or "parametriz" in k]

    restart = write(tmp_path / "restart.yaml", options("cu_ni.xyz", 2, lora))
    log = run_mtt(tmp_path, "train", restart, "--restart", "lora.ckpt", "-o", "more.pt")
    assert "training epochs 1 to 1" in log
    run_mtt(tmp_path, "export", "lora.ckpt", "-o", "lora-export.pt")

    gold = {"read_from": "pretrained.ckpt", "method": "full"}
    gold_options = write(tmp_path / "gold.yaml", options("au.xyz", 1, gold))
    log = run_mtt(tmp_path, "train", gold_options, "-o", "gold.pt")
    assert "adding atomic types to the model: [79]" in log
    gold_model = load_atomistic_model(str(tmp_path / "gold.pt"))
    assert gold_model.capabilities().atomic_types == [28, 29, 79]
