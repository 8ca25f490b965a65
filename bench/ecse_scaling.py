"""ECSE with its defaults in condensed phases: cost ratio, peak memory and frames
per atom against the number of atoms.

Every row is measured in a fresh process (its peak resident memory is the row's):
a small random-weight float64 PET (the backbone of ``bench/ecse.py``), energy +
forces evaluations of the plain backbone and of ``Symmetrized(pet)`` with its
defaults (``mode="auto"``: local mode with ``low_memory`` for these periodic
cells), 1 thread, alternating (``--repeats``); each time is the minimum over its
evaluations, wall-clock and CPU time (the ratio of CPU times is the steadier one
on a machine shared with other jobs). Variants: ``default`` (the published frame
rule, what ``pet-mta symmetrize`` gives), ``margin`` (the opt-in cheaper rule for
periodic cells, ``spread_margin=0.02``; its NVE drift in ``ecse_cost.md``) and
``float32`` (the ``margin`` rule with a float32 backbone; frames and averages stay
float64).

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_scaling.py            # all rows
    python bench/ecse_scaling.py --report-only

Results go to ``docs/src/bench/ecse_scaling.{json,md,png}``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "src" / "bench"
ROWS = [
    ("fcc", 32, "default"),
    ("fcc", 108, "default"),
    ("alloy", 32, "default"),
    ("alloy", 108, "default"),
    ("water", 192, "default"),
    ("fcc", 32, "margin"),
    ("fcc", 108, "margin"),
    ("fcc", 256, "margin"),
    ("alloy", 32, "margin"),
    ("alloy", 108, "margin"),
    ("alloy", 256, "margin"),
    ("water", 192, "margin"),
    ("alloy", 108, "float32"),
    ("fcc", 500, "margin"),
    ("fcc", 1000, "margin"),
    ("fcc", 256, "default"),
    ("fcc", 500, "default"),
]
MARGIN = 0.02
"""``spread_margin`` of the ``margin`` and ``float32`` variants."""
REPEATS = {32: (2, 2, 2), 108: (3, 3, 3), 256: (4, 4, 4), 500: (5, 5, 5)}
REPEATS[1000] = (5, 5, 10)


def structure(kind: str, n: int):
    """Perfect fcc Cu, the rattled Cu/Ni alloy of ``bench/ecse.py``, or its water
    box (192 atoms)."""
    import ase.build

    sys.path.insert(0, str(ROOT / "bench"))
    from ecse_systems import water_box

    if kind == "water":
        return water_box()
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(REPEATS[n])
    if kind == "alloy":
        atoms.numbers[::3] = 28
        atoms.rattle(0.05, seed=0)
    return atoms


def one_row(kind: str, n: int, variant: str, repeats: int) -> Dict[str, Any]:
    """Measure one row in this process (called in a child process).

    ECSE runs once first (the process peak then is ECSE's own), then plain (three
    calls) and ECSE (one call) alternate, ``repeats`` ECSE calls in all; every time
    is the minimum over its calls, as wall-clock and as CPU time of this process
    (the steadier one on a machine shared with other jobs).
    """
    import torch
    from metatomic.torch import ModelOutput

    from pet_mta import Symmetrized
    from pet_mta.neighbors import systems_from_ase

    sys.path.insert(0, str(ROOT / "bench"))
    from ecse_systems import bench_model
    from provenance import source_commit

    torch.set_num_threads(1)
    dtype = torch.float32 if variant == "float32" else torch.float64
    pet = bench_model().to(dtype)
    atoms = structure(kind, n)

    def energy_forces(model) -> Tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        systems = systems_from_ase(
            [atoms], model, dtype=dtype, positions_requires_grad=True
        )
        request = {"energy": ModelOutput(sample_kind="system")}
        energy = model(systems, request, None)["energy"].block().values.sum()
        energy.backward()
        return time.perf_counter() - start, time.process_time() - cpu

    options = {} if variant == "default" else {"spread_margin": MARGIN}
    model = Symmetrized(pet, **options)
    systems = systems_from_ase([atoms], model, dtype=dtype)
    mode = "local" if model.use_local_mode(systems) else "whole"
    frames = frames_per_atom(model, systems[0])
    # ECSE first: the process peak before any plain call is ECSE's own
    ecse: List[Tuple[float, float]] = [energy_forces(model)]
    ecse_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    energy_forces(pet)  # warm-up
    plain: List[Tuple[float, float]] = []
    for k in range(repeats):
        plain += [energy_forces(pet) for _ in range(3)]
        if k > 0:
            ecse.append(energy_forces(model))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    plain_s, ecse_s = min(t[0] for t in plain), min(t[0] for t in ecse)
    plain_cpu, ecse_cpu = min(t[1] for t in plain), min(t[1] for t in ecse)
    return {
        "structure": kind,
        "atoms": len(atoms),
        "variant": variant,
        "mode": mode,
        "low_memory": model.low_memory,
        "frames_per_atom": frames,
        "repeats": repeats,
        "plain_s": plain_s,
        "ecse_s": ecse_s,
        "ratio": ecse_s / plain_s,
        "plain_cpu_s": plain_cpu,
        "ecse_cpu_s": ecse_cpu,
        "cpu_ratio": ecse_cpu / plain_cpu,
        "peak_gb": peak,
        "ecse_peak_gb": ecse_peak,
        "commit": source_commit(),
    }


def frames_per_atom(model, system) -> float:
    """Mean frames per atom of the local mode on a periodic ``system``."""
    import torch

    from pet_mta.wrappers.ecse.frames import frames_per_group

    nl = system.get_neighbor_list(model.frame_list)
    n = len(system)
    _, _, groups, _ = frames_per_group(
        nl.samples.column("first_atom").to(torch.long),
        nl.values.reshape(-1, 3).detach().to(torch.float64),
        n,
        torch.arange(n),
        n,
        model.hypers,
        model.inversion,
        spread_margin=bool(torch.any(system.pbc)),
    )
    return float(groups.shape[0]) / n


def write_report(results: Dict[str, Any], out: Path) -> None:
    rows: List[Dict[str, Any]] = results["rows"]
    machine = results["machine"]
    lines = [
        "# ECSE scaling: cost, memory and frames with the defaults",
        "",
        f"Command: `{results['command']}` ({results['date']}).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch "
        f"{machine['torch']}, Python {machine['python']}.",
        "",
        "Backbone: the random-weight float64 PET of `bench/ecse.py` (d_pet 32, 2 "
        "GNN layers, cutoff 4 Å, interaction range 8 Å). ECSE: `Symmetrized(pet)` "
        "with its defaults (`pet-mta symmetrize` without options), which for these "
        "periodic cells is local mode with `low_memory`. Energy + forces, 1 thread; "
        "plain (three calls) and ECSE (one call) alternate *repeats* times in one "
        "process, every time is the minimum over its calls: wall-clock (*plain*, "
        "*ECSE*, *ratio*) and CPU time of the process (*CPU ratio*, the steadier "
        "one when other jobs share the cores). Peak: the maximum resident memory "
        "of the process (Python, torch and the plain runs included); *ECSE peak*: "
        "the same after the first ECSE call, made before any plain call (ECSE's "
        "own peak; rows measured since this column exists).",
        "",
        "| structure | N | variant | mode | frames/atom | repeats | plain | ECSE | "
        "ECSE per atom | ratio | CPU ratio | peak memory | ECSE peak | commit |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["variant"], r["structure"], r["atoms"])):
        cpu = f"{r['cpu_ratio']:.0f}x" if "cpu_ratio" in r else "-"
        ecse_peak = f"{r['ecse_peak_gb']:.2f} GB" if "ecse_peak_gb" in r else "-"
        lines.append(
            f"| {r['structure']} | {r['atoms']} | {r['variant']} | {r['mode']} | "
            f"{r['frames_per_atom']:.1f} | {r.get('repeats', 1)} | "
            f"{r['plain_s']:.3f} s | {r['ecse_s']:.1f} s | "
            f"{r['ecse_s'] / r['atoms']:.2f} s | {r['ratio']:.0f}x | {cpu} | "
            f"{r['peak_gb']:.2f} GB | {ecse_peak} | {r.get('commit', '-')} |"
        )
    lines += [
        "",
        "- *default*: the published frame rule, what `pet-mta symmetrize` gives "
        "(`spread_margin=1.0`); *margin*: pet_mta's opt-in rule for periodic "
        "systems in local mode (`spread_margin=0.02`: a pair's frames fade out "
        "as better spread pairs come inside the inner cutoff; rows before commit "
        "dd0fc8a used the first version of the rule, which drifted 20-50x the "
        "plain model in MD; since 39a1c85 and 880bc80 (better pairs counted by "
        "their 8-norm, gate width 0.2) 0.96-2.13x over twelve trained-model "
        "starts, `ecse_cost.md`); *float32*: "
        "the *margin* rule with the same "
        "model in float32 (frames, weights and averages stay float64), ratio to "
        "the float32 plain model.",
        "- Where the time goes, and the ratio before and after each lever: "
        "`ecse_cost.md` (ECSE local mode cost page). *commit*: the pet_mta commit "
        "a row was measured at (`-`: not recorded, rows measured before the "
        "column existed).",
        *memory_lines(rows),
    ]
    if any("cpu_ratio" not in r for r in rows):
        lines += [
            "- Rows without a CPU ratio were measured before the alternating "
            "protocol (best of three plain calls, one ECSE call), with the code "
            "of that time."
        ]
    if results.get("note"):
        lines += ["- " + results["note"]]
    (out / "ecse_scaling.md").write_text("\n".join(lines) + "\n")


def memory_fit(rows: List[Dict[str, Any]]) -> Tuple[float, float, float]:
    """Least-squares line through peak memory (GB) against atoms: intercept (GB),
    slope (MB per atom) and the largest deviation of a row from it (GB)."""
    import numpy as np

    n = np.array([r["atoms"] for r in rows], dtype=float)
    peak = np.array([r["peak_gb"] for r in rows])
    slope, intercept = np.polyfit(n, peak, 1)
    return intercept, 1000 * slope, float(np.abs(intercept + slope * n - peak).max())


def memory_lines(rows: List[Dict[str, Any]]) -> List[str]:
    """One line per structure and variant with three sizes or more: is the peak
    memory linear in N?"""
    series: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        series.setdefault((r["structure"], r["variant"]), []).append(r)
    lines = []
    for (kind, variant), mine in sorted(series.items()):
        if len({r["atoms"] for r in mine}) < 3:
            continue
        intercept, slope, worst = memory_fit(mine)
        sizes = ", ".join(
            str(r["atoms"]) for r in sorted(mine, key=lambda r: r["atoms"])
        )
        low, high = min(r["peak_gb"] for r in mine), max(r["peak_gb"] for r in mine)
        lines.append(
            f"- Peak memory, {kind} {variant} (N = {sizes}): {low:.2f} to "
            f"{high:.2f} GB; least-squares line {intercept:.2f} GB + {slope:.2f} MB "
            f"per atom, largest deviation of a row from it {worst:.2f} GB (the "
            "intercept is Python, torch and the model)."
        )
    return lines


def write_plot(results: Dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for variant, style in (("default", "-"), ("margin", ":")):
        rows = [r for r in results["rows"] if r["variant"] == variant]
        for kind, marker in (("fcc", "o"), ("alloy", "s"), ("water", "^")):
            mine = sorted(
                (r for r in rows if r["structure"] == kind), key=lambda r: r["atoms"]
            )
            if not mine:
                continue
            n = [r["atoms"] for r in mine]
            label = f"{kind}, {variant}"
            # CPU time where measured: steadier than the wall clock on shared cores
            values = (
                [r.get("cpu_ratio", r["ratio"]) for r in mine],
                [r.get("ecse_cpu_s", r["ecse_s"]) / r["atoms"] for r in mine],
                [r["peak_gb"] for r in mine],
                [r["frames_per_atom"] for r in mine],
            )
            for ax, y in zip(axes, values):
                ax.plot(n, y, marker=marker, ls=style, label=label)
    for ax, label in zip(
        axes,
        (
            "cost ratio to the plain model (CPU)",
            "ECSE CPU time per atom (s)",
            "peak memory (GB)",
            "frames per atom",
        ),
    ):
        ax.set_xlabel("atoms")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].axhline(4.0, color="k", lw=0.8, ls="--")
    axes[0].legend()
    fig.suptitle(
        "ECSE, local mode with low memory: default and margin rules, "
        "energy + forces, 1 thread"
    )
    fig.tight_layout()
    fig.savefig(out / "ecse_scaling.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, metavar=("KIND", "N", "VARIANT"))
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="alternations of plain and ECSE per row (times: minimum over them)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--max-atoms", type=int, default=1000)
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="KIND:N:VARIANT",
        help="measure these rows only (e.g. alloy:108:default); the others keep "
        "their previous results",
    )
    parser.add_argument(
        "--note", default="", help="how the rows were measured (default: keep the last)"
    )
    args = parser.parse_args()
    if args.one:
        kind, n, variant = args.one
        print(json.dumps(one_row(kind, int(n), variant, args.repeats)))
        return
    path = args.out / "ecse_scaling.json"
    if args.report_only:
        results = json.loads(path.read_text())
        if args.note:
            results["note"] = args.note
            path.write_text(json.dumps(results, indent=1))
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from provenance import machine

        wanted = ROWS
        if args.rows:
            wanted = [(k, int(n), v) for k, n, v in (r.split(":") for r in args.rows)]
        previous = json.loads(path.read_text()) if path.exists() else {"rows": []}
        rows = [
            r
            for r in previous["rows"]
            if (r["structure"], r["atoms"], r["variant"]) not in wanted
        ]
        for kind, n, variant in wanted:
            if n > args.max_atoms:
                continue
            env = dict(os.environ, OMP_NUM_THREADS="1")
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    kind,
                    str(n),
                    variant,
                    "--repeats",
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        results = {
            "command": "python bench/ecse_scaling.py " + " ".join(sys.argv[1:]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            # a run without --note keeps the notes on the rows it did not measure
            "note": args.note or previous.get("note", ""),
            "rows": rows,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        # imported here: pet_mta imports torch, which this parent process (it only
        # starts the measured children) never needs otherwise
        from pet_mta.files import atomic_write

        text = json.dumps(results, indent=1)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    write_report(results, args.out)
    write_plot(results, args.out)


if __name__ == "__main__":
    main()
