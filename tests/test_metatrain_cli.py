"""``mtt train`` / ``mtt export`` / ``mtt eval`` with ``name: pet_mta``, metatrain's
discovery of the installed adapter, and compatibility with options files written for
metatrain's ``pet``."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import metatrain  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from metatrain.utils.architectures import (  # noqa: E402
    check_architecture_options,
    get_default_hypers,
    write_hypers_yaml,
)
from metatrain_helpers import TINY_MODEL, emt_frames, write_frames  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

METATRAIN_TESTS = Path(metatrain.__file__).parent / "llpr" / "tests"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TESTS = Path(__file__).parent


def run(args, cwd, timeout=600):
    """Run a command, fail the test with its output if it fails."""
    result = subprocess.run(
        args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_metatrain_finds_pet_mta_through_its_own_discovery():
    """The installed adapter ``metatrain/pet_mta/`` is a real folder of metatrain's
    package: every helper that walks the architectures sees pet_mta, whatever was
    imported first (checks in metatrain_discovery.py, shared with the fresh-install
    test)."""
    run([sys.executable, str(TESTS / "metatrain_discovery.py")], cwd=".")


def test_core_imports_without_metatrain():
    code = (
        "import sys\n"
        "sys.modules['metatrain'] = None  # metatrain not installed\n"
        "import pet_mta\n"
        "model = pet_mta.PET(atomic_types=[1, 8], d_pet=8, d_node=8, d_head=8,\n"
        "    d_feedforward=8, num_heads=2)\n"
        "assert 'pet_mta.metatrain' not in sys.modules\n"
    )
    run([sys.executable, "-c", code], cwd=".")


def test_defaults_are_those_of_pet():
    """Every hyper-parameter of ``pet`` with the same default; pet_mta adds
    ``central_stream``, ``edge_embedding``, ``edge_stream`` and ``radial_basis`` to
    the model, ``ema_decay`` and ``refit_baseline`` to the training."""
    ours = get_default_hypers("pet_mta")
    theirs = get_default_hypers("pet")
    for section, extra in [
        ("model", ["central_stream", "edge_embedding", "edge_stream", "radial_basis"]),
        ("training", ["ema_decay", "refit_baseline"]),
    ]:
        assert {k: ours[section][k] for k in theirs[section]} == theirs[section]
        assert sorted(set(ours[section]) - set(theirs[section])) == extra


@pytest.mark.parametrize("name", ["options-pet.yaml", "options-pet-ft.yaml", "all"])
def test_pet_options_files_are_accepted(tmp_path, name):
    """Options files written for ``pet`` validate unchanged for ``pet_mta``."""
    if name == "all":
        # every hyper-parameter of metatrain's pet, as `mtt` writes them
        write_hypers_yaml("pet", tmp_path / "pet.yaml")
        options = yaml.safe_load((tmp_path / "pet.yaml").read_text())
    else:
        options = yaml.safe_load((METATRAIN_TESTS / name).read_text())
    architecture = copy.deepcopy(options["architecture"])
    assert architecture["name"] == "pet"
    architecture["name"] = "pet_mta"
    # what `mtt train` does: defaults of the architecture, then the user's values
    merged = OmegaConf.merge(get_default_hypers("pet_mta"), architecture)
    check_architecture_options(
        name="pet_mta", options=OmegaConf.to_container(merged, resolve=True)
    )


def _options(data: str, epochs: int) -> dict:
    return {
        "seed": 0,
        "architecture": {
            "name": "pet_mta",
            "model": dict(TINY_MODEL),
            "training": {
                "batch_size": 2,
                "num_epochs": epochs,
                "num_workers": 0,
                "checkpoint_interval": 1,
                "learning_rate": 1e-3,
            },
        },
        "training_set": {
            "systems": {"read_from": data, "length_unit": "angstrom"},
            "targets": {
                "energy": {
                    "key": "energy",
                    "unit": "eV",
                    "forces": {"key": "forces"},
                    "stress": {"key": "stress"},
                }
            },
        },
        "validation_set": 0.25,
        "test_set": 0.0,
    }


def test_mtt_train_export_eval_restart(tmp_path):
    data = write_frames(tmp_path / "data.xyz", emt_frames(8))
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(_options(data, 2)))

    log = run(["mtt", "train", "options.yaml", "-o", "model.pt"], cwd=tmp_path)
    assert (tmp_path / "model.pt").exists()
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_mta"
    assert checkpoint["epoch"] == 1
    assert "validation forces MAE" in log

    run(["mtt", "export", "model.ckpt", "-o", "exported.pt"], cwd=tmp_path)
    assert (tmp_path / "exported.pt").exists()

    eval_options = {
        "systems": {"read_from": data, "length_unit": "angstrom"},
        "targets": {"energy": {"key": "energy", "unit": "eV"}},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(eval_options))
    log = run(
        ["mtt", "eval", "exported.pt", "eval.yaml", "-o", "predicted.xyz"],
        cwd=tmp_path,
    )
    assert "energy RMSE" in log
    assert (tmp_path / "predicted.xyz").exists()

    # continue the same run for one more epoch
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(_options(data, 3)))
    log = run(
        ["mtt", "train", "options.yaml", "--restart", "model.ckpt", "-o", "more.pt"],
        cwd=tmp_path,
    )
    assert "training epochs 2 to 2" in log
    checkpoint = torch.load(tmp_path / "more.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 2


@pytest.mark.slow
def test_real_pet_options_file_trains(tmp_path):
    """metatrain's own ``options-pet.yaml`` (QM9 energies, default PET sizes)
    trains after renaming the architecture."""
    options = yaml.safe_load((METATRAIN_TESTS / "options-pet.yaml").read_text())
    options["architecture"]["name"] = "pet_mta"
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    (tmp_path / "qm9_reduced_100.xyz").write_bytes(
        (METATRAIN_TESTS / "qm9_reduced_100.xyz").read_bytes()
    )
    run(["mtt", "train", "options.yaml"], cwd=tmp_path, timeout=1800)
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_mta"
    assert checkpoint["model_data"]["model_hypers"]["d_pet"] == 128


@pytest.mark.slow
def test_distributed_training_two_cpu_processes(tmp_path):
    """metatrain's distributed mode (SLURM tasks) with two gloo CPU processes."""
    data = write_frames(tmp_path / "data.xyz", emt_frames(8))
    options = _options(data, 2)
    options["device"] = "cpu"
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    processes = []
    for rank in range(2):
        env = {
            **ENV,
            "SLURM_JOB_ID": "1",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NTASKS": "2",
            "SLURM_JOB_NODELIST": "localhost",
        }
        processes.append(
            subprocess.Popen(
                ["mtt", "train", "options.yaml", "-o", "model.pt"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=900)[0] for p in processes]
    for p, log in zip(processes, logs):
        assert p.returncode == 0, log[-3000:]
    assert "training on 2 processes" in logs[0]
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_mta"
    assert checkpoint["epoch"] == 1
