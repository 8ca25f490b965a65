"""Energy, forces and stress of ASE structures with a PET (or any metatomic) model.

A small helper for scripts, tests and benchmarks; MD engines use the exported model
through their own metatomic interface instead.
"""

from typing import Dict, Sequence

import ase
import numpy as np
import torch
from metatomic.torch import ModelOutput, System

from .neighbors import add_neighbor_lists, system_from_ase


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """dtype of the first parameter of ``model``."""
    return next(model.parameters()).dtype


def compute_properties(
    model: torch.nn.Module,
    atoms: ase.Atoms,
    forces: bool = True,
    stress: bool = True,
    per_atom: bool = False,
) -> Dict[str, np.ndarray]:
    """Evaluate ``model`` on one structure.

    :return: ``energy`` (float, eV), ``forces`` (``[n_atoms, 3]``, eV/Å) if asked,
        ``stress`` (``[3, 3]``, eV/Å³, ASE sign convention: ``dE/dstrain / volume``)
        for fully periodic cells if asked, ``energies`` (``[n_atoms]``) if
        ``per_atom``
    """
    dtype = model_dtype(model)
    base = system_from_ase(atoms, dtype, positions_requires_grad=forces)
    positions = base.positions
    strain = torch.zeros((3, 3), dtype=dtype, requires_grad=stress)
    deformation = torch.eye(3, dtype=dtype) + strain
    system = System(
        types=base.types,
        positions=positions @ deformation,
        cell=base.cell @ deformation,
        pbc=base.pbc,
    )
    add_neighbor_lists([system], model)
    kind = "atom" if per_atom else "system"
    output = model([system], {"energy": ModelOutput(sample_kind=kind)}, None)
    values = output["energy"].block().values
    energy = values.sum()
    result: Dict[str, np.ndarray] = {"energy": np.array(float(energy.detach()))}
    if per_atom:
        result["energies"] = values.detach().reshape(-1).numpy().copy()
    inputs = []
    if forces:
        inputs.append(positions)
    if stress:
        inputs.append(strain)
    if inputs:
        grads = torch.autograd.grad(energy, inputs, allow_unused=True)
        if forces:
            g = grads[0]
            result["forces"] = (
                np.zeros(atoms.positions.shape) if g is None else -g.detach().numpy()
            )
        if stress:
            g = grads[-1]
            if atoms.pbc.all():
                result["stress"] = (
                    np.zeros((3, 3)) if g is None else g.detach().numpy()
                ) / atoms.get_volume()
    return result


def compute_energies(model: torch.nn.Module, frames: Sequence[ase.Atoms]) -> np.ndarray:
    """Total energies of several structures (no gradients)."""
    with torch.no_grad():
        return np.array(
            [
                compute_properties(model, a, forces=False, stress=False)["energy"]
                for a in frames
            ]
        )
