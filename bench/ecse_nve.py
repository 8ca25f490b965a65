"""ECSE in molecular dynamics: energy conservation against frame pruning.

NVE (velocity Verlet, ASE, metatomic calculator) with a trained, exported model,
plain and wrapped in ECSE local mode with several pruning settings, from the same
Maxwell-Boltzmann velocities, one trajectory per start (``--seeds``: the seed of
the velocities). Reports the largest deviation of the total energy from its start
(meV/atom), its ratio to the plain model's from the same start, the frames per atom
and the cost per step.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_nve.py --model MODEL.pt \\
        [--data HEA.xyz] [--steps 100] [--temperature 1000] [--timestep 1.0] \\
        [--seeds 0 1 2 3]

``--model random --structure NAME`` runs the random-weight float64 backbone of the
ECSE benchmarks (``ecse_systems.bench_model``) on one of their structures instead.

Results go to ``docs/src/bench/ecse_nve.{json,md,png}``.
"""

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import ase.io
import numpy as np
import torch
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator

from pet_mta import Symmetrized
from pet_mta.files import atomic_write
from pet_mta.md import run_nve
from pet_mta.wrappers.ecse import PUBLISHED_INNER_CUTOFF

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ecse_measure import frame_stats  # noqa: E402
from ecse_systems import bench_model, structures  # noqa: E402

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
    args = parse_args()
    torch.set_num_threads(1)
    atoms, structure = load_structure(args)
    # parse_args: --structure comes with --model random and only with it
    random = args.structure is not None
    backbone = bench_model() if random else str(args.model)
    dtype = torch.float64 if random else torch.float32
    path = args.out / f"{args.name}.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["meta"] = {
        "command": shlex.join(["python", "bench/ecse_nve.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": args.description,
        "dtype": str(dtype).removeprefix("torch."),
        "structure": structure,
        "steps": args.steps,
        "temperature": args.temperature,
        "timestep_fs": args.timestep,
    }
    for name in args.settings:
        options = SETTINGS[name]
        if options is None:
            model = backbone.export() if random else load_atomistic_model(backbone)
            frames = None
        else:
            wrapper = Symmetrized(backbone, mode="local", **options)
            frames = frame_stats(wrapper, atoms, dtype)[0]
            model = wrapper.export()
        calculator = MetatomicCalculator(model, check_consistency=False)
        run = results["runs"].setdefault(name, {"starts": {}})
        run.update(options=options, frames_per_atom=frames)
        measured = {key: results["meta"][key] for key in ("command", "date")}
        for seed in args.seeds:
            run["starts"][str(seed)] = trajectory(atoms, calculator, args, seed)
            run["starts"][str(seed)]["measured"] = measured
            drift = run["starts"][str(seed)]["drift_mev_atom"]
            print(f"{name}, start {seed}: drift {drift:.4g} meV/atom", flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            text = json.dumps(results, indent=1)
            atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    write_report(results, args.out, args.name)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="an exported model, or 'random' for the benchmarks' random backbone",
    )
    parser.add_argument(
        "--description",
        default=None,
        help="what the model is, for the report (default: the model's path, or "
        "the random backbone's name)",
    )
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/hea_emt_train.xyz"
    )
    parser.add_argument(
        "--structure",
        default=None,
        help="a structure of bench/ecse_systems.py (e.g. 'fcc alloy 32') "
        "instead of the smallest one of --data",
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1000.0)
    parser.add_argument("--timestep", type=float, default=1.0)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="seeds of the initial velocities, one trajectory each",
    )
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
    unknown = [name for name in args.settings if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown --settings {unknown}; know {list(SETTINGS)}")
    if (str(args.model) == "random") != (args.structure is not None):
        parser.error("--structure goes with --model random (and only with it)")
    if args.description is None:
        args.description = (
            "the random-weight PET of the ECSE benchmarks (ecse_systems.bench_model)"
            if args.structure is not None
            else f"the exported model {args.model.name}"
        )
    return args


def load_structure(args) -> Tuple[ase.Atoms, str]:
    """The structure to run and its description."""
    if args.structure is not None:
        atoms = structures([args.structure])[args.structure]
        description = f"{args.structure} of bench/ecse_systems.py ({len(atoms)} atoms"
    else:
        atoms = min(ase.io.read(args.data, ":200"), key=len)
        description = f"smallest structure of {args.data.name} ({len(atoms)} atoms"
    if args.box is not None:
        atoms = in_box(atoms, args.box)
        description += f", in a periodic box {args.box:g} A wider"
    return atoms, description + ")"


def trajectory(atoms, calculator, args, seed: int) -> Dict[str, Any]:
    """One NVE run from the velocities of ``seed``: drift, cost, total energy."""
    result = run_nve(
        atoms,
        calculator,
        steps=args.steps,
        timestep_fs=args.timestep,
        temperature_K=args.temperature,
        seed=seed,
        log=None,
    )
    total = 1000 * (result.total_energy - result.total_energy[0]) / len(atoms)
    return {
        "drift_mev_atom": float(np.abs(total).max()),
        "seconds_per_step": result.seconds_per_step,
        "total_energy_mev_atom": total.tolist(),
    }


def in_box(atoms: ase.Atoms, padding: float) -> ase.Atoms:
    """``atoms`` centred in a periodic cube ``padding`` A wider than their extent."""
    boxed = atoms.copy()
    extent = np.ptp(boxed.positions, axis=0).max()
    boxed.set_cell([extent + padding] * 3)
    boxed.center()
    boxed.pbc = True
    return boxed


def write_report(results, out: Path, stem: str) -> None:
    """``stem``.md (one row per setting, drifts per start) and ``stem``.png."""
    meta = results["meta"]
    plain = results["runs"].get("plain model", {"starts": {}})["starts"]
    seeds = sorted({int(s) for run in results["runs"].values() for s in run["starts"]})
    lines = [
        f"NVE in ASE, {meta['steps']} steps of {meta['timestep_fs']} fs from "
        f"{meta['temperature']:g} K Maxwell-Boltzmann velocities (start *k*: seed *k* "
        f"of the velocities), {meta['structure']}; model: {meta['model']}, "
        f"{meta.get('dtype', 'float32')}, plain or wrapped in ECSE local mode. "
        "*Drift*: largest |E_tot(t) - E_tot(0)| over the run; *x plain*: against "
        f"the plain model from the same start. Command: `{meta['command']}` "
        f"({meta['date']}, 1 thread).",
        "",
        "| model | frames per atom | "
        + " | ".join(f"drift, start {s} (meV/atom) | x plain" for s in seeds)
        + " | s per step |",
        "|---|---:|" + "---:|---:|" * len(seeds) + "---:|",
    ]
    for name, run in results["runs"].items():
        frames = run["frames_per_atom"]
        cells = [name, "-" if frames is None else f"{frames:.1f}"]
        for seed in map(str, seeds):
            start = run["starts"].get(seed)
            drift = None if start is None else start["drift_mev_atom"]
            cells.append("" if drift is None else f"{drift:.3g}")
            ratio = seed in plain and drift is not None and name != "plain model"
            cells.append(
                f"{drift / plain[seed]['drift_mev_atom']:.2f}" if ratio else ""
            )
        times = [start["seconds_per_step"] for start in run["starts"].values()]
        cells.append(f"{np.median(times):.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    earlier: Dict[Tuple[str, str], Dict[str, List[str]]] = {}
    for name, run in results["runs"].items():
        for seed, start in run["starts"].items():
            measured = start.get("measured", meta)
            if measured["command"] != meta["command"]:
                key = (measured["command"], measured["date"])
                earlier.setdefault(key, {}).setdefault(name, []).append(seed)
    if earlier:
        lines += ["", "Measured by earlier commands:", ""]
        for (command, date), runs in earlier.items():
            which = "; ".join(f"{n} (starts {', '.join(s)})" for n, s in runs.items())
            lines.append(f"- {which}: `{command}` ({date})")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    plot(results, out / f"{stem}.png", seeds[0])


def plot(results, path: Path, seed: int) -> None:
    """Total energy against time for every setting, from start ``seed``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in results["runs"].items():
        if str(seed) in run["starts"]:
            ax.plot(run["starts"][str(seed)]["total_energy_mev_atom"], label=name)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel(f"step ({results['meta']['timestep_fs']} fs)")
    ax.set_ylabel("E_tot(t) - E_tot(0) (meV/atom)")
    ax.set_title(f"NVE energy conservation (start {seed})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
