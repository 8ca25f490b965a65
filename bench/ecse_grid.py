"""ECSE against metatomic's Lebedev-grid average at matched accuracy.

The same random-weight float64 PET as ``bench/ecse.py``, on a molecule (CH4) and a
small periodic cell (the 32-atom rattled Cu/Ni alloy of ``bench/ecse.py``), energy
+ forces, 1 thread. For every quadrature degree ``L`` of metatomic's
``SymmetrizedModel(pet, max_angular_momentum_target=0,
max_angular_momentum_grid=L)`` and for ECSE (``Symmetrized(pet)``, its defaults,
and the opt-in ``spread_margin`` rule on the periodic cell):

- equivariance error over ``--rotations`` random proper rotations of the structure:
  the standard deviation of the total energy relative to its mean, and the RMS
  deviation of the back-rotated forces from their mean over the rotations,
  relative to the RMS force;
- cost: the CPU time of one energy + forces evaluation (minimum over the rotated
  evaluations) over that of the plain model, measured just before (minimum of
  three calls), in the same process.

``SymmetrizedModel`` averages over O(3): every grid rotation is evaluated as a
proper and as an improper copy, and with forces it keeps the autograd graph of
every copy (memory grows with the grid). The grid average is therefore evaluated
here copy batch by copy batch (``grid_average``: the same rotations, weights and
copies, ``--batch`` copies per backbone call as ``SymmetrizedModel``'s
``batch_size``), each batch differentiated at once; on the grids small enough for
``SymmetrizedModel`` itself (``--check-copies``), its energy, forces and time are
compared with ``grid_average``'s and reported.

Degrees go up until the error reaches the float64 floor, or until the next one
would take more than ``--max-seconds`` for its rotated evaluations.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_grid.py
    python bench/ecse_grid.py --report-only

Results go to ``docs/src/bench/ecse_grid.{json,md,png}``.
"""

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import ase
import ase.build
import numpy as np
import torch
from metatomic.torch import ModelOutput
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta import Symmetrized
from pet_mta.files import atomic_write
from pet_mta.neighbors import systems_from_ase

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecse import (  # noqa: E402
    alloy,
    bench_model,
    energy_forces,
    machine,
    rotated,
    rotation_matrices,
    source_commit,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "src" / "bench"
ORDERS = (1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 29, 35, 41, 47, 53)
"""Quadrature degrees tried (``max_angular_momentum_grid``), in this order."""
TARGETS = (1e-4, 1e-6, 1e-10)
"""Relative error levels of the summary table."""
FLOOR = 1e-13
"""An error below this is float64 round-off: no higher degree is tried."""
DTYPE = torch.float64
ENERGY = {"energy": ModelOutput(sample_kind="system")}

Evaluation = Callable[[ase.Atoms], Tuple[float, np.ndarray]]


# ----------------------------------------------------------------- grid average
def grid(pet: torch.nn.Module, order: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[R, 3, 3]`` and weights ``[R]`` of metatomic's grid of degree
    ``order`` (read from a ``SymmetrizedModel``, so that they are its own)."""
    model = SymmetrizedModel(
        pet, max_angular_momentum_target=0, max_angular_momentum_grid=order
    )
    rotations = torch.cat([batch.matrices for batch in model._batches])
    return rotations.to(DTYPE), model._rotation_weights.to(DTYPE)


def grid_average(
    pet: torch.nn.Module,
    atoms: ase.Atoms,
    rotations: torch.Tensor,
    weights: torch.Tensor,
    batch: int,
) -> Tuple[float, np.ndarray]:
    """O(3) grid average of the energy (eV) and its forces ``[N, 3]`` (eV/Å).

    Every rotation ``R`` of the grid gives a proper copy (``x R^T``) and an
    improper one (``-x R^T``), each of weight ``w / 2``, as in
    ``SymmetrizedModel``; ``batch`` copies per backbone call, each call
    differentiated at once (only one batch's graph is alive at a time).
    """
    signs = torch.tensor([1.0, -1.0], dtype=DTYPE)
    matrices = (signs[:, None, None, None] * rotations[None]).reshape(-1, 3, 3)
    copy_weights = (0.5 * weights).repeat(2)
    copy_weights = copy_weights / copy_weights.sum()
    energy = 0.0
    forces = np.zeros((len(atoms), 3))
    for start in range(0, len(matrices), batch):
        group = matrices[start : start + batch]
        copies = [rotated(atoms, m.numpy()) for m in group]
        systems = systems_from_ase(
            copies, pet, dtype=DTYPE, positions_requires_grad=True
        )
        values = pet(systems, ENERGY, None)["energy"].block().values.reshape(-1)
        total = (copy_weights[start : start + batch] * values).sum()
        total.backward()
        energy += float(total.detach())
        for m, system in zip(group, systems):
            # x' = x M^T, so dE/dx = dE/dx' M
            forces -= (system.positions.grad @ m).numpy()
    return energy, forces


# ----------------------------------------------------------------- measurement
def timed(evaluate: Evaluation, atoms: ase.Atoms):
    wall, cpu = time.perf_counter(), time.process_time()
    energy, forces = evaluate(atoms)
    return energy, forces, time.perf_counter() - wall, time.process_time() - cpu


def plain_cpu(pet: torch.nn.Module, atoms: ase.Atoms) -> Tuple[float, float]:
    """Minimum wall and CPU time of three plain energy + forces calls (s)."""
    times = [timed(plain_evaluation(pet), atoms)[2:] for _ in range(3)]
    return min(t[0] for t in times), min(t[1] for t in times)


def plain_evaluation(model: torch.nn.Module) -> Evaluation:
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


# ---------------------------------------------------------------------- report
def first_reaching(rows: List[Dict[str, Any]], target: float):
    """The lowest degree whose energy and force errors are both below ``target``."""
    for row in rows:
        if row["energy_rel"] <= target and row["force_rel"] <= target:
            return row
    return None


def write_report(results: Dict[str, Any], out: Path) -> None:
    lines = [
        "# ECSE against metatomic's Lebedev-grid average at matched accuracy",
        "",
        f"Command: `{results['command']}` ({results['date']}), pet_mta at commit "
        f"{results['commit']}.",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} "
        "cores shared with other jobs, 1 torch thread; torch "
        f"{results['machine']['torch']}.",
        "",
        "Backbone: the random-weight float64 PET of `bench/ecse.py` (d_pet 32, 2 GNN "
        "layers, cutoff 4 Å). *Lebedev L*: metatomic's `SymmetrizedModel(pet, "
        "max_angular_momentum_target=0, max_angular_momentum_grid=L)`, an O(3) "
        "average over its grid of rotations, each evaluated as a proper and an "
        "improper copy (*copies*). It is evaluated here batch by batch "
        f"({results['batch']} copies per backbone call, each batch differentiated "
        "at once) with the same rotations, weights and copies, because "
        "`SymmetrizedModel` keeps the autograd graph of every copy for the forces; "
        "on the grids where `SymmetrizedModel` itself fits, the two agree (check "
        "table below). ECSE: `Symmetrized(pet)` with its defaults (whole mode on "
        "CH4, local mode with the published frame rule on the periodic cell), and "
        "local mode (CH4) or the opt-in `spread_margin=0.02` rule (periodic cell, "
        "3-4x cheaper, not energy-conserving enough for MD: `ecse_cost.md`).",
        "",
        f"Errors over {results['rows'][0]['rotations']} random proper rotations of "
        "the structure: *energy*: std of the total energy relative to its mean "
        "(and in eV/atom); *forces*: RMS deviation of the back-rotated forces from "
        "their mean over the rotations, relative to the RMS force. *cost*: CPU time "
        "of one energy + forces evaluation (minimum over the rotated ones) over the "
        "plain model's (minimum of three calls just before), in one process.",
        "",
    ]
    for res in results["rows"]:
        lines += [
            f"**{res['structure']}** ({res['atoms']} atoms"
            + (", periodic" if res["periodic"] else "")
            + ")",
            "",
            "| model | copies | cost (CPU) | cost (wall) | energy error | "
            "energy error (eV/atom) | force error |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]

        def line(label: str, row: Dict[str, Any], copies: str) -> str:
            return (
                f"| {label} | {copies} | {row['ratio']:.3g}x | "
                f"{row['wall_ratio']:.3g}x | {row['energy_rel']:.1e} | "
                f"{row['energy_ev_atom']:.1e} | {row['force_rel']:.1e} |"
            )

        lines.append(line("plain", res["plain"], "1"))
        for row in res["lebedev"]:
            lines.append(line(f"Lebedev L={row['order']}", row, str(row["copies"])))
        for label, row in res["ecse"].items():
            lines.append(line(f"{label}, {row['mode']} mode", row, "frames"))
        lines.append("")
        stopped = res.get("stopped")
        if stopped:
            lines += [
                f"Not run: L={stopped['order']} and above (estimated "
                f"{stopped['estimate_s']:.0f} s for the rotated evaluations, above "
                "`--max-seconds`).",
                "",
            ]
        if res["checks"]:
            checks = "; ".join(
                f"L={c['order']}: energies differ by {c['energy_diff']:.1e} eV, "
                f"forces by {c['force_diff']:.1e} eV/Å, `SymmetrizedModel`'s CPU "
                f"time {c['cpu_ratio']:.2f}x the batched evaluation's"
                for c in res["checks"]
            )
            lines += [f"Check against `SymmetrizedModel` itself: {checks}.", ""]
    lines += ["**Matched accuracy**", ""]
    lines += [
        "The lowest grid degree whose energy *and* force errors are below each "
        "level, its cost, and ECSE's cost (exact: its errors are round-off).",
        "",
        "| structure | level | Lebedev | Lebedev cost | ECSE (defaults) cost | "
        "cheapest exact ECSE cost |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for res in results["rows"]:
        default = res["ecse"]["ECSE (defaults)"]["ratio"]
        cheapest = min(row["ratio"] for row in res["ecse"].values())
        top = res["lebedev"][-1]["order"] if res["lebedev"] else 0
        for target in TARGETS:
            row = first_reaching(res["lebedev"], target)
            grid_cells = (
                (f"L={row['order']} ({row['copies']} copies)", f"{row['ratio']:.3g}x")
                if row
                else (f"not reached up to L={top}", "-")
            )
            lines.append(
                f"| {res['structure']} | {target:.0e} | {grid_cells[0]} | "
                f"{grid_cells[1]} | {default:.3g}x | {cheapest:.3g}x |"
            )
    lines += [""]
    lines += summary_lines(results)
    if results.get("note"):
        lines += [results["note"], ""]
    (out / "ecse_grid.md").write_text("\n".join(lines))


def summary_lines(results: Dict[str, Any]) -> List[str]:
    """Per structure: the grid against ECSE's defaults and its cheapest exact
    setting at each level, and what the grid reaches at ECSE's costs."""
    lines = ["Reading the results:", ""]
    for res in results["rows"]:
        costs = {label: row["ratio"] for label, row in res["ecse"].items()}
        cheapest_label = min(costs, key=costs.get)
        verdicts = []
        for target in TARGETS:
            row = first_reaching(res["lebedev"], target)
            if row is None:
                last = res["lebedev"][-1]
                verdicts.append(
                    f"{target:.0e}: not reached up to L={last['order']} "
                    f"({last['ratio']:.3g}x; energy {last['energy_rel']:.1e}, "
                    f"forces {last['force_rel']:.1e})"
                )
                continue
            versus = ", ".join(
                f"{'cheaper' if row['ratio'] < cost else 'dearer'} than {label} "
                f"({cost:.3g}x)"
                for label, cost in costs.items()
            )
            verdicts.append(
                f"{target:.0e}: L={row['order']} at {row['ratio']:.3g}x, {versus}"
            )
        reach = []
        for label in dict.fromkeys(["ECSE (defaults)", cheapest_label]):
            affordable = [r for r in res["lebedev"] if r["ratio"] <= costs[label]]
            if affordable:
                r = affordable[-1]
                reach.append(
                    f"at the cost of {label} ({costs[label]:.3g}x) the grid reaches "
                    f"L={r['order']}: energy error {r['energy_rel']:.1e}, force "
                    f"error {r['force_rel']:.1e}"
                )
            else:
                reach.append(
                    f"every grid run costs more than {label} ({costs[label]:.3g}x)"
                )
        lines.append(
            f"- {res['structure']}: " + "; ".join(reach) + ". Levels (energy and "
            "forces): " + "; ".join(verdicts) + "."
        )
    lines += [
        "- ECSE is exactly invariant by construction (its errors above are "
        "round-off); the grid average only in the limit of high degree, at a rate "
        "set by the model's angular content (here a random-weight PET; a trained "
        "model's may differ). The grid's limit also averages over inversion (O(3)), "
        "ECSE without `inversion` over SO(3) only (with `inversion=True` it is "
        "exact for O(3), at twice the frames).",
        "- The grid's cost ratio is a fixed number of full evaluations, the same "
        "for any N; ECSE's local-mode ratio is about constant in N too (frames per "
        "atom times a cluster evaluation, `ecse_scaling.md`), so the cost ratios "
        "carry over to larger cells of the same material; the grid's errors on "
        "larger cells are not measured here.",
    ]
    return lines + [""]


def write_plot(results: Dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ("tab:blue", "tab:orange", "tab:green")
    for res, color in zip(results["rows"], colors):
        for ax, key in zip(axes, ("energy_rel", "force_rel")):
            rows = res["lebedev"]
            x = [r["ratio"] for r in rows]
            y = [max(r[key], 1e-17) for r in rows]
            ax.plot(x, y, "o-", color=color, label=f"Lebedev, {res['structure']}")
            for r, xi, yi in zip(rows, x, y):
                ax.annotate(
                    str(r["order"]),
                    (xi, yi),
                    fontsize=7,
                    color=color,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
            ax.plot(
                res["plain"]["ratio"],
                res["plain"][key],
                "x",
                color=color,
                ms=8,
                label=f"plain, {res['structure']}",
            )
            for (label, row), marker in zip(res["ecse"].items(), ("*", "P")):
                ax.plot(
                    row["ratio"],
                    max(row[key], 1e-17),
                    marker,
                    color=color,
                    ms=11,
                    label=f"{label}, {res['structure']}",
                )
    for ax, what in zip(axes, ("energy", "forces")):
        for target in TARGETS:
            ax.axhline(target, color="k", lw=0.5, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cost: CPU time / plain model (energy + forces)")
        ax.set_ylabel(f"relative {what} error over rotations")
        ax.grid(alpha=0.3)
    axes[0].set_title("Lebedev degree L (labels) vs ECSE (exact)")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out / "ecse_grid.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", nargs="+", default=["CH4", "alloy 32"])
    parser.add_argument("--rotations", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=240.0,
        help="CPU seconds: no grid degree whose rotated evaluations would take longer",
    )
    parser.add_argument(
        "--orders",
        type=int,
        nargs="+",
        default=list(ORDERS),
        help="grid degrees (max_angular_momentum_grid) to try, in this order",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the results in the JSON file and measure only the degrees of "
        "--orders that a structure lacks",
    )
    parser.add_argument(
        "--check-copies",
        type=int,
        default=2000,
        help="compare with SymmetrizedModel itself up to this many copies x atoms",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    path = args.out / "ecse_grid.json"
    if args.report_only:
        results = json.loads(path.read_text())
    else:
        torch.set_num_threads(1)
        makers = {
            "CH4": lambda: ase.build.molecule("CH4"),
            "alloy 32": lambda: alloy(32),
        }
        pet = bench_model()
        energy_forces(pet, makers["CH4"](), DTYPE)  # warm-up
        command = shlex.join(["python", "bench/ecse_grid.py", *sys.argv[1:]])
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if args.append:
            results = json.loads(path.read_text())
            if results["commit"] != source_commit():
                raise SystemExit(
                    "--append: the results were measured at commit "
                    f"{results['commit']}, not {source_commit()}"
                )
            results["command"] += f"`, then `{command}"
            results["date"] += f", then {date}"
        else:
            results = {
                "command": command,
                "date": date,
                "commit": source_commit(),
                "machine": machine(),
                "batch": args.batch,
                "rows": [],
            }
        if args.note:
            results["note"] = args.note
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.structures:
            rows = [row for row in results["rows"] if row["structure"] == name]
            previous = rows[0] if rows else None
            row = structure_rows(pet, name, makers[name](), args, previous)
            if previous is None:
                results["rows"].append(row)
            text = json.dumps(results, indent=1)
            atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    write_report(results, args.out)
    write_plot(results, args.out)


if __name__ == "__main__":
    main()
