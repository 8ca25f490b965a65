"""
Train with ``mtt train``, learning curve and parity plot
========================================================

This example trains a small pet_mta model on the shipped EMT alloy data with
metatrain's command line, plots the validation errors epoch by epoch (the learning
curve), evaluates the exported model with ``mtt eval`` on structures it never saw,
and draws parity plots of predicted against reference energies and forces.

To keep the documentation build fast the model is tiny and trains for a few
epochs only, so the errors are far from converged: for a real model use
``examples/options.yaml`` (``cd examples && mtt train options.yaml``, a few
minutes) or larger settings. The commands are the same.
"""

# %%
import os
import subprocess
import sys

import ase.io
import matplotlib.pyplot as plt
import numpy as np
import yaml

sys.path.insert(0, os.path.abspath("."))  # the gallery runs scripts from their folder
from training_helpers import run_mtt  # noqa: E402

EXAMPLES = os.path.abspath("..")  # the gallery runs scripts from their folder
RUN = os.path.abspath("run")
os.makedirs(RUN, exist_ok=True)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# %%
# The options file
# ----------------
#
# The architecture is named ``pet_mta``; the model and training keys are those of
# metatrain's ``pet`` (:doc:`/hypers`). The training file is split at random into
# training and validation structures; ``test_set: 0.0`` because we evaluate on a
# separate held-out file below.

options = {
    "seed": 0,
    "architecture": {
        "name": "pet_mta",
        "model": {
            "cutoff": 4.5,
            "d_pet": 16,
            "d_head": 16,
            "d_node": 32,
            "d_feedforward": 32,
            "num_heads": 2,
            "num_attention_layers": 1,
            "num_gnn_layers": 2,
        },
        "training": {
            "batch_size": 10,
            "num_epochs": 12,
            "learning_rate": 5.0e-3,
            "warmup_fraction": 0.02,
            "log_interval": 1,
            "checkpoint_interval": 1000,
            "num_workers": 0,
        },
    },
    "training_set": {
        "systems": {
            "read_from": os.path.join(EXAMPLES, "data", "emt_alloys.xyz"),
            "length_unit": "angstrom",
        },
        "targets": {
            "energy": {"key": "energy", "unit": "eV", "forces": True, "stress": False}
        },
    },
    "validation_set": 0.2,
    "test_set": 0.0,
}
with open(os.path.join(RUN, "options.yaml"), "w") as file:
    yaml.safe_dump(options, file, sort_keys=False)


def mtt(*arguments: str) -> str:
    """Run ``mtt`` in the run folder; return its log."""
    return run_mtt(RUN, *arguments)


# %%
# Train
# -----
#
# ``mtt train`` writes the exported model ``model.pt``, the checkpoint
# ``model.ckpt`` and, under ``outputs/<date>/<time>/``, the log and a CSV file of
# the errors at every epoch.

log = mtt("train", "options.yaml", "-o", "model.pt")
print("\n".join(line for line in log.splitlines() if "validation" in line)[-1200:])

# %%
# Learning curve
# --------------
#
# Validation errors, epoch by epoch, from ``train.csv``: the first line names the
# columns, the second gives their units.

csv = sorted(
    os.path.join(root, "train.csv")
    for root, _, files in os.walk(os.path.join(RUN, "outputs"))
    if "train.csv" in files
)[-1]
with open(csv) as file:
    names = [name.strip() for name in file.readline().split(",")]
data = np.genfromtxt(csv, delimiter=",", skip_header=2)
column = {name: data[:, i] for i, name in enumerate(names)}

fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(8, 3.2))
for split in ("training", "validation"):
    ax_e.plot(column["Epoch"], column[f"{split} energy MAE (per atom)"], label=split)
    ax_f.plot(column["Epoch"], column[f"{split} forces MAE"], label=split)
ax_e.set_ylabel("energy MAE (meV/atom)")
ax_f.set_ylabel("force MAE (meV/Å)")
for ax in (ax_e, ax_f):
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()

# %%
# Held-out test set and ``mtt eval``
# ----------------------------------
#
# New structures from the same generator with another random seed, labelled with
# EMT: the model never saw them.

subprocess.run(
    [
        sys.executable,
        os.path.join(EXAMPLES, "data", "make_emt_alloys.py"),
        "-n",
        "20",
        "--seed",
        "7",
        "-o",
        os.path.join(RUN, "test.xyz"),
    ],
    check=True,
    capture_output=True,
)
with open(os.path.join(RUN, "eval.yaml"), "w") as file:
    yaml.safe_dump(
        {
            "systems": {"read_from": "test.xyz", "length_unit": "angstrom"},
            "targets": {"energy": {"key": "energy", "unit": "eV", "forces": True}},
        },
        file,
    )
log = mtt("eval", "model.pt", "eval.yaml", "-o", "predictions.xyz")
print("\n".join(line for line in log.splitlines() if "RMSE" in line))

# %%
# Parity plots
# ------------
#
# ``mtt eval`` wrote the predicted energies and their gradients with respect to
# positions (forces are minus these gradients).

reference = ase.io.read(os.path.join(RUN, "test.xyz"), ":")
predicted = ase.io.read(os.path.join(RUN, "predictions.xyz"), ":")
n_atoms = np.array([len(a) for a in reference])
e_ref = np.array([a.get_potential_energy() for a in reference]) / n_atoms
e_pred = np.array([a.get_potential_energy() for a in predicted]) / n_atoms
f_ref = np.concatenate([a.get_forces().ravel() for a in reference])
f_pred = -np.concatenate(
    [np.asarray(a.info["energy_positions_gradients"]).ravel() for a in predicted]
)

fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(8, 3.6))
ax_e.scatter(e_ref, e_pred, s=12)
ax_f.scatter(f_ref, f_pred, s=3, alpha=0.5)
for ax, ref, unit in ((ax_e, e_ref, "eV/atom"), (ax_f, f_ref, "eV/Å")):
    low, high = ref.min(), ref.max()
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set_xlabel(f"EMT ({unit})")
    ax.set_ylabel(f"pet_mta ({unit})")
ax_e.set_title(f"energy, MAE {1000 * np.abs(e_pred - e_ref).mean():.1f} meV/atom")
ax_f.set_title(f"forces, MAE {1000 * np.abs(f_pred - f_ref).mean():.0f} meV/Å")
fig.tight_layout()
