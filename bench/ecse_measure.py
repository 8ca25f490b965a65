"""One energy + forces evaluation, its wall time, ECSE frame counts and the spread
of the total energy over random rotations (``bench/ecse.py`` and its siblings)."""

import time
from typing import Any, Dict, List

import ase
import numpy as np
import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput

from pet_mta.neighbors import systems_from_ase
from pet_mta.wrappers.ecse.frames import frames_per_group


def rotation_matrices(n: int, seed: int) -> List[np.ndarray]:
    """``n`` random proper rotations (uniform, QR of Gaussian matrices)."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        result.append(q)
    return result


def rotated(atoms: ase.Atoms, rotation: np.ndarray) -> ase.Atoms:
    """A copy of ``atoms`` with positions (and cell) rotated by ``rotation``."""
    copy = atoms.copy()
    copy.positions = atoms.positions @ rotation.T
    if atoms.pbc.any():
        copy.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return copy


def energy_forces(model, atoms: ase.Atoms, dtype: torch.dtype, chunk: int = 0):
    """Total energy, forces ``[N, 3]`` and wall time (s) of one evaluation.

    With ``chunk > 0`` (ECSE local mode), the energy is computed for ``chunk`` atoms
    at a time (``selected_atoms``) and each part is differentiated at once: the same
    energy and forces, without keeping the autograd graph of every frame of every
    atom in memory at the same time.
    """
    start = time.perf_counter()
    systems = systems_from_ase(
        [atoms], model, dtype=dtype, positions_requires_grad=True
    )
    outputs = {"energy": ModelOutput(sample_kind="system")}
    n = len(atoms)
    parts = range(0, n, chunk) if chunk > 0 else [0]
    total = 0.0
    for first in parts:
        selected = None
        if chunk > 0:
            atom = torch.arange(first, min(first + chunk, n))
            selected = Labels(
                ["system", "atom"],
                torch.stack([torch.zeros_like(atom), atom], dim=1).to(torch.int32),
            )
        energy = model(systems, outputs, selected)["energy"].block().values.sum()
        # the neighbour-list vectors are shared by every part: keep their graph
        energy.backward(retain_graph=chunk > 0)
        total += float(energy.detach())
    forces = -systems[0].positions.grad
    elapsed = time.perf_counter() - start
    return total, forces.detach().double().numpy(), elapsed


def frame_stats(model, atoms: ase.Atoms, dtype: torch.dtype):
    """Frames of a :class:`Symmetrized`: per atom (local) or per structure (whole)."""
    system = systems_from_ase([atoms], model, dtype=dtype)[0]
    nl = system.get_neighbor_list(model.frame_list)
    centers = nl.samples.column("first_atom").to(torch.long)
    n = len(atoms)
    local = model.mode == "local"
    groups = torch.arange(n) if local else torch.zeros(n, dtype=torch.long)
    _, _, owner, _ = frames_per_group(
        centers,
        nl.values.reshape(-1, 3),
        n,
        groups,
        n if local else 1,
        model.hypers,
        model.inversion,
        # as in local mode: the spread_margin rule applies to periodic systems
        spread_margin=local and bool(atoms.pbc.any()),
    )
    counts = torch.bincount(owner, minlength=n if local else 1).double()
    return float(counts.mean()), int(counts.max())


def over_rotations(model, atoms, args, dtype, chunk: int = 0) -> Dict[str, Any]:
    """Energies over random rotations: relative std, median time per call.

    ``args.rotations`` rotations, fewer (at least ``args.min_rotations``) when they
    would take more than ``args.rotation_seconds``.
    """
    energies, times = [], []
    for k, rotation in enumerate(rotation_matrices(args.rotations, seed=1)):
        energy, _, elapsed = energy_forces(
            model, rotated(atoms, rotation), dtype, chunk
        )
        energies.append(energy)
        times.append(elapsed)
        if k + 1 >= args.min_rotations:
            if sum(times) + np.median(times) > args.rotation_seconds:
                break
    energies = np.array(energies)
    return {
        "rotations": len(energies),
        "std": float(np.std(energies)),
        "relative_std": float(np.std(energies) / abs(np.mean(energies))),
        "seconds": float(np.median(times)),
    }
