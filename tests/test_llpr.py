"""metatrain's LLPR wrapper on a pet_mta checkpoint: uncertainties that mean something.

``mtt train`` trains a small pet_mta model on EMT data; a second ``mtt train`` with
``architecture: {name: llpr, training: {model_checkpoint: model.ckpt}}`` turns the
checkpoint into a model with last-layer uncertainties (it reads our
``mtt::aux::energy_last_layer_features``). On held-out structures, some further from
the training distribution, the predicted ``energy_uncertainty`` must rank the
actual errors (Spearman correlation).
"""

from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model
from optional_imports import require

from pet_mta.neighbors import systems_from_ase

require("metatrain.utils.architectures", "train")

from metatrain_helpers import run_mtt  # noqa: E402

pytestmark = pytest.mark.slow

PET_OPTIONS = """
seed: 0
architecture:
  name: pet_mta
  model:
    cutoff: 4.0
    d_pet: 16
    d_head: 16
    d_node: 16
    d_feedforward: 32
    num_heads: 2
    num_attention_layers: 1
    num_gnn_layers: 1
  training:
    batch_size: 8
    num_epochs: 30
    learning_rate: 3.0e-3
    log_interval: 10
    checkpoint_interval: 1000
    num_workers: 0
training_set:
  systems: {read_from: train.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: {key: forces}, stress: false}
validation_set:
  systems: {read_from: validation.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: {key: forces}, stress: false}
test_set: 0.0
"""

LLPR_OPTIONS = """
seed: 0
architecture:
  name: llpr
  training:
    model_checkpoint: model.ckpt
    batch_size: 8
    num_workers: 0
training_set:
  systems: {read_from: train.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: false, stress: false}
validation_set:
  systems: {read_from: validation.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: false, stress: false}
test_set: 0.0
"""


def emt_structures(n: int, rattle: tuple, seed: int) -> list:
    """``n`` 8-atom Cu/Ni/Al fcc cells, strained and rattled, EMT-labelled.

    :param rattle: range of the Gaussian rattle amplitude, in angstrom
    """
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.numbers = rng.choice([13, 28, 29], size=len(atoms))
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        amplitude = rng.uniform(*rattle)
        atoms.positions += rng.normal(0.0, amplitude, atoms.positions.shape)
        atoms.calc = EMT()
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        atoms.calc = None
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = forces
        frames.append(atoms)
    return frames


def train(options: str, workdir: Path, name: str) -> None:
    """``mtt train`` the YAML text ``options`` into ``workdir/{name}.pt``."""
    (workdir / f"{name}.yaml").write_text(options)
    run_mtt(workdir, "train", f"{name}.yaml", "-o", f"{name}.pt", timeout=1200)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rank_x = np.argsort(np.argsort(x))
    rank_y = np.argsort(np.argsort(y))
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def test_llpr_uncertainty_tracks_the_error(tmp_path):
    ase.io.write(tmp_path / "train.xyz", emt_structures(160, (0.02, 0.12), 0))
    ase.io.write(tmp_path / "validation.xyz", emt_structures(40, (0.02, 0.12), 1))
    # held out: the training range and beyond it
    test = emt_structures(60, (0.02, 0.30), 2)

    train(PET_OPTIONS, tmp_path, "model")
    assert (tmp_path / "model.ckpt").exists()
    train(LLPR_OPTIONS, tmp_path, "llpr")

    model = load_atomistic_model(str(tmp_path / "llpr.pt"))
    assert "energy_uncertainty" in model.capabilities().outputs
    systems = systems_from_ase(test, model, dtype=torch.float32)
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={
            "energy": ModelOutput(sample_kind="system"),
            "energy_uncertainty": ModelOutput(sample_kind="system"),
        },
    )
    results = model(systems, options, check_consistency=True)
    predicted = results["energy"].block().values[:, 0].detach().numpy()
    uncertainty = results["energy_uncertainty"].block().values[:, 0].detach().numpy()
    reference = np.array([atoms.info["energy"] for atoms in test])
    error = np.abs(predicted - reference)

    assert np.all(uncertainty > 0)
    correlation = spearman(uncertainty, error)
    print(f"LLPR: Spearman(uncertainty, |error|) = {correlation:.3f} on {len(test)}")
    assert correlation > 0.5

    # per-atom uncertainties too (what metatomic's ASE calculator asks for)
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"energy_uncertainty": ModelOutput(sample_kind="atom")},
    )
    atomic = model(systems[:2], options, check_consistency=True)["energy_uncertainty"]
    assert atomic.block().values.shape == (16, 1)
    assert torch.all(atomic.block().values > 0)
