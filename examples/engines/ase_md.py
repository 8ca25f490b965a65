"""Relax, then run NVE and NVT (Langevin) molecular dynamics of fcc Cu in ASE.

The exported model is used through ``metatomic_ase.MetatomicCalculator``, which
computes neighbour lists (vesin) and forces/stress (autograd) itself.

Usage: ``python ase_md.py [model.pt] [--steps 200]``
(``python export_demo_model.py`` writes a demo ``model.pt``).
"""

import argparse

import ase.build
import numpy as np
from ase import units
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE
from metatomic_ase import MetatomicCalculator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="model.pt")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)  # 108 atoms
    atoms.calc = MetatomicCalculator(args.model, device="cpu")
    print("energy (eV):", atoms.get_potential_energy())
    print("per-atom energies (eV):", atoms.get_potential_energies()[:4], "...")
    print("stress (eV/Å^3, Voigt):", atoms.get_stress())

    # geometry optimisation of positions and cell (the demo model is untrained:
    # its "relaxed" structure means nothing, a trained model gives real physics)
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.02, steps=100)
    print("relaxed energy (eV):", atoms.get_potential_energy())

    # NVE: the total energy should stay constant
    rng = np.random.default_rng(0)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    nve = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    totals = []
    nve.attach(lambda: totals.append(atoms.get_total_energy()), interval=10)
    nve.run(args.steps)
    print(f"NVE: total energy spread {np.ptp(totals):.2e} eV over {args.steps} steps")

    # NVT with a Langevin thermostat
    nvt = Langevin(atoms, 2.0 * units.fs, temperature_K=300, friction=0.01)
    nvt.run(args.steps)
    print(f"NVT: temperature after {args.steps} steps {atoms.get_temperature():.0f} K")


if __name__ == "__main__":
    main()
