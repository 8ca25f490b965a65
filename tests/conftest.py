"""Shared fixtures: small PET models and structures."""

import ase
import ase.build
import numpy as np
import pytest
import torch

from pet_mta import PET

torch.set_num_threads(1)

TINY = dict(
    d_pet=16,
    d_head=16,
    d_node=16,
    d_feedforward=16,
    num_heads=2,
    num_attention_layers=1,
    num_gnn_layers=2,
)


def tiny_pet(atomic_types=(1, 6, 8, 13, 29), dtype=torch.float64, seed=0, **hypers):
    """A small randomly initialised PET (deterministic for a given seed)."""
    torch.manual_seed(seed)
    options = dict(TINY, cutoff=3.5, cutoff_width=0.5)
    options.update(hypers)
    return PET(atomic_types=list(atomic_types), **options).to(dtype).eval()


def perturbed(model, seed: int = 5, std: float = 0.1):
    """``model`` with every weight moved by N(0, std²): the weights that start at
    zero (the per-layer species embeddings, the edge stream's) take part too."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(std * torch.randn_like(parameter))
    return model


def triclinic_alloy(seed: int = 1) -> ase.Atoms:
    """A rattled, sheared 2-species fcc cell (4 atoms), fully periodic."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.set_cell(
        atoms.cell.array
        + np.array([[0.0, 0.3, 0.1], [0.2, 0.0, -0.2], [0.1, 0.1, 0.0]]),
        scale_atoms=True,
    )
    atoms.numbers[[1, 3]] = 13
    atoms.rattle(0.08, seed=seed)
    return atoms


def molecule() -> ase.Atoms:
    """A small organic molecule (non-periodic)."""
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.rattle(0.02, seed=3)
    return atoms


@pytest.fixture
def model64():
    return tiny_pet()


@pytest.fixture
def alloy():
    return triclinic_alloy()
