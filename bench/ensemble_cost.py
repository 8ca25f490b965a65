"""Cost of an ensemble: members stacked in one batched pass vs one after another.

``M`` random PET members of one architecture (float32) wrapped by
:class:`pet_mta.Ensemble` twice, with ``stack=True`` (one pass of a PET with
stacked weights, :func:`~pet_mta.stacked.stack_members`) and ``stack=False``; both
exported and loaded like an engine would, and timed interleaved in one process
(energy, energy uncertainty and forces, median of ``--repeats`` calls after
``--warmup``). The plain single member is timed too, so the ensemble's cost per
member shows.

Usage::

    python bench/ensemble_cost.py [--members 4] [--threads 1 2]

Results go to ``docs/src/bench/ensemble_cost.{json,md}``.
"""

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import ase.build
import torch
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model

from pet_mta import PET, Ensemble
from pet_mta.neighbors import systems_from_ase

ROOT = Path(__file__).resolve().parents[1]
HYPERS = dict(
    cutoff=4.5,
    d_pet=64,
    d_head=64,
    d_node=64,
    d_feedforward=128,
    num_heads=4,
    num_gnn_layers=2,
)


def structures():
    methane = ase.build.molecule("CH4")
    result = {"CH4 (5 atoms)": methane}
    for repeat in ((2, 2, 2), (3, 3, 3), (5, 5, 5)):
        cell = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
        cell.numbers[::3] = 28
        cell.rattle(0.05, seed=0)
        result[f"fcc alloy ({len(cell)} atoms)"] = cell
    return result


def member(seed: int) -> PET:
    torch.manual_seed(seed)
    return PET(atomic_types=[1, 6, 28, 29], **HYPERS).eval()


def timer(model, atoms, outputs):
    evaluation = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={name: ModelOutput(sample_kind="system") for name in outputs},
    )

    def call() -> float:
        systems = systems_from_ase(
            [atoms], model, dtype=torch.float32, positions_requires_grad=True
        )
        start = time.perf_counter()
        result = model(systems, evaluation, check_consistency=False)
        torch.autograd.grad(result["energy"].block().values.sum(), systems[0].positions)
        return time.perf_counter() - start

    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/src/bench")
    args = parser.parse_args()

    members = [member(seed) for seed in range(args.members)]
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for key, model in (
            ("single member", members[0].export()),
            ("stacked", Ensemble(members, stack=True).export()),
            ("one by one", Ensemble(members, stack=False).export()),
        ):
            path = f"{tmp}/{key.replace(' ', '_')}.pt"
            model.save(path)
            models[key] = load_atomistic_model(path)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, atoms in structures().items():
            calls = {
                key: timer(
                    model,
                    atoms,
                    ["energy"]
                    if key == "single member"
                    else ["energy", "energy_uncertainty"],
                )
                for key, model in models.items()
            }
            times = {key: [] for key in calls}
            for repeat in range(args.warmup + args.repeats):
                for key, call in calls.items():  # interleaved
                    elapsed = call()
                    if repeat >= args.warmup:
                        times[key].append(elapsed)
            row = {"structure": name, "atoms": len(atoms), "threads": threads}
            row.update({key: statistics.median(t) for key, t in times.items()})
            print(json.dumps(row), flush=True)
            rows.append(row)

    meta = {
        "command": shlex.join(["python", "bench/ensemble_cost.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads max, "
        f"torch {torch.__version__}",
        "members": args.members,
        "hypers": HYPERS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ensemble_cost.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1)
    )
    lines = [
        f"Energy, energy uncertainty and forces of an ensemble of {args.members} "
        "random float32 PET members (d_pet 64, 2 GNN layers, cutoff 4.5 Å), "
        "exported and loaded, members stacked in one batched pass or evaluated one "
        "after another; a single member for reference. Median of "
        f"{args.repeats} interleaved calls (ms). Command: `{meta['command']}` "
        f"({meta['date']}, {meta['machine']}).",
        "",
        "| structure | threads | single member | one by one | stacked "
        "| stacked / one by one |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['structure']} | {row['threads']} "
            f"| {1000 * row['single member']:.1f} | {1000 * row['one by one']:.1f} "
            f"| {1000 * row['stacked']:.1f} "
            f"| {row['stacked'] / row['one by one']:.2f} |"
        )
    (args.out / "ensemble_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
