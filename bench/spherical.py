"""Spherical-target benchmark: a polarizability (o3_lambda = 0 and 2) learned by
pet_mta and by metatrain's ``pet``, plain and ECSE-symmetrized.

The target is computed from the structures of ``../shared/data`` with a classical
model written here, the Applequist dipole-interaction model with Thole's exponential
damping: every atom ``i`` carries an isotropic polarizability ``alpha_i``; induced
dipoles ``mu_i = alpha_i (E + sum_j T_ij mu_j)`` couple through the damped
dipole-field tensor

    T_ij = lambda_5 3 r r^T / r^5 - lambda_3 / r^3,    v = a r / (alpha_i alpha_j)^(1/6)
    lambda_3 = 1 - (1 + v + v^2 / 2) exp(-v),   lambda_5 = lambda_3 - v^3 / 6 exp(-v)

and the molecular polarizability is ``A = sum_ij B_ij`` with ``B = (alpha^-1 -
T)^-1`` (a ``3N x 3N`` solve). ``alpha_i`` and ``a`` are van Duijnen & Swart's
(J. Phys. Chem. A 102, 2399, 1998) exponential-model values, in Å^3: H 0.514,
C 1.405, N 1.105, O 0.862, a = 2.1304. ``A`` is symmetric; its invariant part
(``o3_lambda = 0``, ``Tr A / sqrt(3)``) and its anisotropy (``o3_lambda = 2``,
five components) are the spherical target ``mtt::polarizability`` (one per
structure, Å^3), see :mod:`pet_mta.tensors`.

Both architectures are trained with ``mtt train`` from the same options (the
hyper-parameters of ``accuracy_sets.MODEL``; only ``architecture.name`` differs),
on the same split, and both exported models are also wrapped with ``pet-mta
symmetrize`` (ECSE, exactly equivariant). Reported on the test split: MAE of the
``lambda = 0`` and of the ``lambda = 2`` components (Å^3), and the equivariance error
(mean over test structures and random rotations of ``|y(Rx) - D(R) y(x)|``).

    OMP_NUM_THREADS=1 python bench/spherical.py --epochs 2 --n-train 50 --out /tmp/s
    OMP_NUM_THREADS=1 python bench/spherical.py            # the documented run

Writes ``spherical.json`` and ``spherical.md`` in ``--out`` (default
``docs/src/bench``). Not a test; the numbers depend on the machine and budget.
"""

import argparse
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Dict, List

import ase
import ase.io
import metatensor.torch as mts
import numpy as np
import torch
import yaml
from accuracy import arch_assignments, assignments, run, tool
from accuracy_sets import MODEL
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, load_atomistic_model
from metatomic.torch.o3 import O3Transformations

from pet_mta.neighbors import systems_from_ase
from pet_mta.tensors import symmetric_to_spherical

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NAME = "mtt::polarizability"
IRREPS = [(0, 1), (2, 1)]
#: van Duijnen & Swart (1998), exponential Thole model: polarizabilities (Å^3)
ALPHA = {1: 0.514, 6: 1.405, 7: 1.105, 8: 0.862}
THOLE_A = 2.1304


# --- the classical model -------------------------------------------------------------


def polarizability(atoms: ase.Atoms) -> np.ndarray:
    """Molecular polarizability (Å^3, ``[3, 3]``, symmetric) of a non-periodic
    structure in the Thole-damped Applequist model (see the module doc)."""
    alpha = np.array([ALPHA[int(z)] for z in atoms.numbers])
    n = len(atoms)
    vectors = atoms.positions[None, :, :] - atoms.positions[:, None, :]
    r = np.linalg.norm(vectors, axis=-1)
    np.fill_diagonal(r, 1.0)
    v = THOLE_A * r / (alpha[:, None] * alpha[None, :]) ** (1 / 6)
    damping = np.exp(-v)
    lambda3 = 1.0 - (1.0 + v + v**2 / 2) * damping
    lambda5 = lambda3 - v**3 / 6 * damping
    outer = vectors[:, :, :, None] * vectors[:, :, None, :]
    field = 3.0 * (lambda5 / r**5)[:, :, None, None] * outer - (lambda3 / r**3)[
        :, :, None, None
    ] * np.eye(3)
    field[np.arange(n), np.arange(n)] = 0.0
    relay = -field
    relay[np.arange(n), np.arange(n)] = np.eye(3)[None] / alpha[:, None, None]
    matrix = relay.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    inverse = np.linalg.inv(matrix).reshape(n, 3, n, 3)
    result = inverse.sum(axis=(0, 2))
    return 0.5 * (result + result.T)


def spherical_values(frames: List[ase.Atoms]) -> Dict[tuple, np.ndarray]:
    """``{(o3_lambda, o3_sigma): [n_frames, 2 lambda + 1]}`` of the polarizability."""
    tensors = torch.tensor(np.stack([polarizability(a) for a in frames]))
    l0, l2 = symmetric_to_spherical(tensors)
    return {(0, 1): l0.numpy(), (2, 1): l2.numpy()}


def write_target(frames: List[ase.Atoms], path: Path) -> None:
    """The target of ``frames`` (structure ``i`` = sample ``system = i``) as a
    metatensor file, the format metatrain reads multi-irrep targets from."""
    values = spherical_values(frames)
    samples = Labels(["system"], torch.arange(len(frames)).reshape(-1, 1))
    blocks = []
    for o3_lambda, o3_sigma in IRREPS:
        mu = torch.arange(-o3_lambda, o3_lambda + 1).reshape(-1, 1)
        blocks.append(
            TensorBlock(
                values=torch.tensor(values[(o3_lambda, o3_sigma)])[:, :, None],
                samples=samples,
                components=[Labels(["o3_mu"], mu)],
                properties=Labels(["n"], torch.tensor([[0]])),
            )
        )
    keys = Labels(["o3_lambda", "o3_sigma"], torch.tensor(IRREPS))
    mts.save(str(path), TensorMap(keys, blocks))


# --- training ---------------------------------------------------------------------


def dataset_section(xyz: Path, target: Path) -> dict:
    return {
        "systems": {"read_from": str(xyz), "length_unit": "angstrom"},
        "targets": {
            NAME: {
                "read_from": str(target),
                "reader": "metatensor",
                "quantity": "",
                "unit": "angstrom^3",
                "sample_kind": "system",
                "type": {
                    "spherical": {
                        "irreps": [
                            {"o3_lambda": lam, "o3_sigma": sigma}
                            for lam, sigma in IRREPS
                        ]
                    }
                },
            }
        },
    }


def model_hypers(architecture: str, args) -> dict:
    """``accuracy_sets.MODEL``, with ``--model`` (both) and ``--arch-model`` (one
    architecture) overrides."""
    model = {**MODEL, **assignments(args.model)}
    return {**model, **arch_assignments(args.arch_model).get(architecture, {})}


def train(architecture: str, files: dict, work: Path, args) -> float:
    """``mtt train`` in ``work``; returns the wall time (s)."""
    work.mkdir(parents=True, exist_ok=True)
    options = {
        "seed": args.seed,
        "base_precision": 32,
        "architecture": {
            "name": architecture,
            "model": model_hypers(architecture, args),
            "training": {
                "batch_size": args.batch_size,
                "num_epochs": args.epochs,
                "learning_rate": args.learning_rate,
                "warmup_fraction": 0.05,
                "num_workers": 0,
                "checkpoint_interval": 10**6,
            },
        },
        "training_set": dataset_section(files["train"], files["train_target"]),
        "validation_set": dataset_section(files["val"], files["val_target"]),
        "test_set": 0.0,
    }
    (work / "options.yaml").write_text(yaml.safe_dump(options))
    start = time.perf_counter()
    run([tool("mtt"), "train", "options.yaml", "-o", "model.pt"], work, "train.txt")
    return time.perf_counter() - start


# --- evaluation --------------------------------------------------------------------


def predict(model, frames: List[ase.Atoms]) -> Dict[tuple, np.ndarray]:
    """``{irrep: [n_frames, 2 lambda + 1]}`` predicted by an exported model."""
    result: Dict[tuple, List[np.ndarray]] = {irrep: [] for irrep in IRREPS}
    request = {NAME: ModelOutput(sample_kind="system")}
    from metatomic.torch import ModelEvaluationOptions

    options = ModelEvaluationOptions(length_unit="angstrom", outputs=request)
    for start in range(0, len(frames), 16):
        systems = systems_from_ase(frames[start : start + 16], model)
        output = model(systems, options, check_consistency=False)[NAME]
        for irrep in IRREPS:
            block = output.block({"o3_lambda": irrep[0], "o3_sigma": irrep[1]})
            result[irrep].append(block.values[:, :, 0].detach().double().numpy())
    return {irrep: np.concatenate(values) for irrep, values in result.items()}


def errors(model, frames, reference, args) -> dict:
    """MAE per irrep (Å^3) on ``frames``, and the equivariance error under
    ``args.n_rotations`` random rotations of the first ``args.n_equivariance``."""
    predicted = predict(model, frames)
    result = {
        f"mae_l{lam}": float(np.mean(np.abs(predicted[(lam, s)] - reference[(lam, s)])))
        for lam, s in IRREPS
    }
    n_rotations = args.n_rotations
    frames = frames[: args.n_equivariance]
    predicted = {irrep: values[: len(frames)] for irrep, values in predicted.items()}
    generator = torch.Generator().manual_seed(args.seed)
    rotations = torch.linalg.qr(
        torch.randn(n_rotations, 3, 3, dtype=torch.float64, generator=generator)
    ).Q
    rotations = rotations * torch.linalg.det(rotations)[:, None, None]
    wigner = O3Transformations(rotations, 2)
    deviations = []
    for k in range(n_rotations):
        matrix = rotations[k].numpy()
        moved = [a.copy() for a in frames]
        for atoms in moved:
            atoms.positions = atoms.positions @ matrix.T
        rotated = predict(model, moved)
        for lam, s in IRREPS:
            expected = predicted[(lam, s)] @ wigner.wigner_D_matrices(lam)[k].numpy().T
            deviations.append(np.abs(rotated[(lam, s)] - expected).mean())
    result["equivariance_error"] = float(np.mean(deviations))
    return result


def evaluate_all(work: Path, test: List[ase.Atoms], reference, args) -> dict:
    """Plain and ECSE-symmetrized errors of the model trained in ``work``."""
    command = [tool("pet-mta"), "symmetrize", "model.pt", "-o", "symmetrized.pt"]
    run(command + args.symmetrize_options.split(), work, "symmetrize.txt")
    result = {}
    for label, path in (("plain", "model.pt"), ("symmetrized", "symmetrized.pt")):
        model = load_atomistic_model(str(work / path))
        start = time.perf_counter()
        result[label] = errors(model, test, reference, args)
        result[label]["eval_seconds"] = time.perf_counter() - start
    model = load_atomistic_model(str(work / "model.pt"))
    result["params"] = sum(p.numel() for p in model.parameters())
    return result


# --- report ------------------------------------------------------------------------


def report(record: dict) -> str:
    lines = [
        "Polarizability of random methane (Thole-damped dipole model, Å^3): "
        f"{record['n_train']} training, {record['n_val']} validation and "
        f"{record['n_test']} test structures, {record['epochs']} epochs of batch "
        f"{record['batch_size']} ({record['steps']} steps), "
        "`base_precision: 32`; equivariance error over "
        f"{record['n_rotations']} random rotations of the first "
        f"{record['n_equivariance']} test structures. Target scale on the test split: "
        f"mean |l0| {record['target_mean_abs_l0']:.3f}, mean |l2 component| "
        f"{record['target_mean_abs_l2']:.3f} Å^3.",
        "",
        "| architecture | params | train time (s) | model | MAE λ=0 (Å^3) "
        "| MAE λ=2 (Å^3) | equivariance error (Å^3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in record["results"].items():
        for label in ("plain", "symmetrized"):
            e = result[label]
            lines.append(
                f"| {name} | {result['params']} | {result['train_seconds']:.0f} | "
                f"{label} | {e['mae_l0']:.4f} | {e['mae_l2']:.4f} | "
                f"{e['equivariance_error']:.2e} |"
            )
    lines += ["", "Runs (model hypers, command, machine):", ""]
    for name, result in record["results"].items():
        hypers = ", ".join(f"{k}={v}" for k, v in result["model"].items())
        lines.append(
            f"- {name}: {hypers}; `{result['command']}`; {result['machine']}, "
            f"{result['date']}"
        )
    command = ("pet-mta symmetrize " + record["symmetrize_options"]).strip()
    lines += [
        "",
        f"Symmetrized with `{command}`. The models are float32 (`base_precision: "
        "32`): the equivariance error left after symmetrization is float32 "
        "round-off. Training times are wall times on a machine shared with other "
        "jobs, not a speed comparison (see the inference benchmark for that).",
    ]
    return "\n".join(lines) + "\n"


def run_name(architecture: str, args) -> str:
    """``pet_mta``, or ``pet_mta (d_pet=56, ...)`` with ``--arch-model`` overrides."""
    own = arch_assignments(args.arch_model).get(architecture, {})
    if not own:
        return architecture
    return architecture + " (" + ", ".join(f"{k}={v}" for k, v in own.items()) + ")"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "ch4_xtb_train.xyz")
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-val", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-rotations", type=int, default=2)
    parser.add_argument(
        "--n-equivariance", type=int, default=20, help="test structures rotated"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--architectures", nargs="+", default=["pet_mta", "pet"])
    parser.add_argument(
        "--model", nargs="*", default=[], help="KEY=VALUE model hypers of both"
    )
    parser.add_argument(
        "--arch-model", nargs="*", default=[], help="ARCH:KEY=VALUE of one"
    )
    parser.add_argument("--symmetrize-options", default="")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add these runs to --out/spherical.json (same setup) instead of "
        "replacing it",
    )
    parser.add_argument(
        "--work", type=Path, default=Path.cwd() / "spherical-bench", help="scratch"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "src" / "bench")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite --out/spherical.md from --out/spherical.json and stop",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        record = json.loads((args.out / "spherical.json").read_text())
        (args.out / "spherical.md").write_text(report(record))
        return 0

    frames = ase.io.read(args.data, ":")
    order = np.random.default_rng(args.seed).permutation(len(frames))
    test = [frames[i] for i in order[: args.n_test]]
    val = [frames[i] for i in order[args.n_test : args.n_test + args.n_val]]
    start = args.n_test + args.n_val
    train_frames = [frames[i] for i in order[start : start + args.n_train]]
    args.work.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, subset in (("train", train_frames), ("val", val), ("test", test)):
        for atoms in subset:
            atoms.calc = None
        files[split] = args.work / f"{split}.xyz"
        ase.io.write(files[split], subset)
        files[f"{split}_target"] = args.work / f"{split}.mts"
        write_target(subset, files[f"{split}_target"])
    reference = spherical_values(test)

    setup = {
        "n_train": len(train_frames),
        "n_val": len(val),
        "n_test": len(test),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps": args.epochs * math.ceil(len(train_frames) / args.batch_size),
        "n_rotations": args.n_rotations,
        "n_equivariance": min(args.n_equivariance, len(test)),
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "symmetrize_options": args.symmetrize_options,
        "target_mean_abs_l0": float(np.abs(reference[(0, 1)]).mean()),
        "target_mean_abs_l2": float(np.abs(reference[(2, 1)]).mean()),
    }
    results = {}
    path = args.out / "spherical.json"
    if args.merge and path.exists():
        earlier = json.loads(path.read_text())
        if {key: earlier.get(key) for key in setup} != setup:
            raise SystemExit(f"--merge: {path} was made with another setup")
        results = earlier["results"]

    for architecture in args.architectures:
        name = run_name(architecture, args)
        work = args.work / re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")
        seconds = train(architecture, files, work, args)
        results[name] = {
            "architecture": architecture,
            "model": model_hypers(architecture, args),
            "train_seconds": seconds,
            **evaluate_all(work, test, reference, args),
            "command": " ".join(["python", "bench/spherical.py", *sys.argv[1:]]),
            "machine": f"{platform.processor() or platform.machine()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            "date": time.strftime("%Y-%m-%d"),
        }
        print(name, json.dumps(results[name], indent=1), flush=True)

    record = {**setup, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spherical.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "spherical.md").write_text(report(record))
    print(report(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
