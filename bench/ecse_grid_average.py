"""metatomic's Lebedev-grid O(3) average, evaluated copy batch by copy batch
(``bench/ecse_grid.py``): the rotations and weights of ``SymmetrizedModel``'s grid,
and the averaged energy and forces with one batch's autograd graph alive at a time."""

from typing import Tuple

import ase
import numpy as np
import torch
from ecse_measure import rotated
from metatomic.torch import ModelOutput
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta.neighbors import systems_from_ase

DTYPE = torch.float64
ENERGY = {"energy": ModelOutput(sample_kind="system")}


def grid(pet: torch.nn.Module, order: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[R, 3, 3]`` and weights ``[R]`` of metatomic's grid of degree
    ``order`` (read from a ``SymmetrizedModel``, so that they are its own)."""
    model = SymmetrizedModel(
        pet, max_angular_momentum_target=0, max_angular_momentum_grid=order
    )
    rotations = torch.cat([batch.matrices for batch in model._batches])
    return rotations.to(DTYPE), model._rotation_weights.to(DTYPE)


def grid_average(
    pet: torch.nn.Module,
    atoms: ase.Atoms,
    rotations: torch.Tensor,
    weights: torch.Tensor,
    batch: int,
) -> Tuple[float, np.ndarray]:
    """O(3) grid average of the energy (eV) and its forces ``[N, 3]`` (eV/Å).

    Every rotation ``R`` of the grid gives a proper copy (``x R^T``) and an
    improper one (``-x R^T``), each of weight ``w / 2``, as in
    ``SymmetrizedModel``; ``batch`` copies per backbone call, each call
    differentiated at once (only one batch's graph is alive at a time).
    """
    signs = torch.tensor([1.0, -1.0], dtype=DTYPE)
    matrices = (signs[:, None, None, None] * rotations[None]).reshape(-1, 3, 3)
    copy_weights = (0.5 * weights).repeat(2)
    copy_weights = copy_weights / copy_weights.sum()
    energy = 0.0
    forces = np.zeros((len(atoms), 3))
    for start in range(0, len(matrices), batch):
        group = matrices[start : start + batch]
        copies = [rotated(atoms, m.numpy()) for m in group]
        systems = systems_from_ase(
            copies, pet, dtype=DTYPE, positions_requires_grad=True
        )
        values = pet(systems, ENERGY, None)["energy"].block().values.reshape(-1)
        total = (copy_weights[start : start + batch] * values).sum()
        total.backward()
        energy += float(total.detach())
        for m, system in zip(group, systems):
            # x' = x M^T, so dE/dx = dE/dx' M
            forces -= (system.positions.grad @ m).numpy()
    return energy, forces
