"""i-PI multiple time stepping with direct forces (``examples/engines/ipi-mts``).

A small model is trained on EMT Cu (energy, forces and direct forces), then i-PI runs
the example input: direct forces in the inner steps, the conservative correction in
the outer one. The conserved quantity must stay bounded, unlike a run driven by the
direct forces alone.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from optional_imports import require

require("ipi", "engines")

pytestmark = [pytest.mark.engines, pytest.mark.slow]

EXAMPLE = Path(__file__).parent.parent / "examples" / "engines" / "ipi-mts"
BIN = Path(sys.executable).parent
N_ATOMS = 32


def _train_example_model():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from train_mts_model import train
    finally:
        sys.path.remove(str(EXAMPLE))
    small = dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32, cutoff=4.0)
    return train(n_frames=8, n_steps=150, **small)


def _run_ipi(workdir: Path, text: str, name: str) -> dict:
    (workdir / name).write_text(text)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [str(BIN / "i-pi"), name],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    prefix = re.search(r"<output prefix='(\w+)'>", text).group(1)
    data = np.loadtxt(workdir / f"{prefix}.out", ndmin=2)
    # columns: step, time, conserved, temperature, kinetic, potential (eV)
    return {"step": data[:, 0], "conserved": data[:, 2], "potential": data[:, 5]}


def test_mts_conserves_energy_and_direct_only_does_not(tmp_path):
    model = _train_example_model()
    model.export().save(str(tmp_path / "model.pt"))
    (tmp_path / "init.xyz").write_text((EXAMPLE / "init.xyz").read_text())
    text = (EXAMPLE / "input-mts.xml").read_text()
    assert "non_conservative: true" in text
    text = text.replace(
        "<total_steps>100</total_steps>", "<total_steps>20</total_steps>"
    )

    mts = _run_ipi(tmp_path, text, "input-mts.xml")
    assert len(mts["step"]) == 21
    # 20 outer steps of 4 fs (80 inner steps of 1 fs): the atoms moved
    assert np.ptp(mts["potential"]) / N_ATOMS > 5e-3
    mts_spread = np.ptp(mts["conserved"]) / N_ATOMS
    assert mts_spread < 1e-3

    # the same 80 fs with the direct forces only (1 fs steps): no conservation
    direct = re.sub(
        r"<forces>.*?</forces>",
        "<forces><force forcefield='direct'/></forces>",
        text,
        flags=re.S,
    )
    direct = direct.replace("<nmts>[1, 4]</nmts>", "")
    direct = direct.replace(
        "<timestep units='femtosecond'>4.0", "<timestep units='femtosecond'>1.0"
    )
    direct = direct.replace("<total_steps>20", "<total_steps>80")
    direct = direct.replace("prefix='mts'", "prefix='direct'")
    only_direct = _run_ipi(tmp_path, direct, "input-direct.xml")
    assert len(only_direct["step"]) == 81
    assert np.ptp(only_direct["conserved"]) / N_ATOMS > 5 * mts_spread
