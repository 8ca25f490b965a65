"""Train a small Cu model with energy, forces and *direct* forces for the MTS example.

    python train_mts_model.py model.pt [n_steps]

EMT (ASE) labels rattled and strained fcc Cu cells; the model learns the energy,
its gradient (conservative forces) and a direct-force head
(``non_conservative_force``) on the same forces, jointly. About a minute on one
core with the defaults; a real model comes from ``mtt train`` with the
``non_conservative_force`` target (see ``README.md``).
"""

import sys
from typing import List

import ase
import ase.build
import numpy as np
import torch
from ase.calculators.emt import EMT
from metatomic.torch import ModelOutput

from pet_mta import PET
from pet_mta.neighbors import systems_from_ase

DIRECT_FORCES = "non_conservative_force"
HYPERS = dict(
    cutoff=4.0,
    cutoff_width=0.5,
    d_pet=16,
    d_head=16,
    d_node=16,
    d_feedforward=32,
    num_heads=2,
    num_attention_layers=1,
    num_gnn_layers=1,
)


def emt_frames(n: int, seed: int = 0) -> List[ase.Atoms]:
    """``n`` rattled, slightly strained 32-atom fcc Cu cells with EMT labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        strain = np.eye(3) + 0.01 * rng.normal(size=(3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(scale=rng.uniform(0.03, 0.12), size=(32, 3))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


def train(n_frames: int = 16, n_steps: int = 300, seed: int = 0, **hypers) -> PET:
    """Full-batch Adam on energy (per atom), conservative and direct forces.

    :param hypers: overrides of :data:`HYPERS`
    """
    torch.manual_seed(seed)
    frames = emt_frames(n_frames, seed)
    model = PET(
        atomic_types=[29],
        targets={
            "energy": {"unit": "eV", "quantity": "energy"},
            DIRECT_FORCES: {"kind": "cartesian", "unit": "eV/angstrom"},
        },
        **dict(HYPERS, **hypers),
    ).to(torch.float64)
    energies = torch.tensor([f.info["energy"] for f in frames])
    forces = torch.tensor(np.concatenate([f.arrays["forces"] for f in frames]))
    n_atoms = len(frames[0])
    model.set_baseline("energy", {29: float(energies.mean()) / n_atoms})
    model.set_scale("energy", 0.05)
    model.set_scale(DIRECT_FORCES, float(forces.std()))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    for _ in range(n_steps):
        systems = systems_from_ase(frames, model, positions_requires_grad=True)
        out = model(
            systems,
            {
                "energy": ModelOutput(sample_kind="system"),
                DIRECT_FORCES: ModelOutput(sample_kind="atom"),
            },
        )
        energy = out["energy"].block().values[:, 0]
        gradient = torch.autograd.grad(
            energy.sum(), [s.positions for s in systems], create_graph=True
        )
        conservative = -torch.cat(gradient)
        direct = out[DIRECT_FORCES].block().values[..., 0]
        loss = (
            ((energy - energies) / n_atoms).pow(2).mean() / 0.01**2
            + (conservative - forces).pow(2).mean() / 0.1**2
            + (direct - forces).pow(2).mean() / 0.1**2
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "model.pt"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    train(n_steps=steps).export().save(path)
    print(f"saved {path}")
