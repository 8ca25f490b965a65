"""Measurements of ``bench/ecse_grid.py``: equivariance errors over rotations and
CPU-time ratios to the plain model of the plain model, ECSE and the grid average of
each degree on one structure, and the check of the batched grid average against
``SymmetrizedModel`` itself."""

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import ase
import numpy as np
import torch
from ecse_grid_average import DTYPE, grid, grid_average
from ecse_measure import energy_forces, rotated, rotation_matrices
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta import Symmetrized
from pet_mta.neighbors import systems_from_ase

FLOOR = 1e-13
"""An error below this is float64 round-off: no higher degree is tried."""

Evaluation = Callable[[ase.Atoms], Tuple[float, np.ndarray]]


def timed(evaluate: Evaluation, atoms: ase.Atoms):
    """``evaluate(atoms)``: energy, forces, wall and CPU time (s)."""
    wall, cpu = time.perf_counter(), time.process_time()
    energy, forces = evaluate(atoms)
    return energy, forces, time.perf_counter() - wall, time.process_time() - cpu


def plain_cpu(pet: torch.nn.Module, atoms: ase.Atoms) -> Tuple[float, float]:
    """Minimum wall and CPU time of three plain energy + forces calls (s)."""
    times = [timed(plain_evaluation(pet), atoms)[2:] for _ in range(3)]
    return min(t[0] for t in times), min(t[1] for t in times)


def plain_evaluation(model: torch.nn.Module) -> Evaluation:
    """Energy and forces of ``model`` itself, float64."""
    return lambda atoms: energy_forces(model, atoms, DTYPE)[:2]


def errors(
    evaluate: Evaluation, atoms: ase.Atoms, rotations: List[np.ndarray]
) -> Dict[str, float]:
    """Equivariance errors of ``evaluate`` over ``rotations`` of ``atoms``, and its
    minimum wall and CPU time per evaluation."""
    energies, forces, walls, cpus = [], [], [], []
    for rotation in rotations:
        energy, f, wall, cpu = timed(evaluate, rotated(atoms, rotation))
        energies.append(energy)
        forces.append(f @ rotation)  # back to the frame of ``atoms``
        walls.append(wall)
        cpus.append(cpu)
    energies = np.array(energies)
    forces = np.stack(forces)
    mean_forces = forces.mean(axis=0)
    return {
        "energy_rel": float(np.std(energies) / abs(np.mean(energies))),
        "energy_ev_atom": float(np.std(energies) / len(atoms)),
        "force_rel": float(
            np.sqrt(np.mean((forces - mean_forces) ** 2))
            / np.sqrt(np.mean(mean_forces**2))
        ),
        "wall_s": min(walls),
        "cpu_s": min(cpus),
    }


def with_ratio(result: Dict[str, float], plain: Tuple[float, float]):
    """``result`` with the plain times and its CPU and wall ratios to them."""
    result["plain_wall_s"], result["plain_cpu_s"] = plain
    result["ratio"] = result["cpu_s"] / plain[1]
    result["wall_ratio"] = result["wall_s"] / plain[0]
    return result


def check_against_metatomic(pet, atoms, order: int, batch: int) -> Dict[str, float]:
    """``SymmetrizedModel`` itself against ``grid_average`` on one grid: largest
    energy and force differences, and the ratio of their CPU times."""
    model = SymmetrizedModel(
        pet,
        max_angular_momentum_target=0,
        max_angular_momentum_grid=order,
        batch_size=batch,
    )
    rotations, weights = grid(pet, order)
    ours = timed(lambda a: grid_average(pet, a, rotations, weights, batch), atoms)
    theirs = timed(lambda a: energy_forces(model, a, DTYPE)[:2], atoms)
    return {
        "order": order,
        "energy_diff": abs(ours[0] - theirs[0]),
        "force_diff": float(np.abs(ours[1] - theirs[1]).max()),
        "cpu_ratio": theirs[3] / ours[3],
    }


def structure_rows(
    pet, name: str, atoms: ase.Atoms, args, previous: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """Plain, ECSE and the grid degrees ``args.orders`` on one structure; with
    ``previous`` (its results of an earlier run, same rotations), only the degrees
    it lacks are measured and appended."""
    rotations = rotation_matrices(args.rotations, seed=3)
    if previous is not None:
        if previous["rotations"] != args.rotations:
            raise SystemExit(
                f"--rotations must be {previous['rotations']} to append to "
                f"the results of {name}"
            )
        return grid_rows(pet, atoms, args, rotations, previous)
    result: Dict[str, Any] = {
        "structure": name,
        "atoms": len(atoms),
        "periodic": bool(atoms.pbc.any()),
        "rotations": args.rotations,
        "checks": [],
        "lebedev": [],
    }
    plain = plain_cpu(pet, atoms)
    result["plain"] = with_ratio(errors(plain_evaluation(pet), atoms, rotations), plain)
    print(name, "plain", result["plain"], flush=True)
    ecse = {"ECSE (defaults)": Symmetrized(pet)}
    if atoms.pbc.any():
        ecse["ECSE (spread_margin=0.02)"] = Symmetrized(pet, spread_margin=0.02)
    else:
        ecse["ECSE local"] = Symmetrized(pet, mode="local")
    result["ecse"] = {}
    for label, model in ecse.items():
        systems = systems_from_ase([atoms], model, dtype=DTYPE)
        plain = plain_cpu(pet, atoms)
        row = with_ratio(errors(plain_evaluation(model), atoms, rotations), plain)
        row["mode"] = "local" if model.use_local_mode(systems) else "whole"
        result["ecse"][label] = row
        print(name, label, row, flush=True)
    return grid_rows(pet, atoms, args, rotations, result)


def grid_rows(pet, atoms, args, rotations, result: Dict[str, Any]) -> Dict[str, Any]:
    """Append the grid degrees of ``args.orders`` that ``result`` lacks."""
    name = result["structure"]
    done = {row["order"] for row in result["lebedev"]}
    result.pop("stopped", None)
    per_copy = None
    for order in args.orders:
        if order in done:
            continue
        rotations_grid, weights = grid(pet, order)
        copies = 2 * len(weights)
        if per_copy is not None:
            estimate = per_copy * copies * args.rotations
            if estimate > args.max_seconds:
                result["stopped"] = {"order": order, "estimate_s": estimate}
                break
        if copies * len(atoms) <= args.check_copies:
            check = check_against_metatomic(pet, atoms, order, args.batch)
            result["checks"].append(check)
            print(name, "check", check, flush=True)
        plain = plain_cpu(pet, atoms)
        start = time.process_time()
        row = with_ratio(
            errors(
                lambda a, r=rotations_grid, w=weights: grid_average(
                    pet, a, r, w, args.batch
                ),
                atoms,
                rotations,
            ),
            plain,
        )
        per_copy = (time.process_time() - start) / (copies * args.rotations)
        row.update(order=order, grid_rotations=len(weights), copies=copies)
        result["lebedev"].append(row)
        result["lebedev"].sort(key=lambda row: row["order"])
        print(name, "L", order, row, flush=True)
        if row["energy_rel"] < FLOOR and row["force_rel"] < FLOOR:
            break
    return result
