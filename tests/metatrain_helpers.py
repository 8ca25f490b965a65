"""Small EMT datasets and tiny hypers shared by the ``test_metatrain_*`` files."""

import copy
from pathlib import Path
from typing import Any, Dict, Optional

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
):
    """``n`` rattled 8-atom fcc Cu/Ni cells labelled with EMT.

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
        atoms.set_chemical_symbols(rng.choice(["Cu", "Ni"], size=len(atoms)))
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


def model_hypers(**overrides) -> Dict[str, Any]:
    from metatrain.utils.architectures import get_default_hypers

    hypers = copy.deepcopy(get_default_hypers("pet_mta")["model"])
    hypers.update(TINY_MODEL)
    hypers.update(overrides)
    return hypers
