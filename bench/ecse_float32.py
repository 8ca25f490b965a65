"""ECSE in float32: how frame pruning sets the equivariance error of the forces.

For a small random PET (float32 and float64 copies of the same weights), every ECSE
mode and pruning setting, on a molecule (rattled ethanol) and the smallest periodic
cell of ``hea_emt_train.xyz``:

- ``float32``: relative force error under random rotations of a float32 evaluation,
  ``max |F(Rx) - R F(x)| / max |F|``;
- ``rounded inputs``: the same in float64 for positions (and cell) rounded to
  float32: the error that comes from the conditioning of the model alone, which no
  arithmetic can remove;
- frames per atom (local mode, 108-atom fcc alloy) and per structure (whole mode,
  the HEA cell).

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_float32.py [--data HEA.xyz]

Results go to ``docs/src/bench/ecse_float32.{json,md}``.
"""

import argparse
import json
import sys
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ecse_measure import frame_stats, rotated, rotation_matrices  # noqa: E402
from ecse_systems import alloy  # noqa: E402
from metatomic.torch import ModelOutput  # noqa: E402

from pet_mta import PET, Symmetrized  # noqa: E402
from pet_mta.neighbors import systems_from_ase  # noqa: E402

SETTINGS = {
    "4 prunings (published)": {"n_prunings": 4},
    "1 pruning": {"n_prunings": 1},
    "no pruning (default)": {},
}
TYPES = [1, 6, 8, 13, 28, 29, 46, 47, 78, 79]


def backbone(dtype: torch.dtype) -> PET:
    torch.manual_seed(0)
    model = PET(
        atomic_types=TYPES,
        cutoff=4.0,
        cutoff_width=0.5,
        d_pet=16,
        d_head=16,
        d_node=16,
        d_feedforward=16,
        num_heads=2,
        num_gnn_layers=1,
    )
    return model.to(dtype).eval()


def forces(model, atoms, dtype) -> np.ndarray:
    system = systems_from_ase(
        [atoms], model, dtype=dtype, positions_requires_grad=True
    )[0]
    outputs = {"energy": ModelOutput(sample_kind="system")}
    energy = model([system], outputs, None)["energy"].block().values.sum()
    (grad,) = torch.autograd.grad(energy, system.positions)
    return -grad.double().numpy()


def rounded(atoms):
    copy = atoms.copy()
    copy.positions = atoms.positions.astype(np.float32).astype(np.float64)
    if atoms.pbc.any():
        copy.set_cell(atoms.cell.array.astype(np.float32).astype(np.float64))
    return copy


def rotation_error(model, atoms, dtype, prepare, rotations) -> float:
    reference = forces(model, prepare(atoms), dtype)
    errors = []
    for r in rotations:
        other = forces(model, prepare(rotated(atoms, r)), dtype)
        errors.append(np.abs(other - reference @ r.T).max() / np.abs(reference).max())
    return float(max(errors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/hea_emt_train.xyz"
    )
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/src/bench")
    args = parser.parse_args()
    hea = min(ase.io.read(args.data, ":200"), key=len)
    ethanol = ase.build.molecule("CH3CH2OH")
    ethanol.rattle(0.02, seed=3)
    structures = {"ethanol": ethanol, f"HEA cell ({len(hea)} atoms)": hea}
    fcc = alloy(108)
    rotations = rotation_matrices(args.rotations, seed=11)
    pets = {
        torch.float32: backbone(torch.float32),
        torch.float64: backbone(torch.float64),
    }
    rows = []
    for setting, hypers in SETTINGS.items():
        for mode in ("local", "whole"):
            models = {d: Symmetrized(p, mode=mode, **hypers) for d, p in pets.items()}
            row = {"setting": setting, "hypers": hypers, "mode": mode}
            for name, atoms in structures.items():
                row[name] = {
                    "float32": rotation_error(
                        models[torch.float32],
                        atoms,
                        torch.float32,
                        lambda a: a,
                        rotations,
                    ),
                    "rounded inputs": rotation_error(
                        models[torch.float64], atoms, torch.float64, rounded, rotations
                    ),
                }
            target = fcc if mode == "local" else hea
            row["frames"] = frame_stats(models[torch.float64], target, torch.float64)[0]
            print(json.dumps(row), flush=True)
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ecse_float32.json").write_text(json.dumps(rows, indent=1))
    names = list(structures)
    lines = [
        "Relative force error under rotations, `max |F(Rx) - R F(x)| / max |F|`, "
        "of a small random PET wrapped in ECSE (max over "
        f"{args.rotations} rotations). *float32*: float32 evaluation; *rounded*: "
        "float64 evaluation of positions rounded to float32 (the model's own "
        "conditioning). Frames: per atom in a 108-atom fcc alloy (local), per "
        f"structure for the {len(hea)}-atom HEA cell (whole). Command: "
        "`OMP_NUM_THREADS=1 python bench/ecse_float32.py`.",
        "",
        "| pruning | mode | "
        + " | ".join(f"{n} float32 | {n} rounded" for n in names)
        + " | frames |",
        "|---|---|" + "---|---|" * len(names) + "---|",
    ]
    for row in rows:
        cells = []
        for n in names:
            cells += [f"{row[n]['float32']:.0e}", f"{row[n]['rounded inputs']:.0e}"]
        lines.append(
            f"| {row['setting']} | {row['mode']} | "
            + " | ".join(cells)
            + f" | {row['frames']:.0f} |"
        )
    (args.out / "ecse_float32.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
