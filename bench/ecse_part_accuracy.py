"""The ``accuracy`` part of ``bench/ecse.py``: an exported model, plain and wrapped
in ECSE, on held-out structures (float32): errors against the references, the
difference to the plain predictions, time, and the spread over rotations."""

import json
from pathlib import Path
from typing import Any, Dict

import ase.io
import numpy as np
import torch
from ecse_measure import energy_forces, rotated, rotation_matrices
from ecse_systems import parameters

from pet_mta import Symmetrized
from pet_mta.wrappers.loading import WrapperModule, load_model


class Plain(WrapperModule):
    """A saved model's bare module, called like the ECSE wrapper
    (``model(systems, outputs, selected_atoms)``, no unit conversion or checks);
    :class:`WrapperModule` requests the neighbour lists the module needs."""

    def __init__(self, path: Path):
        backbone = load_model(path)
        super().__init__([backbone])
        self.module = backbone.module

    def forward(self, systems, outputs, selected_atoms=None):
        return self.module(systems, outputs, selected_atoms)


def accuracy_part(args) -> Dict[str, Any]:
    plain = Plain(args.trained)
    options = json.loads(args.ecse_options)
    models: Dict[str, Any] = {"plain": plain}
    for mode in args.modes:
        models[f"ECSE {mode}"] = Symmetrized(args.trained, mode=mode, **options)
    chunks = {key: args.chunk if key == "ECSE local" else 0 for key in models}
    dtype = torch.float32
    frames = ase.io.read(args.test, index=f":{args.n_test}")
    # warm-up: TorchScript optimises during the first calls
    smallest = min(frames, key=len)
    for key, model in models.items():
        for _ in range(2 if key == "plain" else 1):
            energy_forces(model, smallest, dtype, chunks[key])
    reference = []
    predicted: Dict[str, list] = {key: [] for key in models}
    times = {key: 0.0 for key in models}
    for atoms in frames:
        reference.append(
            (atoms.calc.results["energy"], np.array(atoms.calc.results["forces"]))
        )
        for key, model in models.items():
            energy, forces, elapsed = energy_forces(model, atoms, dtype, chunks[key])
            predicted[key].append((energy, forces))
            times[key] += elapsed
    n_atoms = np.array([len(a) for a in frames])
    e_ref = np.array([e for e, _ in reference]) / n_atoms
    f_ref = np.concatenate([f for _, f in reference])
    step = max(1, len(f_ref) // 500)  # forces of about 500 atoms for the plot
    ecse = models[f"ECSE {args.modes[0]}"]
    result: Dict[str, Any] = {
        "model": str(args.trained),
        "description": args.trained_description,
        "parameters": parameters(plain),
        "interaction_range": float(ecse.info.backbone.interaction_range),
        "ecse_options": options,
        "test": str(args.test),
        "structures": len(frames),
        "periodic": bool(any(a.pbc.any() for a in frames)),
        "atoms": [int(n_atoms.min()), int(n_atoms.max())],
        "models": {},
    }
    for key, values in predicted.items():
        e = np.array([e for e, _ in values]) / n_atoms
        f = np.concatenate([f for _, f in values])
        result["models"][key] = {
            "energy_mae_mev_atom": float(1000 * np.mean(np.abs(e - e_ref))),
            "force_mae_mev_a": float(1000 * np.mean(np.abs(f - f_ref))),
            "seconds_per_structure": times[key] / len(frames),
            "energies_per_atom": e.tolist(),
            "forces_sample": np.round(f[::step], 4).tolist(),
            # how far the symmetrized predictions are from the plain ones
            "vs_plain_energy_mev_atom": float(
                1000
                * np.mean(
                    np.abs(e - np.array([e for e, _ in predicted["plain"]]) / n_atoms)
                )
            ),
            "vs_plain_force_mev_a": float(
                1000
                * np.mean(
                    np.abs(f - np.concatenate([f for _, f in predicted["plain"]]))
                )
            ),
        }
    result["energies_per_atom_reference"] = e_ref.tolist()
    result["forces_sample_reference"] = np.round(f_ref[::step], 4).tolist()
    # equivariance error of the trained model on the smallest structure
    atoms = frames[int(np.argmin(n_atoms))]
    spread = {}
    for key, model in models.items():
        energies = [
            energy_forces(model, rotated(atoms, r), dtype, chunks[key])[0]
            for r in rotation_matrices(args.accuracy_rotations, seed=2)
        ]
        spread[key] = float(1000 * np.std(energies) / len(atoms))
    result["rotation_structure_atoms"] = len(atoms)
    result["rotations"] = args.accuracy_rotations
    result["rotation_std_mev_atom"] = spread
    summary = {
        key: {k: v for k, v in model.items() if "_mae_" in k or k.startswith("sec")}
        for key, model in result["models"].items()
    }
    print(json.dumps(summary), result["rotation_std_mev_atom"], flush=True)
    return result
