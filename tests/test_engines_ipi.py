"""The exported model in i-PI: socket (UNIX) driver and in-process ``ffdirect``.

The runs use the example inputs of ``examples/engines/ipi`` with fewer steps, a
smaller structure and a private socket name.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest
from engine_helpers import alloy, small_model
from metatomic.torch import ModelOutput
from optional_imports import require

from pet_mta import PET
from pet_mta.neighbors import systems_from_ase

require("ipi", "engines")

pytestmark = pytest.mark.engines

EXAMPLES = Path(__file__).parent.parent / "examples" / "engines" / "ipi"
N_STEPS = 30
BIN = Path(sys.executable).parent


def model_forces(model: PET, atoms: ase.Atoms) -> np.ndarray:
    systems = systems_from_ase([atoms], model, positions_requires_grad=True)
    energy = model(systems, {"energy": ModelOutput(sample_kind="system")})
    energy["energy"].block().values.sum().backward()
    return -systems[0].positions.grad.numpy()


def read_ipi_xyz(path: Path) -> np.ndarray:
    """First frame of an i-PI ``xyz`` trajectory, ``[n_atoms, 3]``."""
    lines = path.read_text().splitlines()
    n_atoms = int(lines[0])
    rows = [line.split()[1:4] for line in lines[2 : 2 + n_atoms]]
    return np.array(rows, dtype=np.float64)


def read_properties(path: Path) -> dict:
    """Columns of i-PI's ``.out`` file by name (``conserved``, ``potential``, ...)."""
    names = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            # "# column   3    --> conserved{electronvolt} : ..."
            names.append(line.split("-->")[1].split()[0].split("{")[0])
    data = np.loadtxt(path, ndmin=2)
    return {name: data[:, i] for i, name in enumerate(names)}


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture
def workdir(tmp_path, model):
    model.export().save(str(tmp_path / "model.pt"))
    ase.io.write(tmp_path / "init.xyz", alloy(), format="extxyz")
    return tmp_path


def prepare_input(workdir: Path, name: str, address: str = "") -> Path:
    text = (EXAMPLES / name).read_text()
    text = text.replace(
        "<total_steps>200</total_steps>", f"<total_steps>{N_STEPS}</total_steps>"
    )
    text = text.replace("stride='10'", "stride='1'")
    # the test structure is far from equilibrium: keep the time step small
    text = text.replace(
        "<timestep units='femtosecond'>2.0", "<timestep units='femtosecond'>1.0"
    )
    if address:
        text = text.replace(
            "<address>pet-mta</address>", f"<address>{address}</address>"
        )
    path = workdir / name
    path.write_text(text)
    return path


def environment() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def check_run(workdir: Path, prefix: str, model: PET, max_drift: float):
    """Conserved quantity and first-frame forces of a finished i-PI run."""
    properties = read_properties(workdir / f"{prefix}.out")
    assert len(properties["step"]) == N_STEPS + 1
    n_atoms = len(alloy())
    conserved = properties["conserved"]
    potential = properties["potential"]
    # the dynamics moved energy around: the conservation check is not vacuous
    assert np.ptp(potential) / n_atoms > 1e-3
    assert np.ptp(conserved) / n_atoms < max_drift

    initial = ase.io.read(workdir / "init.xyz")
    ipi_positions = read_ipi_xyz(workdir / f"{prefix}.pos_0.xyz")
    np.testing.assert_allclose(ipi_positions, initial.positions, atol=1e-4)
    ipi_forces = read_ipi_xyz(workdir / f"{prefix}.for_0.xyz")
    ours = model_forces(model, initial)
    assert np.abs(ours).max() > 1e-2
    # i-PI writes 6 significant digits
    np.testing.assert_allclose(ipi_forces, ours, rtol=1e-4, atol=1e-5)


def test_ipi_socket_nvt(workdir, model):
    address = f"pet-mta-test-{uuid.uuid4().hex[:8]}"
    socket = Path(f"/tmp/ipi_{address}")  # i-PI's default sockets_prefix
    prepare_input(workdir, "input.xml", address)
    with open(workdir / "ipi.log", "w") as log:
        server = subprocess.Popen(
            [str(BIN / "i-pi"), "input.xml"],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
    try:
        deadline = time.time() + 60
        while not socket.exists():
            assert server.poll() is None, (workdir / "ipi.log").read_text()
            assert time.time() < deadline, "i-PI did not open its socket"
            time.sleep(0.1)
        driver = subprocess.run(
            [
                str(BIN / "i-pi-driver-py"),
                "-u",
                "-a",
                address,
                "-m",
                "metatomic",
                "-o",
                "template=init.xyz,model=model.pt,device=cpu",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            env=environment(),
        )
        assert server.wait(timeout=120) == 0, (workdir / "ipi.log").read_text()
        assert driver.returncode == 0, driver.stderr[-2000:]
    finally:
        if server.poll() is None:
            server.kill()
        if socket.exists():
            socket.unlink()
    # NVT (SVR thermostat): the conserved quantity includes the bath energy
    check_run(workdir, "md", model, max_drift=5e-5)


def test_ipi_direct_nve(workdir, model):
    prepare_input(workdir, "input-direct.xml")
    result = subprocess.run(
        [str(BIN / "i-pi"), "input-direct.xml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment(),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    check_run(workdir, "md-direct", model, max_drift=5e-5)


def test_example_files_are_consistent():
    """The example's structure is readable; run.sh and the inputs agree."""
    atoms = ase.io.read(EXAMPLES / "init.xyz")
    assert len(atoms) == 108 and set(atoms.numbers) == {29}
    script = (EXAMPLES / "run.sh").read_text()
    socket_input = (EXAMPLES / "input.xml").read_text()
    direct_input = (EXAMPLES / "input-direct.xml").read_text()
    assert "<address>pet-mta</address>" in socket_input
    assert "-a pet-mta" in script and "ipi_pet-mta" in script
    assert "model: model.pt" in direct_input
    assert "s|model: model.pt|" in script
    for text in (socket_input, direct_input):
        assert "<total_steps>200</total_steps>" in text
        assert "<file mode='ase'>init.xyz</file>" in text
