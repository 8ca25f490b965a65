"""Ensemble of pet_mta models against a single model on held-out HEA (EMT) data.

Trains ``--members`` pet_mta models that differ only in their seed (``mtt train``,
architecture ``pet_mta``), wraps the exported models in :class:`pet_mta.Ensemble`
and reports, on a held-out split of ``../shared/data/hea_emt_train.xyz``:

- force and energy MAE of every single model and of the ensemble mean;
- how well the ensemble's ``energy_uncertainty`` ranks the actual energy errors
  (Spearman and Pearson correlation), and the same for metatrain's LLPR wrapper on
  the first member's checkpoint (``--llpr``);
- a calibration plot: ``|error|`` against the predicted standard deviation, and
  the RMSE of the errors in bins of predicted standard deviation (a calibrated
  Gaussian model lies on the diagonal).

Usage (the documented run; about an hour on 2 CPU cores)::

    python bench/ensemble.py --n-train 1000 --epochs 100

A quick check (a few minutes)::

    python bench/ensemble.py --n-train 100 --n-test 60 --epochs 5 --llpr

writes ``ensemble.md``, ``ensemble.json`` and ``ensemble.png`` to
``docs/src/bench/`` (``--out``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import ase.io
import numpy as np
import torch
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model

from pet_mta import Ensemble
from pet_mta.neighbors import systems_from_ase

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hea_emt_train.xyz"

MODEL_OPTIONS = """
seed: {seed}
architecture:
  name: pet_mta
  model:
    cutoff: 4.5
    d_pet: {width}
    d_head: {width}
    d_node: {width}
    d_feedforward: {width2}
    num_heads: 4
    num_attention_layers: 2
    num_gnn_layers: 2
  training:
    batch_size: 8
    num_epochs: {epochs}
    learning_rate: 1.0e-3
    log_interval: 1000
    checkpoint_interval: 100000
    num_workers: 0
training_set:
  systems: {{read_from: ../train.xyz, length_unit: angstrom}}
  targets:
    energy: {{key: energy, unit: eV, forces: {{key: forces}}, stress: false}}
validation_set:
  systems: {{read_from: ../validation.xyz, length_unit: angstrom}}
  targets:
    energy: {{key: energy, unit: eV, forces: {{key: forces}}, stress: false}}
test_set: 0.0
"""

LLPR_OPTIONS = """
seed: 0
architecture:
  name: llpr
  training: {model_checkpoint: ../seed-0/model.ckpt, batch_size: 8, num_workers: 0}
training_set:
  systems: {read_from: ../train.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: false, stress: false}
validation_set:
  systems: {read_from: ../validation.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: false, stress: false}
test_set: 0.0
"""


def split(args) -> Dict[str, list]:
    """Disjoint random train / validation / test frames (fixed seed)."""
    frames = ase.io.read(args.data, index=":")
    order = np.random.default_rng(args.split_seed).permutation(len(frames))
    sizes = {"train": args.n_train, "validation": args.n_val, "test": args.n_test}
    if sum(sizes.values()) > len(frames):
        raise SystemExit(f"only {len(frames)} frames in {args.data}")
    parts, start = {}, 0
    for name, size in sizes.items():
        parts[name] = [frames[i] for i in order[start : start + size]]
        start += size
    return parts


def mtt_train(options: str, workdir: Path) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "options.yaml").write_text(options)
    start = time.time()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mtt"), "train", "options.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads())),
    )
    if result.returncode != 0:
        raise SystemExit(f"mtt train failed in {workdir}:\n{result.stderr[-3000:]}")
    return time.time() - start


def predict(model, frames, batch: int = 8) -> Dict[str, np.ndarray]:
    """Per-structure energies (and uncertainties if the model has them) and forces."""
    wanted = {"energy": ModelOutput(sample_kind="system")}
    if "energy_uncertainty" in model.capabilities().outputs:
        wanted["energy_uncertainty"] = ModelOutput(sample_kind="system")
    options = ModelEvaluationOptions(length_unit="angstrom", outputs=wanted)
    energies, sigmas, forces = [], [], []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        systems = systems_from_ase(
            chunk, model, dtype=torch.float32, positions_requires_grad=True
        )
        results = model(systems, options, check_consistency=False)
        energy = results["energy"].block().values
        grads = torch.autograd.grad(energy.sum(), [s.positions for s in systems])
        energies.append(energy.detach()[:, 0].numpy())
        forces.extend(-g.numpy() for g in grads)
        if "energy_uncertainty" in results:
            sigmas.append(
                results["energy_uncertainty"].block().values[:, 0].detach().numpy()
            )
    out = {"energy": np.concatenate(energies), "forces": np.concatenate(forces)}
    if sigmas:
        out["sigma"] = np.concatenate(sigmas)
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(
        np.corrcoef(np.argsort(np.argsort(x)), np.argsort(np.argsort(y)))[0, 1]
    )


def uq_metrics(error: np.ndarray, sigma: np.ndarray) -> Dict[str, float]:
    """Correlations and calibration of per-atom energy errors (eV/atom)."""
    return {
        "spearman": spearman(sigma, np.abs(error)),
        "pearson": float(np.corrcoef(sigma, np.abs(error))[0, 1]),
        # a calibrated Gaussian has mean (error / sigma)^2 = 1
        "mean_z2": float(np.mean((error / sigma) ** 2)),
    }


def plot(path: Path, curves: Dict[str, tuple]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for (name, (error, sigma)), color in zip(curves.items(), ["C0", "C1"]):
        error, sigma = 1000 * np.abs(error), 1000 * sigma  # meV/atom
        axes[0].scatter(sigma, error, s=8, alpha=0.6, color=color, label=name)
        edges = np.quantile(sigma, np.linspace(0, 1, 9))
        index = np.clip(np.searchsorted(edges, sigma, side="right") - 1, 0, 7)
        centers = [sigma[index == b].mean() for b in range(8) if np.any(index == b)]
        rmse = [
            np.sqrt(np.mean(error[index == b] ** 2))
            for b in range(8)
            if np.any(index == b)
        ]
        axes[1].plot(centers, rmse, "o-", color=color, label=name)
    for ax in axes:
        low = min(ax.get_xlim()[0], ax.get_ylim()[0])
        high = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], "k--", lw=1, label="ideal")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted standard deviation (meV/atom)")
        ax.legend()
    axes[0].set_ylabel("|energy error| (meV/atom)")
    axes[1].set_ylabel("RMSE in bin (meV/atom)")
    axes[0].set_title("held-out structures")
    axes[1].set_title("calibration (8 quantile bins)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--width", type=int, default=64, help="d_pet = d_head = d_node")
    parser.add_argument("--llpr", action="store_true", help="also run metatrain's llpr")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep members already in --workdir (trained with the same split options)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--jobs", type=int, default=1, help="members trained at the same time"
    )
    parser.add_argument("--workdir", default="/tmp/pet_mta_bench_ensemble")
    parser.add_argument("--out", default=str(ROOT / "docs" / "src" / "bench"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    parts = split(args)
    for name in ("train", "validation"):
        ase.io.write(work / f"{name}.xyz", parts[name])
    test = parts["test"]
    n_atoms = np.array([len(a) for a in test])
    reference_energy = np.array([a.get_potential_energy() for a in test])
    reference_forces = np.concatenate([a.get_forces() for a in test])

    def train_member(seed: int) -> float:
        if args.reuse and (work / f"seed-{seed}" / "model.pt").exists():
            return 0.0
        options = MODEL_OPTIONS.format(
            seed=seed, epochs=args.epochs, width=args.width, width2=2 * args.width
        )
        return mtt_train(options, work / f"seed-{seed}")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        seconds = list(pool.map(train_member, range(args.members)))
    paths = [str(work / f"seed-{seed}" / "model.pt") for seed in range(args.members)]
    for seed, time_taken in enumerate(seconds):
        print(f"member {seed}: trained in {time_taken:.0f} s", flush=True)

    def errors(prediction):
        energy = (prediction["energy"] - reference_energy) / n_atoms
        forces = prediction["forces"] - reference_forces
        return energy, forces

    result = {"members": [], "settings": vars(args)}
    for path in paths:
        energy, forces = errors(predict(load_atomistic_model(path), test))
        result["members"].append(
            {
                "energy_mae_meV_atom": 1000 * float(np.mean(np.abs(energy))),
                "force_mae_meV_A": 1000 * float(np.mean(np.abs(forces))),
            }
        )
    ensemble_path = work / "ensemble.pt"
    Ensemble(paths).export().save(str(ensemble_path))
    prediction = predict(load_atomistic_model(str(ensemble_path)), test)
    energy, forces = errors(prediction)
    sigma = prediction["sigma"] / n_atoms
    result["ensemble"] = {
        "energy_mae_meV_atom": 1000 * float(np.mean(np.abs(energy))),
        "force_mae_meV_A": 1000 * float(np.mean(np.abs(forces))),
        **uq_metrics(energy, sigma),
    }
    curves = {f"ensemble of {args.members}": (energy, sigma)}

    if args.llpr:
        mtt_train(LLPR_OPTIONS, work / "llpr")
        llpr = predict(load_atomistic_model(str(work / "llpr" / "model.pt")), test)
        llpr_energy, _ = errors(llpr)
        llpr_sigma = llpr["sigma"] / n_atoms
        result["llpr"] = {
            "energy_mae_meV_atom": 1000 * float(np.mean(np.abs(llpr_energy))),
            **uq_metrics(llpr_energy, llpr_sigma),
        }
        curves["LLPR (member 0)"] = (llpr_energy, llpr_sigma)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ensemble.json").write_text(json.dumps(result, indent=2))
    plot(out / "ensemble.png", curves)
    (out / "ensemble.md").write_text(table(result, args))
    print(table(result, args))


def table(result: dict, args) -> str:
    members = result["members"]
    force = [m["force_mae_meV_A"] for m in members]
    energy = [m["energy_mae_meV_atom"] for m in members]
    ens = result["ensemble"]
    lines = [
        f"Held-out HEA (EMT) structures: {args.n_test}; training set {args.n_train}, "
        f"{args.epochs} epochs, d_pet {args.width}, {args.members} seeds.",
        "",
        "| model | force MAE (meV/Å) | energy MAE (meV/atom) | Spearman(σ, abs err) "
        "| Pearson | mean (err/σ)² |",
        "|---|---|---|---|---|---|",
        f"| single model (mean of {len(members)}) | {np.mean(force):.1f} "
        f"(best {min(force):.1f}) | {np.mean(energy):.2f} | | | |",
        f"| ensemble mean | {ens['force_mae_meV_A']:.1f} | "
        f"{ens['energy_mae_meV_atom']:.2f} | {ens['spearman']:.2f} | "
        f"{ens['pearson']:.2f} | {ens['mean_z2']:.2f} |",
    ]
    if "llpr" in result:
        llpr = result["llpr"]
        lines.append(
            f"| LLPR on member 0 | | {llpr['energy_mae_meV_atom']:.2f} | "
            f"{llpr['spearman']:.2f} | {llpr['pearson']:.2f} | {llpr['mean_z2']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
