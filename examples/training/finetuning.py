"""
Fine-tune a trained model: ``full``, ``heads``, ``lora``, and a new element
===========================================================================

A small model is trained with ``mtt train`` on Cu/Ni alloys, then fine-tuned in
two situations (see :doc:`/finetuning` for when to choose which method):

* the same kind of structures labelled by *another reference* (here EMT with a
  smooth cutoff instead of the default one), with each of the three methods;
* structures that contain an element the model has never seen (Au), with
  ``method: full``: the model gets new species rows, and its Cu/Ni predictions
  are unchanged until the first optimiser step.

The data are the shipped EMT alloys (``examples/data/emt_alloys.xyz``). The model
is tiny and trains for a few epochs only, to keep the documentation build fast;
the commands are the same for real models.
"""

# %%
import copy
import os
import re
import sys

import ase.io
import numpy as np
import torch
import yaml
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from pet_mta.metatrain import PETModel

sys.path.insert(0, os.path.abspath("."))  # the gallery runs scripts from their folder
from training_helpers import run_mtt  # noqa: E402

EXAMPLES = os.path.abspath("..")  # the gallery runs scripts from their folder
RUN = os.path.abspath("finetuning_run")
os.makedirs(RUN, exist_ok=True)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def mtt(*arguments: str) -> str:
    """Run ``mtt`` in the run folder; return its log."""
    return run_mtt(RUN, *arguments)


# %%
# Data
# ----
#
# The Cu/Ni structures of the example data train the first model; the same
# structures relabelled with EMT's smooth-cutoff variant (``asap_cutoff=True``)
# play the part of a more accurate reference; structures with gold bring a new
# element.

frames = ase.io.read(os.path.join(EXAMPLES, "data", "emt_alloys.xyz"), ":")
cu_ni = [a for a in frames if "Au" not in a.get_chemical_symbols()]
with_gold = [a for a in frames if "Au" in a.get_chemical_symbols()][:30]


def relabel(atoms, calculator):
    atoms = atoms.copy()
    atoms.calc = calculator
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


ase.io.write(os.path.join(RUN, "cu_ni.xyz"), cu_ni)
smooth = [relabel(a, EMT(asap_cutoff=True)) for a in cu_ni]
ase.io.write(os.path.join(RUN, "cu_ni_smooth.xyz"), smooth)
ase.io.write(os.path.join(RUN, "with_gold.xyz"), with_gold)
print(f"{len(cu_ni)} Cu/Ni structures, {len(with_gold)} with gold")

# %%
# Train the first model
# ---------------------

options = {
    "seed": 0,
    "architecture": {
        "name": "pet_mta",
        "model": {
            "cutoff": 4.5,
            "d_pet": 16,
            "d_head": 16,
            "d_node": 16,
            "d_feedforward": 32,
            "num_heads": 2,
            "num_attention_layers": 1,
            "num_gnn_layers": 2,
        },
        "training": {
            "batch_size": 8,
            "num_epochs": 20,
            "learning_rate": 5.0e-3,
            "log_interval": 1,
            "checkpoint_interval": 1000,
            "num_workers": 0,
        },
    },
    "training_set": {
        "systems": {"read_from": "cu_ni.xyz", "length_unit": "angstrom"},
        "targets": {"energy": {"key": "energy", "unit": "eV", "forces": True}},
    },
    "validation_set": 0.25,
    "test_set": 0.0,
}


def validation_errors(log: str) -> str:
    """Energy and force MAE of the final evaluation of the validation set."""
    lines = log.splitlines()
    start = max(i for i, line in enumerate(lines) if "Evaluating validation" in line)
    line = next(line for line in lines[start:] if "energy MAE" in line)
    energy = re.search(r"energy MAE \(per atom\): ([0-9.]+)", line).group(1)
    forces = re.search(r"positions_gradients MAE: ([0-9.]+)", line).group(1)
    return f"validation MAE: energy {energy} meV/atom, forces {forces} meV/Å"


def train(name: str, data: str, finetune=None, epochs: int = 20) -> str:
    """``mtt train`` on ``data``; returns the final validation errors."""
    run = copy.deepcopy(options)
    run["training_set"]["systems"]["read_from"] = data
    run["architecture"]["training"]["num_epochs"] = epochs
    if finetune is not None:
        run["architecture"]["training"]["finetune"] = finetune
    with open(os.path.join(RUN, f"{name}.yaml"), "w") as file:
        yaml.safe_dump(run, file, sort_keys=False)
    log = mtt("train", f"{name}.yaml", "-o", f"{name}.pt")  # and {name}.ckpt
    return validation_errors(log)


print(train("pretrained", "cu_ni.xyz"))
pretrained_ckpt = {"read_from": "pretrained.ckpt", "method": "full"}

# %%
# Fine-tune on the new reference
# ------------------------------
#
# The ``finetune`` section of the training options names the checkpoint and the
# method. ``heads`` trains the read-out heads only; ``lora`` adds rank-``rank``
# adapters to the attention projections (the update is multiplied by
# ``alpha / rank``) and trains only those; ``full`` trains every weight. The
# pretrained baseline and scale are kept. A run of zero epochs gives the errors
# of the pretrained model on the same validation structures ("before").

print("before:", train("before", "cu_ni_smooth.xyz", pretrained_ckpt, epochs=0))
methods = {
    "heads": {"method": "heads"},
    "lora": {"method": "lora", "config": {"rank": 4, "alpha": 8}},
    "full": {"method": "full"},
}
for name, method in methods.items():
    finetune = {"read_from": "pretrained.ckpt", **method}
    print(f"{name:>6}:", train(name, "cu_ni_smooth.xyz", finetune, epochs=8))

# %%
# With a model this small, trained this briefly, and seven validation structures,
# the differences between the methods are about as large as the noise: the runs
# show how to compare methods on your own data (same options, same validation
# split, a few epochs each), not which method wins in general.
#
# The LoRA adapters and the trainable weights
# -------------------------------------------
#
# The LoRA checkpoint holds the frozen pretrained weights and the adapters (so
# ``mtt train --restart lora.ckpt`` continues with them); the exported ``lora.pt``
# has them folded into the weights, so engines see an ordinary pet_mta model.

checkpoint = torch.load(os.path.join(RUN, "lora.ckpt"), weights_only=False)
state = checkpoint["model_state_dict"]
adapters = sum(v.numel() for k, v in state.items() if "lora_" in k)
total = sum(v.numel() for k, v in state.items() if "lora_" not in k)
print(f"LoRA trained {adapters} weights; the model has {total}")
exported = torch.jit.load(os.path.join(RUN, "lora.pt"))
print("adapters in lora.pt:", [k for k in exported.state_dict() if "lora_" in k])

# %%
# A new element
# -------------
#
# The structures with gold contain an element the pretrained model does not know.
# With ``method: full`` the model gets new embedding rows for Au (Cu and Ni keep
# theirs: Cu/Ni structures are predicted as before until the first step), and the
# Au baseline is fitted on what the Cu and Ni baselines leave of the energies.
# ``heads`` and ``lora`` keep the embeddings frozen, so they refuse new elements.

print(train("gold", "with_gold.xyz", pretrained_ckpt, epochs=8))
gold = PETModel.load_checkpoint(
    torch.load(os.path.join(RUN, "gold.ckpt"), weights_only=False), "export"
)
pretrained = PETModel.load_checkpoint(
    torch.load(os.path.join(RUN, "pretrained.ckpt"), weights_only=False), "export"
)
print("atomic types:", pretrained.pet.atomic_types, "->", gold.pet.atomic_types)
print("energy baselines (eV):", gold.pet.get_baseline("energy"))
np.testing.assert_allclose(
    [gold.pet.get_baseline("energy")[z] for z in (28, 29)],
    [pretrained.pet.get_baseline("energy")[z] for z in (28, 29)],
)
