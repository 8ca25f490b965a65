"""ECSE benchmark: cost, frames, equivariance error, accuracy of a trained model.

Part ``cost`` (a small random-weight float64 PET, energy + forces):

- time of one energy+forces evaluation of the plain backbone, of ECSE in local and
  whole mode and of metatomic's Lebedev-grid ``SymmetrizedModel`` (default grid),
  and the ratios to the plain backbone, on CH4, a 192-atom water box and fcc
  alloy cells of 32 to 1000 atoms (the scaling series);
- ECSE frames: local mode per atom (mean, max), whole mode per structure;
- equivariance error: relative std of the total energy over random rotations
  (proper rotations; ECSE without ``inversion`` is exact for SO(3)).

Whole mode (and any model) is skipped where its estimated cost (frames x plain time)
exceeds ``--max-seconds``; the estimated frame count is reported instead. The number
of rotations per model and structure is ``--rotations``, capped so that the
rotations take at most about ``--rotation-seconds`` (at least 3); the count used is
reported. Times are medians over the rotated evaluations.

Part ``accuracy`` (``--trained MODEL.pt --test TEST.xyz``): an exported model and
its local-mode ECSE wrapper, float32, evaluated on the first ``--n-test``
structures; energy MAE (meV/atom) and force MAE (meV/Å) against the references in
the file, and the spread over rotations of one structure.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse.py --parts cost accuracy \\
        --trained model.pt --test test.xyz
    python bench/ecse.py --report-only     # rewrite ecse.md/.png from ecse.json

Results go to ``docs/src/bench/ecse.{json,md,png}`` (``--out``); parts that are
not run keep their previous results in the JSON file.
"""

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import ase
import ase.build
import ase.io
import numpy as np
import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput
from metatomic.torch.o3 import SymmetrizedModel

from pet_mta import PET, Symmetrized
from pet_mta.neighbors import systems_from_ase
from pet_mta.wrappers.ecse.frames import frames_per_group
from pet_mta.wrappers.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "src" / "bench"

BACKBONE = dict(
    cutoff=4.0,
    d_pet=32,
    d_head=32,
    d_node=32,
    d_feedforward=32,
    num_heads=2,
    num_gnn_layers=2,
)
ALLOY_REPEATS = {32: (2, 2, 2), 108: (3, 3, 3), 256: (4, 4, 4), 500: (5, 5, 5)}
ALLOY_REPEATS[1000] = (5, 5, 10)
# quadrature degree of the finer Lebedev grid (compared on small structures)
FINE_GRID = 11


# ------------------------------------------------------------------ structures
def alloy(n: int) -> ase.Atoms:
    """Rattled fcc Cu/Ni cell of ``n`` atoms (every third atom Ni)."""
    cell = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(ALLOY_REPEATS[n])
    cell.numbers[::3] = 28
    cell.rattle(0.05, seed=0)
    return cell


def water_box() -> ase.Atoms:
    """64 randomly oriented water molecules on a grid, 12.4 Å box (192 atoms)."""
    water = ase.build.molecule("H2O")
    box = ase.Atoms(cell=[12.4, 12.4, 12.4], pbc=True)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3), -1).reshape(-1, 3)
    for point in grid:
        molecule = water.copy()
        molecule.rotate(rng.uniform(0, 360), rng.normal(size=3))
        molecule.translate((point + 0.5) * 3.1)
        box += molecule
    return box


def structures(names: List[str]) -> Dict[str, ase.Atoms]:
    makers = {"CH4": lambda: ase.build.molecule("CH4"), "water 192": water_box}
    for n in ALLOY_REPEATS:
        makers[f"fcc alloy {n}"] = lambda n=n: alloy(n)
    unknown = set(names) - set(makers)
    if unknown:
        raise SystemExit(f"unknown structures {sorted(unknown)}; know {list(makers)}")
    return {name: makers[name]() for name in names}


# ----------------------------------------------------------------- evaluation
def rotation_matrices(n: int, seed: int) -> List[np.ndarray]:
    """``n`` random proper rotations (uniform, QR of Gaussian matrices)."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        result.append(q)
    return result


def rotated(atoms: ase.Atoms, rotation: np.ndarray) -> ase.Atoms:
    copy = atoms.copy()
    copy.positions = atoms.positions @ rotation.T
    if atoms.pbc.any():
        copy.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return copy


def energy_forces(model, atoms: ase.Atoms, dtype: torch.dtype, chunk: int = 0):
    """Total energy, forces ``[N, 3]`` and wall time (s) of one evaluation.

    With ``chunk > 0`` (ECSE local mode), the energy is computed for ``chunk`` atoms
    at a time (``selected_atoms``) and each part is differentiated at once: the same
    energy and forces, without keeping the autograd graph of every frame of every
    atom in memory at the same time.
    """
    start = time.perf_counter()
    systems = systems_from_ase(
        [atoms], model, dtype=dtype, positions_requires_grad=True
    )
    outputs = {"energy": ModelOutput(sample_kind="system")}
    n = len(atoms)
    parts = range(0, n, chunk) if chunk > 0 else [0]
    total = 0.0
    for first in parts:
        selected = None
        if chunk > 0:
            atom = torch.arange(first, min(first + chunk, n))
            selected = Labels(
                ["system", "atom"],
                torch.stack([torch.zeros_like(atom), atom], dim=1).to(torch.int32),
            )
        energy = model(systems, outputs, selected)["energy"].block().values.sum()
        # the neighbour-list vectors are shared by every part: keep their graph
        energy.backward(retain_graph=chunk > 0)
        total += float(energy.detach())
    forces = -systems[0].positions.grad
    elapsed = time.perf_counter() - start
    return total, forces.detach().double().numpy(), elapsed


def frame_stats(model, atoms: ase.Atoms, dtype: torch.dtype):
    """Frames of a :class:`Symmetrized`: per atom (local) or per structure (whole)."""
    system = systems_from_ase([atoms], model, dtype=dtype)[0]
    nl = system.get_neighbor_list(model.frame_list)
    centers = nl.samples.column("first_atom").to(torch.long)
    n = len(atoms)
    local = model.mode == "local"
    groups = torch.arange(n) if local else torch.zeros(n, dtype=torch.long)
    _, _, owner, _ = frames_per_group(
        centers,
        nl.values.reshape(-1, 3),
        n,
        groups,
        n if local else 1,
        model.hypers,
        model.inversion,
        # as in local mode: the spread_margin rule applies to periodic systems
        spread_margin=local and bool(atoms.pbc.any()),
    )
    counts = torch.bincount(owner, minlength=n if local else 1).double()
    return float(counts.mean()), int(counts.max())


def over_rotations(model, atoms, args, dtype, chunk: int = 0) -> Dict[str, Any]:
    """Energies over random rotations: relative std, median time per call.

    ``args.rotations`` rotations, fewer (at least ``args.min_rotations``) when they
    would take more than ``args.rotation_seconds``.
    """
    energies, times = [], []
    for k, rotation in enumerate(rotation_matrices(args.rotations, seed=1)):
        energy, _, elapsed = energy_forces(
            model, rotated(atoms, rotation), dtype, chunk
        )
        energies.append(energy)
        times.append(elapsed)
        if k + 1 >= args.min_rotations:
            if sum(times) + np.median(times) > args.rotation_seconds:
                break
    energies = np.array(energies)
    return {
        "rotations": len(energies),
        "std": float(np.std(energies)),
        "relative_std": float(np.std(energies) / abs(np.mean(energies))),
        "seconds": float(np.median(times)),
    }


def bench_model() -> PET:
    torch.manual_seed(0)
    return PET(atomic_types=[1, 6, 8, 28, 29], **BACKBONE).double().eval()


def cost_part(args, save) -> Dict[str, Any]:
    """The cost part; ``save(partial_result)`` is called after every structure."""
    pet = bench_model()
    models = {
        "plain": pet,
        "local": Symmetrized(pet, mode="local"),
        "whole": Symmetrized(pet, mode="whole"),
        "lebedev": SymmetrizedModel(pet, max_angular_momentum_target=0),
        "lebedev_fine": SymmetrizedModel(
            pet, max_angular_momentum_target=0, max_angular_momentum_grid=FINE_GRID
        ),
    }
    dtype = torch.float64
    # warm-up (first calls allocate and import lazily)
    warm = ase.build.molecule("CH4")
    for model in models.values():
        energy_forces(model, warm, dtype)
    rows = []
    for name, atoms in structures(args.structures).items():
        n = len(atoms)
        plain_s = min(energy_forces(pet, atoms, dtype)[2] for _ in range(3))
        local_frames = frame_stats(models["local"], atoms, dtype)
        whole_frames = frame_stats(models["whole"], atoms, dtype)[1]
        # Lebedev default grid: n_rotations copies, cost ~ n_rotations x plain
        n_lebedev = int(models["lebedev"]._rotation_weights.shape[0])
        n_fine = int(models["lebedev_fine"]._rotation_weights.shape[0])
        estimates = {
            "plain": plain_s,
            "local": plain_s * local_frames[0] * n,  # an upper bound
            "whole": plain_s * whole_frames,
            "lebedev": plain_s * n_lebedev,
            "lebedev_fine": plain_s * n_fine,
        }
        copies = {"whole": whole_frames, "lebedev_fine": n_fine}
        row: Dict[str, Any] = {
            "structure": name,
            "atoms": n,
            "periodic": bool(atoms.pbc.any()),
            "frames_local_mean": local_frames[0],
            "frames_local_max": local_frames[1],
            "frames_whole": whole_frames,
            "lebedev_rotations": n_lebedev,
            "lebedev_fine_rotations": n_fine,
            "models": {},
        }
        for key, model in models.items():
            too_big = copies.get(key, 0) * n > args.max_whole_atoms
            if key != "local" and (estimates[key] > args.max_seconds or too_big):
                row["models"][key] = {"skipped": True, "estimate_s": estimates[key]}
                continue
            chunk = args.chunk if key == "local" else 0
            try:
                result = over_rotations(model, atoms, args, dtype, chunk)
            except RuntimeError as error:
                if "allocate" not in str(error):
                    raise
                row["models"][key] = {"failed": "out of memory"}
                continue
            if key == "plain":
                result["seconds"] = min(result["seconds"], plain_s)
            row["models"][key] = result
        for result in row["models"].values():
            if "seconds" in result:
                result["ratio"] = result["seconds"] / row["models"]["plain"]["seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        save(
            {
                "backbone": dict(BACKBONE, dtype="float64", parameters=parameters(pet)),
                "interaction_range": float(
                    pet.export().capabilities().interaction_range
                ),
                "chunk": args.chunk,
                "rows": rows,
            }
        )


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------- accuracy
class Plain(torch.nn.Module):
    """A loaded model's bare module, with the neighbour lists it needs."""

    def __init__(self, path: Path):
        super().__init__()
        backbone = load_model(path)
        self.module = backbone.module
        self.lists = backbone.neighbor_lists

    def requested_neighbor_lists(self):
        return self.lists

    def forward(self, systems, outputs, selected_atoms=None):
        return self.module(systems, outputs, selected_atoms)


def accuracy_part(args) -> Dict[str, Any]:
    plain = Plain(args.trained)
    options = json.loads(args.ecse_options)
    models: Dict[str, Any] = {"plain": plain}
    for mode in args.modes:
        models[f"ECSE {mode}"] = Symmetrized(args.trained, mode=mode, **options)
    chunks = {key: args.chunk if key == "ECSE local" else 0 for key in models}
    dtype = torch.float32
    frames = ase.io.read(args.test, index=f":{args.n_test}")
    # warm-up: TorchScript optimises during the first calls
    smallest = min(frames, key=len)
    for key, model in models.items():
        for _ in range(2 if key == "plain" else 1):
            energy_forces(model, smallest, dtype, chunks[key])
    reference = []
    predicted: Dict[str, list] = {key: [] for key in models}
    times = {key: 0.0 for key in models}
    for atoms in frames:
        reference.append(
            (atoms.calc.results["energy"], np.array(atoms.calc.results["forces"]))
        )
        for key, model in models.items():
            energy, forces, elapsed = energy_forces(model, atoms, dtype, chunks[key])
            predicted[key].append((energy, forces))
            times[key] += elapsed
    n_atoms = np.array([len(a) for a in frames])
    e_ref = np.array([e for e, _ in reference]) / n_atoms
    f_ref = np.concatenate([f for _, f in reference])
    step = max(1, len(f_ref) // 500)  # forces of about 500 atoms for the plot
    ecse = models[f"ECSE {args.modes[0]}"]
    result: Dict[str, Any] = {
        "model": str(args.trained),
        "description": args.trained_description,
        "parameters": parameters(plain),
        "interaction_range": float(ecse.info.backbone.interaction_range),
        "ecse_options": options,
        "test": str(args.test),
        "structures": len(frames),
        "periodic": bool(any(a.pbc.any() for a in frames)),
        "atoms": [int(n_atoms.min()), int(n_atoms.max())],
        "models": {},
    }
    for key, values in predicted.items():
        e = np.array([e for e, _ in values]) / n_atoms
        f = np.concatenate([f for _, f in values])
        result["models"][key] = {
            "energy_mae_mev_atom": float(1000 * np.mean(np.abs(e - e_ref))),
            "force_mae_mev_a": float(1000 * np.mean(np.abs(f - f_ref))),
            "seconds_per_structure": times[key] / len(frames),
            "energies_per_atom": e.tolist(),
            "forces_sample": np.round(f[::step], 4).tolist(),
            # how far the symmetrized predictions are from the plain ones
            "vs_plain_energy_mev_atom": float(
                1000
                * np.mean(
                    np.abs(e - np.array([e for e, _ in predicted["plain"]]) / n_atoms)
                )
            ),
            "vs_plain_force_mev_a": float(
                1000
                * np.mean(
                    np.abs(f - np.concatenate([f for _, f in predicted["plain"]]))
                )
            ),
        }
    result["energies_per_atom_reference"] = e_ref.tolist()
    result["forces_sample_reference"] = np.round(f_ref[::step], 4).tolist()
    # equivariance error of the trained model on the smallest structure
    atoms = frames[int(np.argmin(n_atoms))]
    spread = {}
    for key, model in models.items():
        energies = [
            energy_forces(model, rotated(atoms, r), dtype, chunks[key])[0]
            for r in rotation_matrices(args.accuracy_rotations, seed=2)
        ]
        spread[key] = float(1000 * np.std(energies) / len(atoms))
    result["rotation_structure_atoms"] = len(atoms)
    result["rotations"] = args.accuracy_rotations
    result["rotation_std_mev_atom"] = spread
    summary = {
        key: {k: v for k, v in model.items() if "_mae_" in k or k.startswith("sec")}
        for key, model in result["models"].items()
    }
    print(json.dumps(summary), result["rotation_std_mev_atom"], flush=True)
    return result


# --------------------------------------------------------------------- report
def source_commit() -> str:
    """The git commit of the ``pet_mta`` package that is imported, with a note if
    its sources differ from that commit."""
    import subprocess

    import pet_mta

    source = Path(pet_mta.__file__).resolve().parent

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *command], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", ".")
    return commit + (" (with uncommitted changes in pet_mta/)" if dirty else "")


def machine() -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line for line in cpuinfo if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def meta_lines(meta: Dict[str, Any]) -> List[str]:
    machine = meta["machine"]
    commit = (
        f"pet_mta at commit {meta['commit']}"
        if meta.get("commit")
        else "commit not recorded (measured with the code of that date, before "
        "this page recorded commits; not rerun since)"
    )
    return [
        f"Command: `{meta['command']}` ({meta['date']}; {commit}).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores (shared with other "
        f"jobs), {machine['threads']} torch thread; torch {machine['torch']}, "
        f"Python {machine['python']}.",
        "",
    ]


def fmt_seconds(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def model_cell(row, key) -> str:
    result = row["models"].get(key)
    if result is None:
        return "-"
    if result.get("failed"):
        return f"failed ({result['failed']})"
    if result.get("skipped"):
        copies = {
            "whole": f"{row['frames_whole']} frames",
            "lebedev_fine": f"{row.get('lebedev_fine_rotations')} copies",
        }
        what = f"{copies[key]} × {row['atoms']} atoms, " if key in copies else ""
        return f"not run ({what}est. {fmt_seconds(result['estimate_s'])} s)"
    return f"{fmt_seconds(result['seconds'])} s ({result['ratio']:.3g}×)"


def std_cell(row, key) -> str:
    result = row["models"].get(key)
    if result is None or "relative_std" not in result:
        return "-"
    return f"{result['relative_std']:.1e} ({result['rotations']})"


KEYS = ("plain", "local", "whole", "lebedev", "lebedev_fine")


def cost_table(cost: Dict[str, Any]) -> List[str]:
    lines = [
        "| structure | N | plain | ECSE local | ECSE whole | Lebedev | "
        "Lebedev, fine | frames/atom, local (mean, max) | frames, whole |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cost["rows"]:
        cells = " | ".join(model_cell(row, k) for k in KEYS)
        lines.append(
            f"| {row['structure']} | {row['atoms']} | {cells} "
            f"| {row['frames_local_mean']:.1f}, {row['frames_local_max']} "
            f"| {row['frames_whole']} |"
        )
    return lines


def std_table(cost: Dict[str, Any]) -> List[str]:
    lines = [
        "| structure | N | plain | ECSE local | ECSE whole | Lebedev | Lebedev, fine |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cost["rows"]:
        cells = " | ".join(std_cell(row, k) for k in KEYS)
        lines.append(f"| {row['structure']} | {row['atoms']} | {cells} |")
    return lines


def accuracy_lines(acc: Dict[str, Any]) -> List[str]:
    options = acc.get("ecse_options") or {}
    settings = (
        ", ".join(f"`{k}={v}`" for k, v in options.items())
        if options
        else "default settings"
    )
    modes = [key for key in acc["models"] if key != "plain"]
    kind = "periodic" if acc.get("periodic", True) else "non-periodic"
    lines = [
        f"**Accuracy of a trained model, plain and symmetrized ({acc['test']})**",
        "",
        *meta_lines(acc["meta"]),
        f"Model `{acc['model']}`: {acc['description']} ({acc['parameters']} "
        f"parameters, interaction range {acc['interaction_range']:g} Å, float32); "
        f"ECSE: `Symmetrized(model, mode=...)`, {settings}. Held-out set "
        f"`{acc['test']}`: first {acc['structures']} structures "
        f"({acc['atoms'][0]}-{acc['atoms'][1]} atoms, {kind}). Errors against the "
        "reference energies and forces of the file; *vs plain*: mean absolute "
        "difference to the plain model's predictions.",
        "",
        "| model | energy MAE (meV/atom) | force MAE (meV/Å) | energy vs plain "
        "(meV/atom) | forces vs plain (meV/Å) | s per structure | "
        f"energy std over {acc['rotations']} rotations (meV/atom) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, model in acc["models"].items():
        versus = ("-", "-")
        if "vs_plain_force_mev_a" in model and key != "plain":
            versus = (
                f"{model['vs_plain_energy_mev_atom']:.2f}",
                f"{model['vs_plain_force_mev_a']:.1f}",
            )
        lines.append(
            f"| {key} | {model['energy_mae_mev_atom']:.2f} | "
            f"{model['force_mae_mev_a']:.1f} | {versus[0]} | {versus[1]} | "
            f"{model['seconds_per_structure']:.3g} | "
            f"{acc['rotation_std_mev_atom'][key]:.2e} |"
        )
    lines += [
        "",
        "The rotation spread is measured on the smallest of these structures "
        f"({acc['rotation_structure_atoms']} atoms); in float32 the spread of "
        f"{' and '.join(modes)} is rounding noise, not a symmetry error.",
        "",
    ]
    return lines


def write_report(results: Dict[str, Any], out: Path) -> None:
    lines = ["# ECSE: cost, frames and equivariance error", ""]
    cost = results.get("cost")
    if cost:
        lines += [
            "Cost part measured at commit "
            f"{cost['meta'].get('commit', 'not recorded')} ({cost['meta']['date']}). "
            "Matched accuracy against metatomic's Lebedev grid: `ecse_grid.md`; "
            "cost and peak memory against N for every frame rule: "
            "`ecse_scaling.md`.",
            "",
        ]
        backbone = cost["backbone"]
        hypers = ", ".join(
            f"`{k}={v}`" for k, v in backbone.items() if k not in ("parameters",)
        )
        lines += [
            "**Cost and equivariance error**",
            "",
            *meta_lines(cost["meta"]),
            *([cost["note"], ""] if cost.get("note") else []),
            f"Backbone: a random-weight pet_mta PET ({hypers}; "
            f"{backbone['parameters']} parameters; interaction range "
            f"{cost['interaction_range']:g} Å). ECSE: `pet_mta.Symmetrized` with its "
            "default frame settings (the published frame rule: frames from the "
            "neighbour pairs within the backbone's cutoff, `spread_margin=1.0`, no "
            "pruning, no inversion: exact SO(3)); local mode with its default "
            "`low_memory` (each batch of rotated copies differentiated at once). "
            "Lebedev: metatomic's "
            "`SymmetrizedModel(pet, max_angular_momentum_target=0)`, its default "
            f"grid ({cost['rows'][0]['lebedev_rotations']} rotations); *Lebedev, "
            f"fine*: the same with `max_angular_momentum_grid={FINE_GRID}` "
            f"({cost['rows'][0]['lebedev_fine_rotations']} rotations), run only "
            "where it fits in memory. `SymmetrizedModel` averages over O(3): every "
            "grid rotation is evaluated as a proper and an improper copy, twice as "
            "many backbone evaluations as rotations.",
            "",
            *cost_table(cost),
            "",
            "- **plain, ECSE local, ECSE whole, Lebedev**: wall time of one energy + "
            "forces evaluation (forward, and backward to the positions; neighbour "
            "lists included), median over the rotated evaluations of the table "
            "below, and in brackets the ratio to the plain backbone. *not run*: the "
            "estimated cost (frames or rotations × plain time, given) is above the "
            "time limit of the run (`--max-seconds`), or the rotated copies × atoms "
            "exceed `--max-whole-atoms` (memory: with forces, the autograd graph "
            "of every copy is kept; about 0.5 MB per atom here).",
            "- **frames/atom, local**: frames of each atom's environment (after "
            "pruning, if any; none by default); local mode evaluates the backbone "
            "once per frame on the "
            "atom's cut-out receptive field (only the centre's output is kept, and "
            "PET computes only what that output needs). Mean and maximum over the "
            "atoms.",
            "- **frames, whole**: frames pooled over the whole structure; whole "
            "mode evaluates the backbone once per frame on the *whole* (rotated) "
            "structure.",
            chunk_note(cost.get("chunk", 0)),
            "",
            "Equivariance error: standard deviation of the total energy over random "
            "proper rotations of the structure, relative to its mean (float64); in "
            "brackets the number of rotations (up to `--rotations`, fewer where "
            "they would take longer than `--rotation-seconds`). ECSE is exact, so "
            "its spread is rounding noise; the plain backbone and the Lebedev "
            "average (a finite quadrature) are not exactly invariant.",
            "",
            *std_table(cost),
            "",
        ]
        lines += cost_notes(cost)
    for key in sorted(k for k in results if k.startswith("accuracy")):
        lines += accuracy_lines(results[key])
    (out / "ecse.md").write_text("\n".join(lines))


def chunk_note(chunk: int) -> str:
    if chunk > 0:
        return (
            f"- Local mode is evaluated {chunk} atoms at a time (`selected_atoms`), "
            "each part differentiated at once: the same energy and forces, without "
            "holding the autograd graphs of all frames of all atoms at once."
        )
    return (
        "- Local mode is evaluated in one call per structure, as a user makes it "
        "(its default `low_memory` keeps one batch of rotated copies' graph alive "
        "at a time; peak memory against N: `ecse_scaling.md`)."
    )


def cost_notes(cost: Dict[str, Any]) -> List[str]:
    rows = {row["structure"]: row for row in cost["rows"]}
    notes = ["Reading the results (where ECSE costs more, and why):", ""]

    def ratio(row, key) -> float:
        return row["models"].get(key, {}).get("ratio", float("nan"))

    ch4 = rows.get("CH4")
    if ch4:
        notes.append(
            f"- Molecule (CH4): whole mode is exact at {ratio(ch4, 'whole'):.3g}× "
            f"the backbone ({ch4['frames_whole']} frames, one batched call), "
            + (
                "cheaper than"
                if ratio(ch4, "whole") < ratio(ch4, "lebedev")
                else "more than"
            )
            + f" the default Lebedev average ({ratio(ch4, 'lebedev'):.3g}×, "
            f"{ch4['lebedev_rotations']} rotations, {2 * ch4['lebedev_rotations']} "
            "copies), which is not exact. Local "
            f"mode costs {ratio(ch4, 'local'):.3g}× ("
            f"{ch4['frames_local_mean']:.1f} frames per atom, each on the atom's "
            "cut-out cluster). Pruning frames (`n_prunings=1` or the published 4) "
            "makes ECSE "
            "cheaper for single points, at the price of energy conservation in "
            "MD (see the NVE benchmark)."
        )
        fine = ch4["models"].get("lebedev_fine", {})
        if "relative_std" in fine:
            notes.append(
                f"- A finer Lebedev grid ({ch4['lebedev_fine_rotations']} rotations, "
                f"{fine['ratio']:.3g}× the backbone on CH4) still leaves a relative "
                f"spread of {fine['relative_std']:.1e} over rotations: a quadrature "
                "only converges to invariance, ECSE is invariant by construction."
            )
    alloys = [r for r in cost["rows"] if r["structure"].startswith("fcc alloy")]
    local = [r for r in alloys if "ratio" in r["models"].get("local", {})]
    if len(local) >= 2:
        per_atom = ", ".join(
            f"{1000 * r['models']['local']['seconds'] / r['atoms']:.0f} ms "
            f"({r['atoms']})"
            for r in local
        )
        ratios = ", ".join(f"{ratio(r, 'local'):.0f}×" for r in local)
        lebedev = ", ".join(f"{ratio(r, 'lebedev'):.3g}×" for r in local)
        notes.append(
            "- Bulk: the local mode scales linearly, its cost per atom is flat "
            f"({per_atom}), but it costs much more than the backbone ({ratios}). "
            "Every frame of every atom needs the backbone on a rotated copy of the "
            "atom's cut-out cluster (copies batched 32 per call), so the ratio is "
            "about frames per atom × the cost of one centre's output relative to "
            "one atom's share of a full evaluation. The default Lebedev average "
            f"costs {lebedev} here, a fixed number of full evaluations: much "
            "cheaper in bulk, but only approximately invariant (table below); the "
            "grid degree and cost it needs to reach a given error are in "
            "`ecse_grid.md`."
        )
    skipped = [
        r
        for r in cost["rows"]
        if r["models"].get("whole", {}).get("skipped")
        or r["models"].get("whole", {}).get("failed")
    ]
    if skipped:
        names = ", ".join(
            f"{r['structure']} ({r['frames_whole']} frames)" for r in skipped
        )
        notes.append(
            "- Whole mode in bulk: the number of frames grows with N and each "
            "frame re-evaluates the whole structure, so the cost is O(N²), and "
            "with forces the autograd graph of every rotated copy is kept (memory "
            f"∝ frames × N). Not run for {names}: the frame count is computed "
            "(cheaply) and the time estimated as frames × plain time."
        )
    return notes + [""]


def write_plots(results: Dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        print(f"no figures (matplotlib: {error})", file=sys.stderr)
        return
    cost = results.get("cost")
    if cost:
        rows = [
            r
            for r in cost["rows"]
            if r["structure"].startswith("fcc alloy")
            and "seconds" in r["models"].get("local", {})
        ]
        if rows:
            n = np.array([r["atoms"] for r in rows])
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for key, label in (
                ("plain", "plain backbone"),
                ("local", "ECSE local"),
                ("whole", "ECSE whole"),
                ("lebedev", "Lebedev (default grid)"),
            ):
                points = [
                    (r["atoms"], 1000 * r["models"][key]["seconds"] / r["atoms"])
                    for r in rows
                    if "seconds" in r["models"].get(key, {})
                ]
                if points:
                    x, y = zip(*points)
                    axes[0].plot(x, y, "o-", label=label)
            axes[0].set_xscale("log")
            axes[0].set_yscale("log")
            axes[0].set_xlabel("atoms N (fcc alloy)")
            axes[0].set_ylabel("time per atom (ms), energy + forces")
            axes[0].set_title("cost per atom: flat = linear scaling")
            axes[0].legend()
            ratio = [r["models"]["local"]["ratio"] for r in rows]
            axes[1].plot(n, ratio, "o-", label="ECSE local / plain")
            axes[1].set_xscale("log")
            axes[1].set_xlabel("atoms N (fcc alloy)")
            axes[1].set_ylabel("cost ratio to the plain backbone")
            twin = axes[1].twinx()
            twin.plot(
                n,
                [r["frames_local_mean"] for r in rows],
                "s--",
                color="tab:gray",
                label="frames per atom (mean)",
            )
            twin.set_ylabel("frames per atom")
            axes[1].set_ylim(bottom=0)
            twin.set_ylim(0, 1.15 * max(r["frames_local_mean"] for r in rows))
            handles = axes[1].get_legend_handles_labels()
            extra = twin.get_legend_handles_labels()
            axes[1].legend(handles[0] + extra[0], handles[1] + extra[1])
            axes[1].set_title("local mode: ratio and frames vs N")
            for ax in axes:  # the measured sizes as ticks (log axes crowd them)
                ax.set_xticks(n, [str(v) for v in n])
                ax.minorticks_off()
            fig.tight_layout()
            fig.savefig(out / "ecse.png", dpi=110)
            plt.close(fig)
    for name in sorted(k for k in results if k.startswith("accuracy")):
        acc = results[name]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        ref = np.array(acc["energies_per_atom_reference"])
        fref = np.array(acc["forces_sample_reference"]).ravel()
        for key, marker in zip(acc["models"], ("o", "x", "+")):
            model = acc["models"][key]
            axes[0].plot(ref, model["energies_per_atom"], marker, label=key)
            forces = np.array(model["forces_sample"]).ravel()
            axes[1].plot(fref, forces, marker, ms=3, label=key, alpha=0.6)
        for ax, what in zip(axes, ("energy (eV/atom)", "force component (eV/Å)")):
            low = min(ax.get_xlim()[0], ax.get_ylim()[0])
            high = max(ax.get_xlim()[1], ax.get_ylim()[1])
            ax.plot([low, high], [low, high], "k-", lw=0.5)
            ax.set_xlabel(f"reference {what}")
            ax.set_ylabel(f"predicted {what}")
            ax.legend()
        axes[0].set_title(f"trained PET: plain vs ECSE ({Path(acc['test']).name})")
        fig.tight_layout()
        fig.savefig(out / f"ecse_{name}.png", dpi=110)
        plt.close(fig)


# ----------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["cost"])
    parser.add_argument(
        "--structures",
        nargs="+",
        default=["CH4", "water 192"] + [f"fcc alloy {n}" for n in ALLOY_REPEATS],
    )
    parser.add_argument("--rotations", type=int, default=100)
    parser.add_argument("--min-rotations", type=int, default=2)
    parser.add_argument("--rotation-seconds", type=float, default=30.0)
    parser.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="atoms per ECSE local-mode call (0: one call, as a user makes it; its "
        "default low_memory bounds the memory)",
    )
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument(
        "--max-whole-atoms",
        type=int,
        default=10000,
        help="whole mode and the fine Lebedev grid are not run above this number "
        "of rotated copies x atoms (memory: every copy's graph is kept for forces)",
    )
    parser.add_argument("--trained", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument(
        "--trained-description",
        default="an exported pet_mta model",
        help="for the report",
    )
    parser.add_argument("--accuracy-rotations", type=int, default=10)
    parser.add_argument(
        "--modes", nargs="+", default=["local"], help="ECSE modes (accuracy part)"
    )
    parser.add_argument(
        "--ecse-options",
        default="{}",
        help="JSON dict of Symmetrized frame settings (accuracy part)",
    )
    parser.add_argument(
        "--accuracy-key",
        default="accuracy",
        help="name of this accuracy run in ecse.json (several can be reported)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", help="a remark on the cost part, for the report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.out / "ecse.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.report_only:
        meta = {
            "command": shlex.join(["python", "bench/ecse.py", *sys.argv[1:]]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "commit": source_commit(),
        }
        args.out.mkdir(parents=True, exist_ok=True)

        def save(part: str, result: Dict[str, Any]) -> None:
            results[part] = dict(result, meta=meta)
            path.write_text(json.dumps(results, indent=1))

        if "accuracy" in args.parts and (args.trained is None or args.test is None):
            raise SystemExit("the accuracy part needs --trained and --test")
        if "cost" in args.parts:
            cost_part(args, lambda result: save("cost", result))
        if "accuracy" in args.parts:
            save(args.accuracy_key, accuracy_part(args))
    if args.note and "cost" in results:
        results["cost"]["note"] = args.note
        path.write_text(json.dumps(results, indent=1))
    write_report(results, args.out)
    write_plots(results, args.out)


if __name__ == "__main__":
    main()
