"""Accuracy benchmark: pet_mta vs metatrain's own ``pet``, same data, same hypers.

Both architectures are trained with ``mtt train`` from the *same* options file (only
``architecture.name`` differs: the hyper-parameter names are shared), on the same
training subsets of ``../shared/data/hea_emt_train.xyz`` with the same seed, and
evaluated with ``mtt eval`` on the same held-out structures. Reported: energy MAE
(meV/atom), force MAE (meV/Å), and training time per epoch (s), for every training
set size of the learning curve.

    python bench/accuracy.py --sizes 100 --epochs 5            # quick look
    python bench/accuracy.py --sizes 100 300 1000 all --epochs 100
    python bench/accuracy.py --steps 500 --jobs 2   # same number of optimiser steps

With ``--steps`` every training set size gets about the same number of optimiser
steps (epochs = steps x batch size / structures), so the learning curve compares
data, not compute. With ``--jobs 2`` the two architectures train side by side, one
thread each (``OMP_NUM_THREADS=1``), so both see the same machine load.

Results go to ``--out`` (``bench/results/accuracy.json`` + ``accuracy.md``, and
``accuracy.png`` when matplotlib is installed). Not a test: it takes hours at full
size on a laptop CPU; the numbers depend on the machine (report which).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import List

import ase.io
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hea_emt_train.xyz"

MODEL = {
    "cutoff": 4.5,
    "d_pet": 64,
    "d_head": 64,
    "d_node": 128,
    "d_feedforward": 128,
    "num_heads": 4,
    "num_attention_layers": 2,
    "num_gnn_layers": 2,
}


def split(frames, n_test: int, n_val: int, seed: int):
    """Shuffle once: ``test``, ``validation``, and the pool training sets come from."""
    order = np.random.default_rng(seed).permutation(len(frames))
    test = [frames[i] for i in order[:n_test]]
    val = [frames[i] for i in order[n_test : n_test + n_val]]
    pool = [frames[i] for i in order[n_test + n_val :]]
    return pool, val, test


def epochs_for(n_train: int, args) -> int:
    """``--epochs``, or the epochs giving about ``--steps`` optimiser steps."""
    if args.steps is None:
        return args.epochs
    return max(1, round(args.steps * args.batch_size / n_train))


def options(architecture: str, train: str, val: str, epochs: int, args) -> dict:
    """The options file; identical for both architectures except the name."""
    targets = {
        "energy": {"key": "energy", "unit": "eV", "forces": True, "stress": True}
    }
    return {
        "seed": args.seed,
        "base_precision": 32,
        "architecture": {
            "name": architecture,
            "model": dict(MODEL),
            "training": {
                "batch_size": args.batch_size,
                "num_epochs": epochs,
                "learning_rate": args.learning_rate,
                "warmup_fraction": 0.05,
                "num_workers": 0,
                "checkpoint_interval": 10**6,
            },
        },
        "training_set": {
            "systems": {"read_from": train, "length_unit": "angstrom"},
            "targets": targets,
        },
        "validation_set": {
            "systems": {"read_from": val, "length_unit": "angstrom"},
            "targets": targets,
        },
        "test_set": 0.0,
    }


def epoch_seconds(log: str) -> float:
    """Mean time between consecutive ``Epoch:`` log lines (1 s resolution)."""
    stamps = [
        datetime.strptime(m, "%Y-%m-%d %H:%M:%S")
        for m in re.findall(
            r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]\[INFO\] - Epoch:", log
        )
    ]
    if len(stamps) < 2:
        return float("nan")
    return (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)


def maes(log: str) -> dict:
    """Energy (meV/atom) and force (meV/Å) MAE from ``mtt eval`` output."""
    energy = re.findall(r"energy MAE \(per atom\): ([\d.eE+-]+) meV", log)
    forces = re.findall(
        r"(?:forces|energy_positions_gradients) MAE: ([\d.eE+-]+) meV/A", log
    )
    return {
        "energy_mae_mev_per_atom": float(energy[-1]) if energy else float("nan"),
        "force_mae_mev_per_angstrom": float(forces[-1]) if forces else float("nan"),
    }


def run(args_list, cwd: Path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    result = subprocess.run(args_list, cwd=cwd, capture_output=True, text=True, env=env)
    log = result.stdout + result.stderr
    (cwd / "log.txt").write_text(log)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args_list)} failed in {cwd}:\n{log[-3000:]}")
    return log


def benchmark(architecture: str, size, pool, val_path, test_path, args) -> dict:
    n = len(pool) if size == "all" else int(size)
    work = args.work / f"{architecture}-{n}"
    work.mkdir(parents=True, exist_ok=True)
    train_path = work / "train.xyz"
    if not (args.reuse and train_path.exists()):
        ase.io.write(train_path, pool[:n])
    epochs = epochs_for(n, args)
    if args.reuse and (work / "model.pt").exists():
        # trained by an earlier run with the same options: evaluate only
        logs = sorted(work.glob("outputs/*/*/train.log"))
        log = logs[-1].read_text() if logs else ""
        total = float("nan")
    else:
        opts = options(architecture, str(train_path), str(val_path), epochs, args)
        (work / "options.yaml").write_text(yaml.safe_dump(opts))
        start = time.perf_counter()
        log = run(["mtt", "train", "options.yaml", "-o", "model.pt"], work)
        total = time.perf_counter() - start

    eval_options = {
        "systems": {"read_from": str(test_path), "length_unit": "angstrom"},
        "targets": {"energy": {"key": "energy", "unit": "eV", "forces": True}},
    }
    (work / "eval.yaml").write_text(yaml.safe_dump(eval_options))
    eval_log = run(["mtt", "eval", "model.pt", "eval.yaml", "-o", "test.xyz"], work)
    return {
        "architecture": architecture,
        "n_train": n,
        "epochs": epochs,
        "epoch_seconds": epoch_seconds(log),
        "train_seconds": total,
        **maes(eval_log),
    }


def header(args) -> List[str]:
    """How the numbers were produced: command, settings, machine."""
    import platform

    import metatrain
    import torch

    import pet_mta

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line for line in cpuinfo if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    budget = (
        f"about {args.steps} optimiser steps per run (epochs = steps x batch / "
        "structures)"
        if args.steps is not None
        else f"{args.epochs} epochs per run"
    )
    hypers = ", ".join(f"`{k}={v}`" for k, v in MODEL.items())
    return [
        "Command: `" + " ".join(["python", "bench/accuracy.py", *sys.argv[1:]]) + "`",
        "",
        f"Data: `{Path(args.data).name}`, fixed-seed split ({args.n_test} test, "
        f"{args.n_val} validation, training sets drawn from the rest). Both "
        f"architectures: the same options file (only `architecture.name` differs), "
        f"{hypers}, batch {args.batch_size}, learning rate {args.learning_rate}, "
        f"warm-up 5 %, float32, seed {args.seed}; {budget}. Energy and forces "
        "(and virials) in the loss; MAE from `mtt eval` on the test split.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, {args.jobs} training run(s) at a "
        f"time with `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}`; "
        f"torch {torch.__version__}, metatrain {metatrain.__version__}, pet_mta "
        f"{pet_mta.__version__}. Time per epoch: mean interval between epoch log "
        "lines (includes the validation pass).",
        "",
    ]


def report(results, out: Path, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(results, indent=2))
    lines = header(args) + [
        "| architecture | training structures | epochs | energy MAE (meV/atom) "
        "| force MAE (meV/Å) | time per epoch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['architecture']} | {r['n_train']} | {r['epochs']} | "
            f"{r['energy_mae_mev_per_atom']:.1f} | "
            f"{r['force_mae_mev_per_angstrom']:.0f} | {r['epoch_seconds']:.1f} |"
        )
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(results, out: Path) -> None:
    """Learning curves: MAE against training set size, both architectures."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for architecture in sorted({r["architecture"] for r in results}):
        rows = sorted(
            (r for r in results if r["architecture"] == architecture),
            key=lambda r: r["n_train"],
        )
        sizes = [r["n_train"] for r in rows]
        for axis, key in zip(
            axes, ["energy_mae_mev_per_atom", "force_mae_mev_per_angstrom"]
        ):
            axis.loglog(sizes, [r[key] for r in rows], "o-", label=architecture)
    axes[0].set_ylabel("energy MAE / meV/atom")
    axes[1].set_ylabel("force MAE / meV/Å")
    for axis in axes:
        axis.set_xlabel("training structures")
        axis.legend()
    figure.tight_layout()
    figure.savefig(out / "accuracy.png", dpi=150)


def _forces(atoms) -> np.ndarray:
    """Reference forces of a data file, or the forces of an ``mtt eval`` output
    (stored as energy gradients, ``-forces``)."""
    if "energy_positions_gradients" in atoms.info:
        return -np.asarray(atoms.info["energy_positions_gradients"])
    if "forces" in atoms.arrays:
        return atoms.arrays["forces"]
    return atoms.calc.results["forces"]


def parity(results, work: Path, out: Path) -> None:
    """Predicted vs reference forces on the test set, largest training set."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    largest = max(r["n_train"] for r in results)
    rows = [r for r in results if r["n_train"] == largest]
    reference = ase.io.read(work / "test.xyz", ":")
    true = np.concatenate([_forces(a).ravel() for a in reference])
    figure, axes = plt.subplots(1, len(rows), figsize=(3.6 * len(rows), 3.4))
    for axis, r in zip(np.atleast_1d(axes), rows):
        predicted_frames = ase.io.read(
            work / f"{r['architecture']}-{largest}" / "test.xyz", ":"
        )
        predicted = np.concatenate([_forces(a).ravel() for a in predicted_frames])
        axis.plot(true, predicted, ".", markersize=1, alpha=0.4)
        limit = float(np.abs(true).max())
        axis.plot([-limit, limit], [-limit, limit], "k-", linewidth=0.5)
        axis.set_title(
            f"{r['architecture']}, {largest} structures\n"
            f"MAE {r['force_mae_mev_per_angstrom']:.0f} meV/Å"
        )
        axis.set_xlabel("EMT force component / eV/Å")
        axis.set_ylabel("predicted / eV/Å")
    figure.tight_layout()
    figure.savefig(out / "accuracy_parity.png", dpi=150)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"])
    parser.add_argument("--architectures", nargs="+", default=["pet_mta", "pet"])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps per training run"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="training runs at the same time"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "pet_mta-accuracy"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate models already trained in --work instead of training again",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report and plots from --out/accuracy.json and --work",
    )
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "accuracy.json").read_text())
        report(results, args.out, args)
        plot(results, args.out)
        parity(results, args.work, args.out)
        return 0

    frames = ase.io.read(args.data, ":")
    pool, val, test = split(frames, args.n_test, args.n_val, args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    val_path = args.work / "val.xyz"
    test_path = args.work / "test.xyz"
    if not (args.reuse and val_path.exists() and test_path.exists()):
        ase.io.write(val_path, val)
        ase.io.write(test_path, test)

    runs = [(a, size) for size in args.sizes for a in args.architectures]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool_of_jobs:
        futures = [
            pool_of_jobs.submit(benchmark, a, size, pool, val_path, test_path, args)
            for a, size in runs
        ]
        results = []
        for future in futures:
            result = future.result()
            print(json.dumps(result), flush=True)
            results.append(result)
    report(results, args.out, args)
    plot(results, args.out)
    parity(results, args.work, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
