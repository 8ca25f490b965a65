"""ECSE cost and equivariance benchmark.

Measures, for a small float64 PET, on CH4 and fcc alloy cells (optionally a water
box and larger cells):

- time of one energy+forces evaluation: plain backbone, ECSE whole mode, ECSE local
  mode, metatomic's Lebedev-grid ``SymmetrizedModel`` (default grid), as ratios to
  the plain backbone;
- ECSE frames per group (whole: per structure / atom; local: per atom, mean and max);
- equivariance error: std of the energy over random rotations, plain and wrapped.

Usage: ``python bench/ecse.py [--large] [--rotations 20]``. ``--large`` adds the
192-atom water box and 256- and 1000-atom alloys (slow on a laptop CPU).
"""

import argparse
import time

import ase
import ase.build
import numpy as np
import torch
from metatomic.torch import ModelOutput
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta import PET, Symmetrized
from pet_mta.neighbors import systems_from_ase
from pet_mta.wrappers.ecse.frames import frames_per_group


def structures(large: bool):
    result = {"CH4": ase.build.molecule("CH4")}
    alloy = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    alloy.numbers[::3] = 28
    alloy.rattle(0.05, seed=0)
    result["fcc alloy 32"] = alloy
    if large:
        water = ase.build.molecule("H2O")
        box = ase.Atoms(cell=[12.4, 12.4, 12.4], pbc=True)
        rng = np.random.default_rng(0)
        grid = np.stack(np.meshgrid(*[np.arange(4)] * 3), -1).reshape(-1, 3)
        for point in grid:
            molecule = water.copy()
            molecule.rotate(rng.uniform(0, 360), rng.normal(size=3))
            molecule.translate((point + 0.5) * 3.1)
            box += molecule
        result["water 192"] = box
        for n in (256, 1000):
            repeat = round((n / 4) ** (1 / 3))
            cell = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
            cell.numbers[::3] = 28
            cell.rattle(0.05, seed=0)
            result[f"fcc alloy {len(cell)}"] = cell
    return result


def energy_forces(model, atoms):
    systems = systems_from_ase([atoms], model, positions_requires_grad=True)
    out = model(systems, {"energy": ModelOutput(sample_kind="system")}, None)
    energy = out["energy"].block().values.sum()
    energy.backward()
    return float(energy)


def timed(model, atoms, repeat=2):
    energy_forces(model, atoms)
    start = time.perf_counter()
    for _ in range(repeat):
        energy_forces(model, atoms)
    return (time.perf_counter() - start) / repeat


def rotation_std(model, atoms, n):
    rng = np.random.default_rng(1)
    energies = []
    for _ in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rotated = atoms.copy()
        rotated.positions = atoms.positions @ q.T
        if atoms.pbc.any():
            rotated.set_cell(atoms.cell.array @ q.T)
        energies.append(energy_forces(model, rotated))
    return float(np.std(energies) / abs(np.mean(energies)))


def frame_stats(model, atoms):
    system = systems_from_ase([atoms], model)[0]
    nl = system.get_neighbor_list(model.frame_list)
    centers = nl.samples.column("first_atom").to(torch.long)
    n = len(atoms)
    local = model.local
    groups = torch.arange(n) if local else torch.zeros(n, dtype=torch.long)
    _, _, owner, _ = frames_per_group(
        centers,
        nl.values.reshape(-1, 3),
        n,
        groups,
        n if local else 1,
        model.hypers,
        model.inversion,
    )
    counts = torch.bincount(owner, minlength=n if local else 1).double()
    return float(counts.mean()), int(counts.max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--rotations", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    pet = (
        PET(
            atomic_types=[1, 6, 8, 28, 29],
            cutoff=4.0,
            d_pet=32,
            d_head=32,
            d_node=32,
            d_feedforward=32,
            num_heads=2,
            num_gnn_layers=2,
        )
        .double()
        .eval()
    )
    whole = Symmetrized(pet, mode="whole")
    local = Symmetrized(pet, mode="local")
    lebedev = SymmetrizedModel(pet, max_angular_momentum_target=0)
    print(
        f"{'structure':14} {'N':>5} {'plain s':>8} {'whole x':>8} {'local x':>8} "
        f"{'lebedev x':>9} {'frames whole':>12} {'frames/atom local':>17} "
        f"{'std plain':>9} {'std whole':>9} {'std local':>9}"
    )
    for name, atoms in structures(args.large).items():
        plain = timed(pet, atoms)
        t_whole = timed(whole, atoms, 1) if len(atoms) <= 64 else float("nan")
        t_local = timed(local, atoms, 1)
        t_leb = timed(lebedev, atoms, 1) if len(atoms) <= 64 else float("nan")
        fw = frame_stats(whole, atoms)
        fl = frame_stats(local, atoms)
        stds = [rotation_std(m, atoms, args.rotations) for m in (pet, whole, local)]
        print(
            f"{name:14} {len(atoms):5d} {plain:8.3f} {t_whole / plain:8.1f} "
            f"{t_local / plain:8.1f} {t_leb / plain:9.1f} {fw[0]:12.0f} "
            f"{fl[0]:8.1f} (max {fl[1]:3d}) {stds[0]:9.1e} {stds[1]:9.1e} "
            f"{stds[2]:9.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
