"""Cost per MD step and energy drift: conservative vs direct vs multiple time stepping.

A toy Cu model is trained on EMT data with energy, forces and direct forces jointly
(``examples/engines/ipi-mts/train_mts_model.py``), then the same NVE trajectory
(fcc Cu, ``--repeat`` cubic cells, 300 K) is integrated three ways for ``--time`` fs:

- ``conservative``: velocity Verlet, forces ``-dE/dx`` by autograd, ``--dt`` fs;
- ``direct``: velocity Verlet with the direct forces (no backward pass), ``--dt`` fs;
- ``mts``: RESPA, outer step ``--nmts * dt`` with the correction
  *conservative - direct*, ``--nmts`` inner steps of ``dt`` with the direct forces.

Reported: wall time per femtosecond of trajectory and per force evaluation, and the
drift (linear fit, meV/atom/ps) and spread of the total energy (kinetic + model
energy). Neighbour lists are rebuilt with vesin at every evaluation for all three.

    python bench/direct_forces.py                  # ~2-3 min on 2 cores
    python bench/direct_forces.py --repeat 4 --time 400

Writes ``docs/src/bench/direct_forces.{json,md}`` (``--out`` to change). Numbers
depend on the machine: the files say which.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import ase.build
import numpy as np
import torch
from ase import units
from metatomic.torch import ModelOutput

from pet_mta.neighbors import systems_from_ase

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "engines" / "ipi-mts"))
from train_mts_model import DIRECT_FORCES, train  # noqa: E402

SMALL = dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32, cutoff=4.0)


class Evaluator:
    """Energy and conservative forces (autograd) or direct forces of one model."""

    def __init__(self, model, atoms):
        self.model = model
        self.atoms = atoms.copy()
        self.calls = 0

    def __call__(self, positions: np.ndarray, conservative: bool):
        """:return: energy (eV), conservative forces or ``None``, direct forces"""
        self.calls += 1
        self.atoms.positions = positions
        systems = systems_from_ase(
            [self.atoms], self.model, positions_requires_grad=conservative
        )
        with torch.set_grad_enabled(conservative):
            out = self.model(
                systems,
                {
                    "energy": ModelOutput(sample_kind="system"),
                    DIRECT_FORCES: ModelOutput(sample_kind="atom"),
                },
            )
            energy = out["energy"].block().values.sum()
            forces = None
            if conservative:
                (gradient,) = torch.autograd.grad(energy, [systems[0].positions])
                forces = -gradient.numpy()
        direct = out[DIRECT_FORCES].block().values[..., 0].detach().numpy()
        return float(energy), forces, direct


def run(evaluate, atoms, mode: str, dt: float, nmts: int, total: float):
    """Integrate ``total`` fs; return wall time and (time, total energy) samples."""
    masses = atoms.get_masses()[:, None]
    positions = atoms.positions.copy()
    velocities = atoms.get_velocities().copy()
    step = dt * units.fs
    outer = nmts * step if mode == "mts" else step
    n_outer = int(round(total / (nmts * dt if mode == "mts" else dt)))

    def forces_at(x):
        energy, conservative, direct = evaluate(x, conservative=mode != "direct")
        if mode == "conservative":
            return energy, conservative, None
        if mode == "direct":
            return energy, direct, None
        return energy, conservative - direct, direct

    energy, slow, fast = forces_at(positions)
    samples = []
    potentials = []
    start = time.perf_counter()
    for i in range(n_outer):
        kinetic = 0.5 * float((masses * velocities**2).sum())
        samples.append((i * outer / units.fs, energy + kinetic))
        potentials.append(energy)
        velocities += 0.5 * outer * slow / masses
        if mode == "mts":
            for k in range(nmts):
                velocities += 0.5 * step * fast / masses
                positions = positions + step * velocities
                if k == nmts - 1:
                    # the outer call gives the direct forces too
                    energy, slow, fast = forces_at(positions)
                else:
                    _, _, fast = evaluate(positions, conservative=False)
                velocities += 0.5 * step * fast / masses
        else:
            positions = positions + outer * velocities
            energy, slow, _ = forces_at(positions)
        velocities += 0.5 * outer * slow / masses
    elapsed = time.perf_counter() - start
    kinetic = 0.5 * float((masses * velocities**2).sum())
    samples.append((n_outer * outer / units.fs, energy + kinetic))
    return elapsed, np.array(samples), np.ptp(potentials) / len(positions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--time", type=float, default=200.0, help="fs")
    parser.add_argument("--dt", type=float, default=1.0, help="fs")
    parser.add_argument("--nmts", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "src" / "bench")
    args = parser.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    model = train(n_frames=12, n_steps=args.train_steps, **SMALL)
    train_time = time.perf_counter() - t0

    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(args.repeat)
    rng = np.random.default_rng(0)
    velocities = rng.normal(size=(len(atoms), 3))
    velocities -= velocities.mean(0)
    temperature = 300.0
    scale = np.sqrt(units.kB * temperature / atoms.get_masses()[:, None])
    atoms.set_velocities(velocities * scale)

    results = {}
    for mode in ("conservative", "direct", "mts"):
        evaluate = Evaluator(model, atoms)
        for _ in range(3):  # warm-up
            evaluate(atoms.positions, conservative=mode != "direct")
        evaluate.calls = 0
        elapsed, samples, potential = run(
            evaluate, atoms, mode, args.dt, args.nmts, args.time
        )
        times, energies = samples[:, 0], samples[:, 1]
        drift = np.polyfit(times / 1000.0, energies, 1)[0] / len(atoms)
        results[mode] = {
            "wall_s": elapsed,
            "ms_per_fs": 1000.0 * elapsed / args.time,
            "evaluations": evaluate.calls,
            "drift_meV_per_atom_per_ps": 1000.0 * float(drift),
            "spread_meV_per_atom": 1000.0 * float(np.ptp(energies)) / len(atoms),
            "potential_range_meV_per_atom": 1000.0 * float(potential),
        }
        print(mode, results[mode], flush=True)

    report = {
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, 1 torch thread",
        "torch": torch.__version__,
        "n_atoms": len(atoms),
        "time_fs": args.time,
        "dt_fs": args.dt,
        "nmts": args.nmts,
        "model": dict(SMALL, train_steps=args.train_steps, train_s=train_time),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "direct_forces.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Direct forces: cost per MD step and energy drift",
        "",
        f"NVE, {len(atoms)} Cu atoms, 300 K, {args.time:g} fs; toy pet_mta model "
        f"(d_pet {SMALL['d_pet']}, cutoff {SMALL['cutoff']} Å, trained "
        f"{args.train_steps} steps on 12 EMT frames with energy, forces and direct "
        "forces). Generated by `bench/direct_forces.py` on "
        f"{report['machine']}, torch {torch.__version__}.",
        "",
        "| integrator | step | ms per fs | model calls | drift (meV/atom/ps) "
        "| spread (meV/atom) | potential range (meV/atom) |",
        "|---|---|---|---|---|---|---|",
    ]
    steps = {
        "conservative": f"{args.dt:g} fs, -dE/dx",
        "direct": f"{args.dt:g} fs, direct forces",
        "mts": f"{args.nmts * args.dt:g} fs outer / {args.dt:g} fs inner",
    }
    for mode, r in results.items():
        lines.append(
            f"| {mode} | {steps[mode]} | {r['ms_per_fs']:.1f} | {r['evaluations']} "
            f"| {r['drift_meV_per_atom_per_ps']:.3f} "
            f"| {r['spread_meV_per_atom']:.3f} "
            f"| {r['potential_range_meV_per_atom']:.1f} |"
        )
    lines += [
        "",
        "MTS evaluates the conservative forces once per outer step (the same call "
        "also gives the direct forces) and the direct forces at the inner steps. "
        "The direct-only run does not conserve the energy: its forces are not the "
        "gradient of the energy it is checked against. The model is small and "
        "briefly trained, so model calls are cheap and the neighbour-list and "
        "Python overheads, the same for all three, weigh more than for a "
        "production model, where the backward pass dominates.",
        "",
    ]
    (args.out / "direct_forces.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
