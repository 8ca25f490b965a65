"""
Scalar, Cartesian and spherical targets
=======================================

A PET model predicts any number of targets next to (or instead of) the energy:
scalars, Cartesian vectors and spherical tensors, per atom or per structure. This
example declares one of each in Python, then trains a spherical target, the
inertia tensor of small molecules split into its ``o3_lambda = 0`` and ``2``
parts, with metatrain's ``mtt train``, and turns the predictions back into 3x3
tensors. See :doc:`/targets` for what each kind means.

The model is tiny and trains for a few epochs to keep the documentation build fast:
the errors printed at the end are those of an untrained-looking model.
"""

# %%
import os
import subprocess
import sys

import ase
import ase.build
import ase.io
import metatensor.torch as mts
import numpy as np
import torch
import yaml
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model

from pet_mta import PET
from pet_mta.neighbors import systems_from_ase
from pet_mta.tensors import spherical_to_symmetric, symmetric_to_spherical

RUN = os.path.abspath("run-targets")
os.makedirs(RUN, exist_ok=True)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# a tiny model (same hyper-parameter names in Python and in options files)
HYPERS = {
    "cutoff": 4.0,
    "d_pet": 16,
    "d_head": 16,
    "d_node": 32,
    "d_feedforward": 32,
    "num_heads": 2,
    "num_gnn_layers": 1,
}

# %%
# Declaring targets in Python
# ---------------------------
#
# ``kind`` is ``"scalar"`` (the default), ``"cartesian"`` (a 3-vector per
# property) or ``"spherical"`` with its ``irreps``, the ``(o3_lambda, o3_sigma)``
# of every block. Whether a value is per atom or per structure is chosen when the
# model is *asked*: PET predicts atomic contributions and sums them per structure.

model = PET(
    atomic_types=[1, 6, 8],
    targets={
        "energy": {"unit": "eV", "quantity": "energy"},
        "mtt::charge": {"kind": "scalar"},
        "mtt::dipole": {"kind": "cartesian", "unit": "e*angstrom"},
        "mtt::polarizability": {
            "kind": "spherical",
            "irreps": [(0, 1), (2, 1)],
            "unit": "angstrom^3",
        },
    },
    **HYPERS,
)
systems = systems_from_ase([ase.build.molecule("CH3OH")], model)
outputs = model(
    systems,
    {
        "mtt::charge": ModelOutput(sample_kind="atom"),
        "mtt::dipole": ModelOutput(sample_kind="system"),
        "mtt::polarizability": ModelOutput(sample_kind="system"),
    },
)
for name, tensor in outputs.items():
    for key, block in tensor.items():
        print(
            name, dict(zip(key.names, key.values.tolist())), tuple(block.values.shape)
        )

# %%
# A spherical training set
# ------------------------
#
# The target is the inertia tensor of rattled water, methanol and formaldehyde
# molecules (``I = sum_i m_i (|r_i|^2 - r_i r_i^T)`` about the centre of mass,
# amu Å^2): symmetric, so :func:`pet_mta.tensors.symmetric_to_spherical` splits it
# into one invariant ``(0, 1)`` component and five ``(2, 1)`` ones.


def inertia(atoms: ase.Atoms) -> np.ndarray:
    positions = atoms.positions - atoms.get_center_of_mass()
    masses = atoms.get_masses()
    squared = (masses * (positions**2).sum(1)).sum()
    return squared * np.eye(3) - np.einsum("i,ia,ib->ab", masses, positions, positions)


rng = np.random.default_rng(0)
frames = []
for i in range(60):
    atoms = ase.build.molecule(["H2O", "CH3OH", "H2CO"][i % 3])
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    atoms.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
    frames.append(atoms)
train, test = frames[:48], frames[48:]


def write_set(frames, stem):
    """Structures as extended XYZ, the target as a metatensor file (metatrain's
    ASE reader reads spherical targets with a single irrep only)."""
    l0, l2 = symmetric_to_spherical(
        torch.tensor(np.stack([inertia(a) for a in frames]))
    )
    samples = Labels(["system"], torch.arange(len(frames)).reshape(-1, 1))
    blocks = [
        TensorBlock(
            values=values[:, :, None],
            samples=samples,
            components=[Labels(["o3_mu"], torch.arange(-lam, lam + 1).reshape(-1, 1))],
            properties=Labels(["n"], torch.tensor([[0]])),
        )
        for lam, values in ((0, l0), (2, l2))
    ]
    keys = Labels(["o3_lambda", "o3_sigma"], torch.tensor([[0, 1], [2, 1]]))
    mts.save(os.path.join(RUN, stem + ".mts"), TensorMap(keys, blocks))
    ase.io.write(os.path.join(RUN, stem + ".xyz"), frames)


write_set(train, "train")

# %%
# The options file
# ----------------
#
# The target's ``type`` is metatrain's: ``spherical`` with a list of irreps.
# ``sample_kind: system`` makes it one value per structure (``atom`` for per-atom
# targets). Rotated copies of the training structures are drawn every epoch, their
# targets rotated with the Wigner matrices of the same rotations.

target = {
    "read_from": "train.mts",
    "reader": "metatensor",
    "quantity": "",
    "unit": "",
    "sample_kind": "system",
    "type": {
        "spherical": {
            "irreps": [{"o3_lambda": 0, "o3_sigma": 1}, {"o3_lambda": 2, "o3_sigma": 1}]
        }
    },
}
options = {
    "seed": 0,
    "architecture": {
        "name": "pet_mta",
        "model": dict(HYPERS),
        "training": {"num_epochs": 10, "batch_size": 8, "num_workers": 0},
    },
    "training_set": {
        "systems": {"read_from": "train.xyz", "length_unit": "angstrom"},
        "targets": {"mtt::inertia": target},
    },
    "validation_set": 0.1,
    "test_set": 0.0,
}
with open(os.path.join(RUN, "options.yaml"), "w") as f:
    yaml.safe_dump(options, f)
print(yaml.safe_dump(options["training_set"]["targets"]))

mtt = os.path.join(os.path.dirname(sys.executable), "mtt")
subprocess.run([mtt, "train", "options.yaml", "-o", "model.pt"], cwd=RUN, check=True)

# %%
# Predictions back as 3x3 tensors
# -------------------------------
#
# The exported model serves ``mtt::inertia`` like any metatomic output; the two
# blocks are turned back into the Cartesian tensor by
# :func:`pet_mta.tensors.spherical_to_symmetric`.

exported = load_atomistic_model(os.path.join(RUN, "model.pt"))
evaluation = ModelEvaluationOptions(
    length_unit="angstrom", outputs={"mtt::inertia": ModelOutput(sample_kind="system")}
)
predicted = exported(systems_from_ase(test, exported), evaluation, False)[
    "mtt::inertia"
]
l0 = predicted.block({"o3_lambda": 0, "o3_sigma": 1}).values[:, :, 0].double()
l2 = predicted.block({"o3_lambda": 2, "o3_sigma": 1}).values[:, :, 0].double()
tensors = spherical_to_symmetric(l0, l2).detach().numpy()
reference = np.stack([inertia(a) for a in test])
print("predicted inertia tensor of the first test molecule:\n", tensors[0].round(2))
print("reference:\n", reference[0].round(2))
print("MAE over the test molecules (amu Å^2):", np.abs(tensors - reference).mean())

# %%
# An unconstrained PET is only approximately equivariant. ``pet-mta symmetrize``
# wraps the exported model so that rotating a molecule rotates every ``lambda``
# block exactly by its Wigner matrix (:doc:`/ecse`).
