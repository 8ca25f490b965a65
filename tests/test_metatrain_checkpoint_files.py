"""Checkpoints are written whole or not at all (``mtt train --restart auto`` takes
the newest ``.ckpt`` file, so a truncated one must never exist)."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import torch  # noqa: E402
from metatrain.utils.data import DatasetInfo  # noqa: E402
from metatrain.utils.data.target_info import get_energy_target_info  # noqa: E402
from metatrain_helpers import model_hypers, trainer_hypers  # noqa: E402

from pet_mta.metatrain import PETModel, Trainer  # noqa: E402


def _model():
    target = get_energy_target_info("energy", {"unit": "eV"})
    info = DatasetInfo(
        length_unit="angstrom", atomic_types=[28, 29], targets={"energy": target}
    )
    return PETModel(model_hypers(), info)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    trainer = Trainer(trainer_hypers())
    path = tmp_path / "model_3.ckpt"
    trainer.save_checkpoint(model, path)
    good = path.read_bytes()
    assert torch.load(path, weights_only=False)["architecture_name"] == "pet_mta"

    original_save = torch.save

    def crash_half_way(obj, file, *args, **kwargs):
        original_save(obj, file, *args, **kwargs)
        with open(file, "r+b") as handle:
            handle.truncate(100)  # a partial file, as after SIGKILL or a full disk
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(model, path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_3.ckpt"]


def test_restart_command_skips_a_truncated_newest_checkpoint(tmp_path, capsys):
    import os

    from pet_mta.cli import main

    run = tmp_path / "outputs" / "2026-01-01" / "10-00-00"
    run.mkdir(parents=True)
    trainer = Trainer(trainer_hypers())
    model = _model()
    good, broken = run / "model_1.ckpt", run / "model_2.ckpt"
    trainer.save_checkpoint(model, good)
    trainer.save_checkpoint(model, broken)
    with open(broken, "r+b") as handle:
        handle.truncate(200)
    os.utime(good, (1e9, 1e9))  # the broken one is the newest

    assert main(["restart", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(good)
    assert f"skipped '{broken}'" in err
    assert "restarting from the newest one that loads" in err

    good.unlink()
    assert main(["restart", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == f"pet-mta restart: error: no pet_mta checkpoint in '{tmp_path}' loads"
    )
