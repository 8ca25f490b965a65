"""A small model, a structure and Python reference values shared by engine tests."""

import ase
import ase.build
import numpy as np
import torch

from pet_mta import PET
from pet_mta.evaluation import compute_properties


def small_model(seed: int = 0) -> PET:
    """A seeded float64 Ni/Cu PET with a non-zero energy baseline."""
    torch.manual_seed(seed)
    model = PET(
        atomic_types=[28, 29],
        cutoff=4.0,
        d_pet=16,
        d_head=16,
        d_node=16,
        d_feedforward=32,
        num_heads=2,
        num_gnn_layers=2,
    )
    model.set_baseline("energy", {28: -1.5, 29: -2.0})
    return model.to(torch.float64).eval()


def alloy(triclinic: bool = False) -> ase.Atoms:
    """32-atom rattled Ni/Cu fcc cell, optionally sheared, wrapped into the cell."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.symbols[::5] = "Ni"
    if triclinic:
        atoms.set_cell(atoms.cell + [[0, 0, 0], [0.4, 0, 0], [0.2, -0.3, 0]])
    atoms.rattle(0.05, seed=3)
    atoms.wrap()
    return atoms


def reference(model: PET, atoms: ase.Atoms):
    """Energy (eV), forces (eV/Å), symmetrised 3x3 stress (eV/Å³), atomic energies.

    Engines symmetrise the stress (PET is not exactly rotation-invariant), so the
    reference does too.
    """
    result = compute_properties(model, atoms, per_atom=True)
    stress = result.get("stress", np.zeros((3, 3)))
    return (
        float(result["energy"]),
        result["forces"],
        0.5 * (stress + stress.T),
        result["energies"],
    )
