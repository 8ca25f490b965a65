"""Small EMT datasets and tiny hypers shared by the ``test_metatrain_*`` files."""

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

TINY_MODEL = {
    "cutoff": 3.5,
    "cutoff_width": 0.5,
    "d_pet": 8,
    "d_head": 8,
    "d_node": 8,
    "d_feedforward": 8,
    "num_heads": 2,
    "num_attention_layers": 1,
    "num_gnn_layers": 1,
}


def emt_frames(
    n: int,
    seed: int = 0,
    dipole: bool = False,
    missing_forces_every: Optional[int] = None,
    symbols: Sequence[str] = ("Cu", "Ni"),
):
    """``n`` rattled 8-atom fcc cells of ``symbols`` (Cu/Ni) labelled with EMT.

    Energy (``info["energy"]``), forces (``arrays["forces"]``) and stress
    (``info["stress"]``, 3x3) are stored as plain keys. ``dipole=True`` adds a
    made-up per-system vector (``info["dipole_moment"]``, sum of type-weighted positions
    relative to the centre) and per-atom ``arrays["partial_charge"]``. With
    ``missing_forces_every=k``, every k-th structure has NaN forces and stress.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.set_chemical_symbols(rng.choice(list(symbols), size=len(atoms)))
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=False)
        atoms.calc = None
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = forces
        atoms.info["stress"] = stress
        if missing_forces_every and i % missing_forces_every == 1:
            atoms.arrays["forces"] = np.full_like(forces, np.nan)
            atoms.info["stress"] = np.full_like(stress, np.nan)
        if dipole:
            charges = np.where(atoms.numbers == 29, 0.3, -0.3)
            centred = atoms.positions - atoms.positions.mean(0)
            atoms.info["dipole_moment"] = (charges[:, None] * centred).sum(0)
            atoms.arrays["partial_charge"] = charges + 0.05 * rng.normal(
                size=len(atoms)
            )
        frames.append(atoms)
    return frames


def run_mtt(workdir: Path, *args: str, timeout: int = 600) -> str:
    """Run ``mtt ARGS`` (the one next to this Python) in ``workdir`` with one
    thread; assert it succeeded within ``timeout`` seconds and return its output."""
    mtt = Path(sys.executable).with_name("mtt")
    result = subprocess.run(
        [str(mtt), *args],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log


def mtt_train(options: Dict[str, Any], workdir: Path) -> str:
    """Write ``options`` to ``workdir/options.yaml`` and ``mtt train`` them into
    ``model.pt``; returns the training output."""
    import yaml

    (workdir / "options.yaml").write_text(yaml.safe_dump(options))
    return run_mtt(workdir, "train", "options.yaml", "-o", "model.pt")


def write_frames(path: Path, frames) -> str:
    ase.io.write(str(path), frames, format="extxyz")
    return str(path)


def energy_target(path: str, forces: bool = True, stress: bool = True) -> Dict:
    """Target section of an options file for ``energy`` (+ forces, stress)."""
    return {
        "energy": {
            "read_from": path,
            "key": "energy",
            "unit": "eV",
            "forces": {"read_from": path, "key": "forces"} if forces else False,
            "stress": {"read_from": path, "key": "stress"} if stress else False,
        }
    }


def load_dataset(path: str, targets: Dict[str, Any]):
    """(dataset, target infos) through metatrain's own option expansion/readers."""
    from metatrain.utils.data import get_dataset
    from metatrain.utils.omegaconf import expand_dataset_config
    from omegaconf import OmegaConf

    conf = expand_dataset_config(
        OmegaConf.create(
            {
                "systems": {"read_from": path, "length_unit": "angstrom"},
                "targets": copy.deepcopy(targets),
            }
        )
    )
    dataset, infos, _ = get_dataset(conf[0])
    return dataset, infos


def dataset_info(dataset, infos):
    """metatrain's ``DatasetInfo`` of a :func:`load_dataset` result (Å, the atomic
    types found in ``dataset``)."""
    from metatrain.utils.data import DatasetInfo, get_atomic_types

    return DatasetInfo(
        length_unit="angstrom", atomic_types=get_atomic_types(dataset), targets=infos
    )


def trainer_hypers(**overrides) -> Dict[str, Any]:
    """Default pet_mta trainer hypers with a fast setup and a default loss."""
    from metatrain.utils.architectures import get_default_hypers

    hypers = copy.deepcopy(get_default_hypers("pet_mta")["training"])
    hypers.update(
        batch_size=4,
        num_epochs=2,
        num_workers=0,
        learning_rate=1e-3,
        log_interval=1,
        checkpoint_interval=1,
    )
    hypers.update(overrides)
    return hypers


def train_model(
    model, dataset, checkpoint_dir, trainer=None, val=None, seed=0, **hypers
):
    """Train ``model`` in float64 on CPU on ``dataset`` (or a list of training sets;
    validation: ``val``, by default the first training set) with
    :func:`trainer_hypers` ``(**hypers)`` or ``trainer``, after
    ``torch.manual_seed(seed)`` (``None``: the caller's random state); returns the
    trainer."""
    import torch

    from pet_mta.metatrain import Trainer

    datasets = dataset if isinstance(dataset, list) else [dataset]
    if seed is not None:
        torch.manual_seed(seed)
    trainer = trainer if trainer is not None else Trainer(trainer_hypers(**hypers))
    trainer.train(
        model=model,
        dtype=torch.float64,
        devices=[torch.device("cpu")],
        train_datasets=datasets,
        val_datasets=[val if val is not None else datasets[0]],
        checkpoint_dir=str(checkpoint_dir),
    )
    return trainer


def dataset_and_model(directory: Path, frames, targets, **model_overrides):
    """Write ``frames`` to ``directory/data.xyz`` and load them with ``targets``
    (an options section, or a function of the file path returning one); returns
    the dataset and a fresh :class:`PETModel` with :func:`model_hypers`."""
    from pet_mta.metatrain import PETModel

    path = write_frames(directory / "data.xyz", frames)
    targets = targets(path) if callable(targets) else targets
    dataset, infos = load_dataset(path, targets)
    info = dataset_info(dataset, infos)
    return dataset, PETModel(model_hypers(**model_overrides), info)


def model_hypers(**overrides) -> Dict[str, Any]:
    from metatrain.utils.architectures import get_default_hypers

    hypers = copy.deepcopy(get_default_hypers("pet_mta")["model"])
    hypers.update(TINY_MODEL)
    hypers.update(overrides)
    return hypers


def reference_structures():
    """Three small fixed H/C/N/O structures (the elements of the checkpoints in
    ``tests/checkpoints``): two molecules and a periodic triclinic cell, as
    ``{"numbers", "positions", "cell", "pbc"}`` dicts of plain lists."""
    import ase.build

    acetamide = ase.build.molecule("CH3CONH2")
    acetamide.rattle(0.05, seed=1)
    ethanol = ase.build.molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=2)
    crystal = ase.build.molecule("CH3CONH2")
    crystal.set_cell([[5.0, 0.0, 0.0], [0.4, 5.2, 0.0], [-0.3, 0.5, 4.8]])
    crystal.center()
    crystal.pbc = True
    crystal.rattle(0.05, seed=3)
    return [
        {
            "numbers": atoms.numbers.tolist(),
            "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(),
            "pbc": atoms.pbc.tolist(),
        }
        for atoms in (acetamide, ethanol, crystal)
    ]


def checkpoint_predictions(model, structures):
    """Energy, forces and (periodic structures) stress of a metatrain model.

    The model runs in float64. Only metatomic, metatrain's neighbour lists and the
    metatrain model interface (``requested_neighbor_lists``, ``forward``) are used,
    so that the code of any pet_mta version evaluates the same way: this is how
    ``tests/checkpoints/reference_outputs.json`` was computed, with the code that
    wrote each checkpoint (``tests/checkpoints/make_reference_outputs.py``).

    :return: one ``{"energy", "forces", "stress"}`` dict per structure (eV, eV/Å,
        eV/Å³; ``stress`` is ``None`` without a cell)
    """
    import torch
    from metatomic.torch import ModelOutput, System
    from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists

    model = model.to(torch.float64).eval()
    results = []
    for structure in structures:
        positions = torch.tensor(structure["positions"], dtype=torch.float64)
        positions.requires_grad_(True)
        cell = torch.tensor(structure["cell"], dtype=torch.float64)
        pbc = torch.tensor(structure["pbc"])
        strain = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
        deform = torch.eye(3, dtype=torch.float64) + strain
        system = System(
            types=torch.tensor(structure["numbers"], dtype=torch.int32),
            positions=positions @ deform,
            cell=cell @ deform,
            pbc=pbc,
        )
        system = get_system_with_neighbor_lists(
            system, model.requested_neighbor_lists()
        )
        outputs = {"energy": ModelOutput(unit="eV", sample_kind="system")}
        energy = model([system], outputs)["energy"].block().values.sum()
        forces, virial = torch.autograd.grad(energy, [positions, strain])
        periodic = bool(pbc.all())
        volume = abs(float(torch.det(cell))) if periodic else 0.0
        results.append(
            {
                "energy": float(energy.detach()),
                "forces": (-forces).tolist(),
                "stress": (virial / volume).tolist() if periodic else None,
            }
        )
    return results


def train_in_process(data: str, output: str, batch_size: int, port: int) -> None:
    """Train a tiny model on ``data`` (energies, forces, stress) for four epochs,
    without the random rotations, and save its state dicts before and after
    training to ``output`` (``{"initial": ..., "trained": ...}``).

    Run by ``test_metatrain_ddp.py`` in fresh processes: alone, and as the tasks of
    a two-process distributed run (``SLURM_*`` variables set by the caller, as
    ``mtt train`` under SLURM); only the first task writes ``output``. The model
    starts from the same seeded initialisation in every process.
    """
    import logging
    import os
    import tempfile

    import torch
    from metatrain.utils.augmentation import O3Augmenter
    from metatrain.utils.data import DatasetInfo

    from pet_mta.metatrain import PETModel, Trainer

    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def no_rotation(self, systems, targets, extra_data=None):
        return systems, targets, extra_data if extra_data is not None else {}

    # drawn per process, so they would differ between the two runs
    O3Augmenter.apply_random_augmentations = no_rotation

    dataset, infos = load_dataset(data, energy_target(data))
    torch.manual_seed(0)
    model = PETModel(model_hypers(), DatasetInfo("angstrom", [28, 29], infos))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(
        trainer_hypers(
            num_epochs=4,
            batch_size=batch_size,
            learning_rate=1e-2,
            warmup_fraction=0.0,
            checkpoint_interval=100,
            distributed_port=port,
        )
    )
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer.train(
            model=model,
            dtype=torch.float64,
            devices=[torch.device("cpu")],
            train_datasets=[dataset],
            val_datasets=[dataset],
            checkpoint_dir=checkpoints,
        )
    if os.environ.get("SLURM_PROCID", "0") == "0":
        torch.save({"initial": initial, "trained": model.state_dict()}, output)
