"""The ``pet-mta`` sub-commands doing their job: ``md`` (and its ``--max-drift``
exit status), ``errors`` (numbers checked by hand) and ``symmetrize`` with the local
mode, an auxiliary model, ``--low-memory`` and frame flags reaching the saved
model."""

import re

import ase.io
import numpy as np
import pytest
from ase.calculators.emt import EMT
from conftest import tiny_pet, triclinic_alloy
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator
from scipy.spatial.transform import Rotation

from pet_mta.cli import main

TYPES = (13, 29)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("commands")
    paths = {
        "model": str(root / "model.pt"),
        "auxiliary": str(root / "auxiliary.pt"),
        "data": str(root / "data.xyz"),
        "root": str(root),
    }
    tiny_pet(TYPES).export().save(paths["model"])
    tiny_pet(TYPES, seed=3, edge_embedding="distance").export().save(paths["auxiliary"])
    frames = []
    for seed in (1, 2, 3):
        atoms = triclinic_alloy(seed=seed)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    ase.io.write(paths["data"], frames)
    return paths


def test_md_reports_the_drift_and_max_drift_sets_the_exit_status(files, capsys):
    arguments = ["md", files["model"], files["data"], "--steps", "4"]
    assert main(arguments + ["--timestep", "0.5"]) == 0
    out = capsys.readouterr().out
    drift = float(re.search(r"energy drift: ([\d.eE+-]+) meV/atom", out).group(1))
    assert 0 <= drift < 1.0  # a short, stable run of a smooth model
    assert main(arguments + ["--timestep", "0.5", "--max-drift", "1e6"]) == 0
    capsys.readouterr()
    assert main(arguments + ["--timestep", "0.5", "--max-drift", "0"]) == 1
    assert "drift above the allowed 0.0 meV/atom" in capsys.readouterr().out


def test_errors_prints_the_energy_mae_per_atom(files, capsys):
    assert main(["errors", files["model"], files["data"]]) == 0
    out = capsys.readouterr().out
    assert "3 structures" in out
    calculator = MetatomicCalculator(files["model"])
    by_hand = []
    for atoms in ase.io.read(files["data"], ":"):
        reference = atoms.get_potential_energy()
        atoms.calc = calculator
        by_hand.append(abs(atoms.get_potential_energy() - reference) / len(atoms))
    line = next(line for line in out.splitlines() if "energy" in line)
    printed = float(re.search(r"MAE\s+([\d.eE+-]+)", line).group(1))
    assert printed == pytest.approx(1000 * np.mean(by_hand), abs=1e-3)  # 3 decimals


def test_symmetrize_local_mode_with_flags(files, capsys):
    output = files["root"] + "/local.pt"
    arguments = [
        "symmetrize",
        files["model"],
        "-o",
        output,
        "--mode",
        "local",
        "--auxiliary",
        files["auxiliary"],
        "--low-memory",
        "--batch-size",
        "7",
        "--beta",
        "4.0",
        "--n-prunings",
        "1",
    ]
    assert main(arguments) == 0
    assert "saved ECSE-symmetrized (local mode) model" in capsys.readouterr().out
    module = load_atomistic_model(output).module
    assert module.mode == "local" and module.low_memory == "always"
    assert module.batch_size == 7
    assert module.hypers.beta == 4.0 and module.hypers.n_prunings == 1

    atoms = ase.io.read(files["data"], "0")
    atoms.calc = MetatomicCalculator(output)
    energy = atoms.get_potential_energy()
    rotation = Rotation.random(random_state=5).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    rotated.calc = MetatomicCalculator(output)
    assert rotated.get_potential_energy() == pytest.approx(energy, abs=1e-9)
