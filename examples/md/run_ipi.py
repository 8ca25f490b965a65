"""
NVE molecular dynamics in i-PI
==============================

This example exports a model, runs a short constant-energy (NVE) simulation of 108
copper atoms in `i-PI <https://ipi-code.org>`_ (``pip install ipi``, part of the
``engines`` extra) and plots the conserved quantity and the temperature.

i-PI evaluates the model itself, through its ``metatomic`` potential in an
``<ffdirect>`` force field: no socket and no second process. The input is
``examples/engines/ipi/input-direct.xml`` with fewer steps; the socket mode
(``examples/engines/ipi/run.sh``) produces the same dynamics with the model in a
separate driver process (see :doc:`/engines`).

Run it from its folder: ``cd examples/md && python run_ipi.py``.
"""

# %%
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np

# the gallery runs every script from its own folder
ENGINES = Path("..", "engines").resolve()
sys.path.insert(0, str(ENGINES))
from export_demo_model import demo_model  # noqa: E402

sys.path.insert(0, str(Path(".").resolve()))
from md_helpers import show_nve  # noqa: E402

# every file of the run goes to a fresh folder (ignored by git)
WORKDIR = Path("ipi-run").resolve()
shutil.rmtree(WORKDIR, ignore_errors=True)
WORKDIR.mkdir()

# %%
# The model
# ---------
#
# ``demo_model()`` (from ``examples/engines/export_demo_model.py``) is a tiny,
# untrained PET for copper in float64. Replace ``model.pt`` by your own trained
# export: i-PI only needs the file.

demo_model().export().save(str(WORKDIR / "model.pt"))

# %%
# The i-PI input
# --------------
#
# The example input runs 200 steps of 1 fs; 40 are enough here. The ``template``
# structure (``init.xyz``, 108 Cu atoms in a periodic cube) gives i-PI's metatomic
# potential the atomic numbers, and also sets the initial positions and cell.

N_STEPS = 40
shutil.copy(ENGINES / "ipi" / "init.xyz", WORKDIR / "init.xyz")
text = (ENGINES / "ipi" / "input-direct.xml").read_text()
text = text.replace(
    "<total_steps>200</total_steps>", f"<total_steps>{N_STEPS}</total_steps>"
)
(WORKDIR / "input.xml").write_text(text)
print(text[text.index("<ffdirect") : text.index("</ffdirect>") + len("</ffdirect>")])

# %%
# Run i-PI
# --------
#
# ``i-pi input.xml`` is the command line a user types; one torch thread is plenty
# for 108 atoms.

env = dict(os.environ, OMP_NUM_THREADS="1")
ipi = shutil.which("i-pi") or str(Path(sys.executable).parent / "i-pi")
result = subprocess.run(
    [ipi, "input.xml"], cwd=WORKDIR, capture_output=True, text=True, env=env
)
if result.returncode != 0:
    raise RuntimeError(f"i-PI failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

# %%
# Read i-PI's output
# ------------------
#
# ``md-direct.out`` has one line per step; its header names the columns and their
# units (``conserved{electronvolt}``: i-PI writes Hartree unless told otherwise).


def read_properties(path: Path) -> dict:
    """Columns of an i-PI ``.out`` file, by property name."""
    names = [
        line.split("-->")[1].split()[0].split("{")[0]
        for line in path.read_text().splitlines()
        if line.startswith("#")
    ]
    data = np.loadtxt(path, ndmin=2)
    return {name: data[:, i] for i, name in enumerate(names)}


properties = read_properties(WORKDIR / "md-direct.out")
time = properties["time"] * 1000  # fs
conserved = properties["conserved"]
potential = properties["potential"]
n_atoms = len(ase.io.read(WORKDIR / "init.xyz"))

# %%
# Energy conservation and temperature
# -----------------------------------
#
# Kinetic and potential energy exchange while their sum, the conserved quantity,
# stays constant to the accuracy of the velocity Verlet integrator (middle panel:
# the same curve, magnified 1000 times).

show_nve(
    time, conserved, potential, properties["temperature"], n_atoms, "conserved quantity"
)
