"""ECSE in molecular dynamics: energy conservation against frame pruning.

NVE (velocity Verlet, ASE, metatomic calculator) with a trained, exported model,
plain and wrapped in ECSE local mode with several pruning settings, from the same
Maxwell-Boltzmann velocities. Reports the largest deviation of the total energy
from its start (meV/atom), the frames per atom and the cost per step.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_nve.py --model MODEL.pt \\
        [--data HEA.xyz] [--steps 100] [--temperature 1000] [--timestep 1.0]

Results go to ``docs/src/bench/ecse_nve.{json,md,png}``.
"""

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import ase.io
import numpy as np
import torch
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator

from pet_mta import Symmetrized
from pet_mta.md import run_nve
from pet_mta.wrappers.ecse import PUBLISHED_INNER_CUTOFF

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ecse_measure import frame_stats  # noqa: E402

SETTINGS = {
    "plain model": None,
    "ECSE, 4 prunings (published)": {"n_prunings": 4},
    "ECSE, 1 pruning": {"n_prunings": 1},
    "ECSE, no pruning (default)": {"n_prunings": 0},
    # the published inner cutoff (before pet_mta's spread penalty, docs/src/ecse.rst)
    "ECSE, published inner cutoff": PUBLISHED_INNER_CUTOFF,
    # the opt-in frame rule for periodic cells (see docs/src/bench/ecse_cost.md)
    "ECSE, spread_margin 0.02": {"spread_margin": 0.02},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--description", default="an exported pet_mta model")
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/hea_emt_train.xyz"
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1000.0)
    parser.add_argument("--timestep", type=float, default=1.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument(
        "--box",
        type=float,
        default=None,
        help="put the (molecular) structure in a periodic cubic box, this many "
        "angstrom wider than the structure",
    )
    parser.add_argument("--name", default="ecse_nve", help="stem of the output files")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/src/bench")
    args = parser.parse_args()
    torch.set_num_threads(1)
    atoms = min(ase.io.read(args.data, ":200"), key=len)
    if args.box is not None:
        atoms = in_box(atoms, args.box)
    path = args.out / f"{args.name}.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["meta"] = {
        "command": shlex.join(["python", "bench/ecse_nve.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": args.description,
        "structure": f"smallest structure of {args.data.name} ({len(atoms)} atoms"
        + (f", in a periodic box {args.box:g} A wider)" if args.box else ")"),
        "steps": args.steps,
        "temperature": args.temperature,
        "timestep_fs": args.timestep,
    }
    for name in args.settings:
        options = SETTINGS[name]
        if options is None:
            model = load_atomistic_model(str(args.model))
            frames = None
        else:
            wrapper = Symmetrized(str(args.model), mode="local", **options)
            frames = frame_stats(wrapper, atoms, torch.float32)[0]
            model = wrapper.export()
        result = run_nve(
            atoms,
            MetatomicCalculator(model, check_consistency=False),
            steps=args.steps,
            timestep_fs=args.timestep,
            temperature_K=args.temperature,
            log=None,
        )
        total = 1000 * (result.total_energy - result.total_energy[0]) / len(atoms)
        results["runs"][name] = {
            "options": options,
            "frames_per_atom": frames,
            "drift_mev_atom": float(np.abs(total).max()),
            "seconds_per_step": result.seconds_per_step,
            "total_energy_mev_atom": total.tolist(),
        }
        print(
            name,
            json.dumps(
                {
                    k: v
                    for k, v in results["runs"][name].items()
                    if k != "total_energy_mev_atom"
                }
            ),
            flush=True,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
    write_report(results, args.out, args.name)


def in_box(atoms: ase.Atoms, padding: float) -> ase.Atoms:
    """``atoms`` centred in a periodic cube ``padding`` A wider than their extent."""
    boxed = atoms.copy()
    extent = np.ptp(boxed.positions, axis=0).max()
    boxed.set_cell([extent + padding] * 3)
    boxed.center()
    boxed.pbc = True
    return boxed


def write_report(results, out: Path, stem: str) -> None:
    meta = results["meta"]
    lines = [
        f"NVE in ASE, {meta['steps']} steps of {meta['timestep_fs']} fs from "
        f"{meta['temperature']:g} K Maxwell-Boltzmann velocities, {meta['structure']}; "
        f"model: {meta['model']}, float32, plain or wrapped in ECSE local mode. "
        "*Drift*: largest |E_tot(t) - E_tot(0)| over the run. Command: "
        f"`{meta['command']}` ({meta['date']}, 1 thread).",
        "",
        "| model | frames per atom | drift (meV/atom) | s per step |",
        "|---|---:|---:|---:|",
    ]
    for name, run in results["runs"].items():
        frames = (
            "-" if run["frames_per_atom"] is None else f"{run['frames_per_atom']:.1f}"
        )
        lines.append(
            f"| {name} | {frames} | {run['drift_mev_atom']:.3g} | "
            f"{run['seconds_per_step']:.3g} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in results["runs"].items():
        ax.plot(run["total_energy_mev_atom"], label=name)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel(f"step ({meta['timestep_fs']} fs)")
    ax.set_ylabel("E_tot(t) - E_tot(0) (meV/atom)")
    ax.set_title("NVE energy conservation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
