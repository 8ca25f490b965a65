"""metatrain finds pet_mta after real installs: a wheel and an editable install of
pet_mta into a fresh virtual environment, then metatrain's own discovery helpers
(metatrain_discovery.py), ``mtt train`` with ``name: pet_mta``, and an uninstall.

Installing pet_mta puts its adapter into metatrain's package folder, so the fresh
environment gets its own metatrain (installed there with pip, without
dependencies). The other dependencies (torch, metatensor, omegaconf, ...) come from
this environment's site-packages through a plain path entry: ``.pth`` files of that
folder are *not* processed, so pet_mta comes only from the install under test.
Slow (builds, a package download on the first run, a subprocess training run).
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")
# builds pet_mta without build isolation
require("hatchling", "test")

import yaml  # noqa: E402
from metatrain_helpers import TINY_MODEL, emt_frames, write_frames  # noqa: E402

ROOT = Path(__file__).parents[1]
TESTS = Path(__file__).parent
ADAPTER = ("metatrain", "pet_mta")


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

    # --force-reinstall: the dependencies path entry also shows this environment's
    # metatrain (whose folder holds *its* pet_mta adapter) and pet_mta
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    pip += ["--no-deps", "--force-reinstall"]
    metatrain_version = importlib.metadata.version("metatrain")
    _sh(pip + [f"metatrain=={metatrain_version}"], cwd=tmp_path)

    if mode == "wheel":
        # build from a pristine copy: nothing left in the checkout by an earlier
        # build may decide what goes into the wheel
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
        _sh(pip + [str(wheel)], cwd=tmp_path)
    else:
        _sh(pip + ["--no-build-isolation", "-e", str(ROOT)], cwd=tmp_path)

    # real files in metatrain's folder, nothing run at interpreter start
    adapter = target_site.joinpath(*ADAPTER)
    assert (adapter / "__init__.py").is_file()
    assert (adapter / "documentation.py").is_file()
    assert not (target_site / "pet_mta_metatrain.pth").exists()
    pth_files = sorted(p.name for p in target_site.glob("*.pth"))
    if mode == "wheel":
        assert pth_files == ["dependencies.pth"]
    else:
        assert pth_files == ["_pet_mta.pth", "dependencies.pth"]
        # a path entry, not an import hook
        assert (target_site / "_pet_mta.pth").read_text().strip() == str(ROOT)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    where = _sh(
        [str(python), "-c", "import pet_mta; print(pet_mta.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    expected = target_site if mode == "wheel" else ROOT
    assert Path(where.strip()).is_relative_to(expected), where

    _sh(
        [str(python), str(TESTS / "metatrain_discovery.py"), str(target_site)],
        cwd=tmp_path,
        env=env,
    )

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

    # uninstalling pet_mta takes its adapter out of metatrain's folder
    _sh(
        [sys.executable, "-m", "pip", "--python", str(python), "uninstall", "-y"]
        + ["pet-mta"],
        cwd=tmp_path,
    )
    assert not adapter.exists()
    code = (
        "from metatrain.utils.architectures import find_all_architectures\n"
        "assert 'pet_mta' not in find_all_architectures()\n"
    )
    _sh([str(python), "-c", code], cwd=tmp_path, env=env)
