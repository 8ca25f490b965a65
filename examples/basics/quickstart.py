"""
Quick start: build, evaluate, export and run a PET model
=========================================================

This example builds a small :class:`pet_mta.PET` for a copper-nickel alloy,
evaluates energy, forces and stress in Python, exports it to a single ``.pt`` file,
loads that file back through metatomic and runs a few steps of molecular dynamics
with ASE. The model is *untrained*: the numbers only show the mechanics (see the
training examples for a model that has learned something).
"""

# %%
import ase.build
import matplotlib.pyplot as plt
import numpy as np
import torch
from ase import units
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet
from metatomic.torch import check_atomistic_model, load_atomistic_model
from metatomic_ase import MetatomicCalculator

from pet_mta import PET
from pet_mta.baseline import fit_energy_baseline
from pet_mta.evaluation import compute_properties

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ase < 3.29
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution as thermalize_momenta,
    )

torch.manual_seed(0)

# %%
# Build a model
# -------------
#
# Every hyper-parameter is optional (see :doc:`/hypers`); here the model is kept
# tiny so the example runs in seconds. ``atomic_types`` lists the atomic numbers
# the model can handle; by default the model predicts an ``energy`` in eV.

model = PET(
    atomic_types=[28, 29],  # Ni, Cu
    cutoff=4.5,
    d_pet=32,
    d_head=32,
    d_node=32,
    d_feedforward=64,
    num_heads=4,
    num_gnn_layers=2,
).to(torch.float64)
print(f"{sum(p.numel() for p in model.parameters())} parameters")

# %%
# A per-species energy baseline and an energy scale live inside the model, so
# that an exported file is complete. Here they are fitted to a few structures
# labelled with ASE's EMT potential (a training run does this for you).


def random_alloy(seed: int) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)  # 32 atoms
    atoms.numbers = rng.choice([28, 29], size=len(atoms))
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    return atoms


frames = [random_alloy(seed) for seed in range(8)]
baseline, scale = fit_energy_baseline(model, frames)
print("baseline (eV/atom):", baseline, " scale (eV):", round(scale, 4))

# %%
# Evaluate in Python
# ------------------
#
# :func:`pet_mta.evaluation.compute_properties` computes neighbour lists with
# vesin, runs the model and takes forces and stress by automatic
# differentiation.

atoms = random_alloy(100)
result = compute_properties(model, atoms, forces=True, stress=True)
print("energy (eV):        ", result["energy"])
print("EMT energy (eV):    ", atoms.get_potential_energy())
print("forces (eV/Å), [0]: ", result["forces"][0])
print("stress (eV/Å^3):    ", np.diag(result["stress"]))

# %%
# Export, save and load
# ---------------------
#
# :meth:`pet_mta.PET.export` wraps the model into a
# :class:`metatomic.torch.AtomisticModel` with its capabilities (atomic types,
# units, ``interaction_range``) and metadata. The saved file is everything an
# engine needs.

exported = model.export()
exported.save("quickstart-model.pt")
check_atomistic_model("quickstart-model.pt")

loaded = load_atomistic_model("quickstart-model.pt")
capabilities = loaded.capabilities()
print("atomic types:", capabilities.atomic_types)
print("interaction range (Å):", capabilities.interaction_range)
print("outputs:", list(capabilities.outputs.keys()))
print(loaded.metadata())

# %%
# Run it in ASE
# -------------
#
# The metatomic ASE calculator loads the file, computes neighbour lists and
# derivatives itself. Its energy agrees with the Python model.

calculator = MetatomicCalculator("quickstart-model.pt", device="cpu")
atoms.calc = calculator
print(
    "ASE energy - Python energy (eV):", atoms.get_potential_energy() - result["energy"]
)
assert abs(atoms.get_potential_energy() - result["energy"]) < 1e-8

# %%
# A few steps of NVE molecular dynamics: the total energy stays constant up to
# the integration error of the 1 fs time step.

thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
potential, total = [], []


def record():
    potential.append(atoms.get_potential_energy())
    total.append(atoms.get_total_energy())


dynamics.attach(record, interval=1)
dynamics.run(30)

steps = np.arange(len(total))
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(steps, 1000 * (np.array(potential) - potential[0]), label="potential")
ax.plot(steps, 1000 * (np.array(total) - total[0]), label="total (conserved)")
ax.set_xlabel("step (1 fs)")
ax.set_ylabel("change since step 0 (meV)")
ax.legend()
fig.tight_layout()
print(f"total energy spread over 30 steps: {np.ptp(total):.2e} eV")
