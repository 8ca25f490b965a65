"""The ``cost`` part of ``bench/ecse.py``: time, frames and equivariance error of
the plain backbone, ECSE (local and whole mode) and metatomic's Lebedev-grid
average on each structure (random-weight float64 PET, energy + forces)."""

import json
from typing import Any, Callable, Dict

import ase.build
import torch
from ecse_measure import energy_forces, frame_stats, over_rotations
from ecse_systems import BACKBONE, FINE_GRID, bench_model, parameters, structures
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta import Symmetrized


def cost_part(args, save: Callable[[Dict[str, Any]], None]) -> None:
    """The cost part; ``save(partial_result)`` is called after every structure."""
    pet = bench_model()
    models = {
        "plain": pet,
        "local": Symmetrized(pet, mode="local"),
        "whole": Symmetrized(pet, mode="whole"),
        "lebedev": SymmetrizedModel(pet, max_angular_momentum_target=0),
        "lebedev_fine": SymmetrizedModel(
            pet, max_angular_momentum_target=0, max_angular_momentum_grid=FINE_GRID
        ),
    }
    dtype = torch.float64
    # warm-up (first calls allocate and import lazily)
    warm = ase.build.molecule("CH4")
    for model in models.values():
        energy_forces(model, warm, dtype)
    rows = []
    for name, atoms in structures(args.structures).items():
        n = len(atoms)
        plain_s = min(energy_forces(pet, atoms, dtype)[2] for _ in range(3))
        local_frames = frame_stats(models["local"], atoms, dtype)
        whole_frames = frame_stats(models["whole"], atoms, dtype)[1]
        # Lebedev default grid: n_rotations copies, cost ~ n_rotations x plain
        n_lebedev = int(models["lebedev"]._rotation_weights.shape[0])
        n_fine = int(models["lebedev_fine"]._rotation_weights.shape[0])
        estimates = {
            "plain": plain_s,
            "local": plain_s * local_frames[0] * n,  # an upper bound
            "whole": plain_s * whole_frames,
            "lebedev": plain_s * n_lebedev,
            "lebedev_fine": plain_s * n_fine,
        }
        copies = {"whole": whole_frames, "lebedev_fine": n_fine}
        row: Dict[str, Any] = {
            "structure": name,
            "atoms": n,
            "periodic": bool(atoms.pbc.any()),
            "frames_local_mean": local_frames[0],
            "frames_local_max": local_frames[1],
            "frames_whole": whole_frames,
            "lebedev_rotations": n_lebedev,
            "lebedev_fine_rotations": n_fine,
            "models": {},
        }
        for key, model in models.items():
            too_big = copies.get(key, 0) * n > args.max_whole_atoms
            if key != "local" and (estimates[key] > args.max_seconds or too_big):
                row["models"][key] = {"skipped": True, "estimate_s": estimates[key]}
                continue
            chunk = args.chunk if key == "local" else 0
            try:
                result = over_rotations(model, atoms, args, dtype, chunk)
            except RuntimeError as error:
                if "allocate" not in str(error):
                    raise
                row["models"][key] = {"failed": "out of memory"}
                continue
            if key == "plain":
                result["seconds"] = min(result["seconds"], plain_s)
            row["models"][key] = result
        for result in row["models"].values():
            if "seconds" in result:
                result["ratio"] = result["seconds"] / row["models"]["plain"]["seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        save(
            {
                "backbone": dict(BACKBONE, dtype="float64", parameters=parameters(pet)),
                "interaction_range": float(
                    pet.export().capabilities().interaction_range
                ),
                "chunk": args.chunk,
                "rows": rows,
            }
        )
