"""Data sets, metrics and options files of the accuracy benchmark (``accuracy.py``).

Every data set is one file of ``../shared/data`` and the targets trained on it; the
split into test, validation and the pool training sets are drawn from is fixed by
the seed, so two data sets reading the same file (``water`` and ``water-dipole``)
share it.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import ase.io
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# model hyper-parameters of both architectures (the names are shared)
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


# epochs between checkpoints by default: none before the end of the training
NO_CHECKPOINTS = 10**6


@dataclass(frozen=True)
class Metric:
    """One test-set error of the report.

    ``key`` names it in ``accuracy.json``; ``log_names`` are the target names that
    ``mtt train`` and ``mtt eval`` print it under (empty when the benchmark computes
    it from the predictions itself).
    """

    key: str
    label: str
    unit: str
    log_names: Tuple[str, ...] = ()


ENERGY = Metric("energy_mae_mev_per_atom", "energy MAE", "meV/atom", ("energy",))
FORCES = Metric(
    "force_mae_mev_per_angstrom",
    "force MAE",
    "meV/Å",
    ("forces", "energy_positions_gradients"),
)
# per structure and Cartesian component, from the predictions `mtt eval` writes
DIPOLE = Metric("dipole_mae_me_angstrom", "dipole MAE", "me·Å")
# what `mtt eval` prints: the same error divided by the number of atoms
DIPOLE_PER_ATOM = Metric(
    "dipole_mae_per_atom_me_angstrom",
    "dipole MAE / atoms (mtt)",
    "me·Å/atom",
    ("mtt::dipole",),
)


def energy_target(stress: bool) -> dict:
    """Energy with forces (and stress for periodic cells), in eV."""
    return {"key": "energy", "unit": "eV", "forces": True, "stress": stress}


DIPOLE_NAME = "mtt::dipole"
DIPOLE_TARGET = {
    "key": "dipole_moment",
    "type": {"cartesian": {"rank": 1}},
    # `per_atom: false` in older metatrain; one vector per structure
    "sample_kind": "system",
    "unit": "e*angstrom",
}


@dataclass(frozen=True)
class DataSet:
    """A data file and the targets trained on it."""

    name: str
    file: str
    description: str
    targets: Dict[str, dict]
    metrics: Tuple[Metric, ...]

    @property
    def path(self) -> Path:
        return DATA / self.file

    @property
    def plotted(self) -> Tuple[Metric, ...]:
        """The metrics of the plots (``mtt eval``'s per-atom dipole only in tables)."""
        return tuple(m for m in self.metrics if m is not DIPOLE_PER_ATOM)


DATASETS = {
    "hea": DataSet(
        "hea",
        "hea_emt_train.xyz",
        "periodic high-entropy alloys (EMT): energy, forces and stress in the loss",
        {"energy": energy_target(stress=True)},
        (ENERGY, FORCES),
    ),
    "ch4": DataSet(
        "ch4",
        "ch4_xtb_train.xyz",
        "random methane (GFN2-xTB), non-periodic: energy and forces in the loss",
        {"energy": energy_target(stress=False)},
        (ENERGY, FORCES),
    ),
    "water": DataSet(
        "water",
        "water_cluster_xtb_train.xyz",
        "water clusters (GFN2-xTB), non-periodic: energy and forces in the loss",
        {"energy": energy_target(stress=False)},
        (ENERGY, FORCES),
    ),
    "water-dipole": DataSet(
        "water-dipole",
        "water_cluster_xtb_train.xyz",
        "water clusters (GFN2-xTB): the dipole moment (a Cartesian vector per "
        "structure) alone in the loss",
        {DIPOLE_NAME: DIPOLE_TARGET},
        (DIPOLE, DIPOLE_PER_ATOM),
    ),
    "ch4-dipole": DataSet(
        "ch4-dipole",
        "ch4_xtb_train.xyz",
        "random methane (GFN2-xTB): the dipole moment (a Cartesian vector per "
        "structure) alone in the loss",
        {DIPOLE_NAME: DIPOLE_TARGET},
        (DIPOLE, DIPOLE_PER_ATOM),
    ),
}
DEFAULT_DATASETS = ["hea", "ch4", "water", "water-dipole"]


@functools.cache
def read(path: Path) -> list:
    """All structures of a data file (read once for data sets sharing it)."""
    return ase.io.read(path, ":")


def split(frames: list, n_test: int, n_val: int, seed: int):
    """Shuffle once: ``test``, ``validation``, and the pool training sets come from."""
    order = np.random.default_rng(seed).permutation(len(frames))
    test = [frames[i] for i in order[:n_test]]
    val = [frames[i] for i in order[n_test : n_test + n_val]]
    pool = [frames[i] for i in order[n_test + n_val :]]
    return pool, val, test


def write_splits(dataset: DataSet, sizes: List[str], args) -> Dict[str, object]:
    """Write ``test.xyz``, ``val.xyz`` and one ``train-<n>.xyz`` per size.

    The training sets are nested: the first ``n`` structures of the pool. The files
    go to one folder of ``--work`` per data file and split, shared by the data sets
    reading the same file; with ``--reuse`` existing files are kept. Returns the
    paths, training sets by size (``"all"`` resolved to the pool size).
    """
    name = f"{dataset.path.stem}-seed{args.seed}-test{args.n_test}-val{args.n_val}"
    work = args.work / "splits" / name
    frames = read(dataset.path)
    pool, val, test = split(frames, args.n_test, args.n_val, args.seed)
    work.mkdir(parents=True, exist_ok=True)
    files = {"val": work / "val.xyz", "test": work / "test.xyz", "train": {}}
    for path, subset in ((files["val"], val), (files["test"], test)):
        if not (args.reuse and path.exists()):
            ase.io.write(path, subset)
    for size in sizes:
        n = len(pool) if size == "all" else min(int(size), len(pool))
        path = work / f"train-{n}.xyz"
        if not (args.reuse and path.exists()):
            ase.io.write(path, pool[:n])
        files["train"][n] = path
    return files


def options(
    architecture: str,
    dataset: DataSet,
    files: dict,
    n_train: int,
    model: dict,
    epochs: int,
    args,
) -> dict:
    """The ``mtt train`` options: the same for both architectures except the name
    (and the model hyper-parameters overridden for one of them)."""
    targets = dataset.targets
    return {
        "seed": args.seed,
        "base_precision": 32,
        "architecture": {
            "name": architecture,
            "model": dict(model),
            "training": {
                "batch_size": args.batch_size,
                "num_epochs": epochs,
                "learning_rate": args.learning_rate,
                "warmup_fraction": 0.05,
                "num_workers": 0,
                "checkpoint_interval": args.checkpoint_interval,
            },
        },
        "training_set": _set(files["train"][n_train], targets),
        "validation_set": _set(files["val"], targets),
        "test_set": 0.0,
    }


def eval_options(dataset: DataSet, files: dict) -> dict:
    """The ``mtt eval`` options: the test split with the training targets."""
    return _set(files["test"], dataset.targets)


def _set(path: Path, targets: Dict[str, dict]) -> dict:
    return {
        "systems": {"read_from": str(path), "length_unit": "angstrom"},
        "targets": {name: dict(target) for name, target in targets.items()},
    }


def dipole_mae(test: Path, predictions: Path) -> float:
    """Dipole MAE per structure and Cartesian component (me·Å), from the reference
    ``info['dipole_moment']`` and the ``mtt::dipole`` predictions of ``mtt eval``."""
    reference = ase.io.read(test, ":")
    predicted = ase.io.read(predictions, ":")
    if len(reference) != len(predicted) or any(
        len(a) != len(b) for a, b in zip(reference, predicted)
    ):
        raise RuntimeError(f"{predictions} does not match {test} frame by frame")
    errors = [
        np.ravel(p.info[DIPOLE_NAME]) - np.ravel(r.info[DIPOLE_TARGET["key"]])
        for r, p in zip(reference, predicted)
    ]
    return 1000.0 * float(np.mean(np.abs(errors)))
