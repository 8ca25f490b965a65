"""The metatrain bridge survives real installs: a wheel and an editable install of
pet_mta into a fresh virtual environment, then ``mtt train`` with ``pet_mta``.

The fresh environment gets the other dependencies (torch, metatrain, ...) as a
plain path entry pointing to this environment's site-packages: ``.pth`` files of
that folder are *not* processed, so pet_mta (and its bridge) come only from the
install under test. Slow (builds and a subprocess training run).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytest.importorskip("metatrain", reason="metatrain is an optional dependency")

import yaml  # noqa: E402
from metatrain_helpers import TINY_MODEL, emt_frames, write_frames  # noqa: E402

ROOT = Path(__file__).parents[1]


def _sh(args, cwd, env=None):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["wheel", "editable"])
def test_fresh_environment(tmp_path, mode):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target_site = Path(
        _sh(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            cwd=tmp_path,
        ).strip()
    )
    (target_site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"])

    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    if mode == "wheel":
        # build from a pristine copy: a build/ folder left by an earlier editable
        # install must not decide what goes into the wheel
        source = tmp_path / "source"
        shutil.copytree(
            ROOT,
            source,
            ignore=shutil.ignore_patterns(
                "build", "dist", ".tox", ".venv", "*.egg-info", ".git", "outputs"
            ),
        )
        _sh(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
            + ["--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
            cwd=tmp_path,
        )
        wheel = next((tmp_path / "dist").glob("pet_mta-*.whl"))
        # --force-reinstall: the dependencies .pth also shows the outer pet_mta
        _sh(pip + ["--no-deps", "--force-reinstall", str(wheel)], cwd=tmp_path)
        assert (target_site / "pet_mta_metatrain.pth").exists()
        assert (target_site / "_pet_mta_metatrain_bridge.py").exists()
    else:
        _sh(pip + ["--no-deps", "--no-build-isolation", "-e", str(ROOT)], cwd=tmp_path)
        assert (target_site / "pet_mta_metatrain.pth").exists()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    where = _sh(
        [str(python), "-c", "import pet_mta, sys; print(pet_mta.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    if mode == "wheel":
        assert str(target_site) in where

    data = write_frames(tmp_path / "data.xyz", emt_frames(6))
    options = {
        "architecture": {
            "name": "pet_mta",
            "model": dict(TINY_MODEL),
            "training": {"batch_size": 2, "num_epochs": 1, "num_workers": 0},
        },
        "training_set": {
            "systems": {"read_from": data, "length_unit": "angstrom"},
            "targets": {"energy": {"key": "energy", "unit": "eV"}},
        },
        "validation_set": 0.3,
        "test_set": 0.0,
    }
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    _sh([str(python), "-m", "metatrain", "train", "options.yaml"], tmp_path, env)
    assert (tmp_path / "model.pt").exists()
    assert (tmp_path / "model.ckpt").exists()
