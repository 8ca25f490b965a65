"""Short NVE molecular dynamics in ASE with an exported model, with energy drift."""

import time
from dataclasses import dataclass
from typing import Callable, Optional

import ase
import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ase < 3.29
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution as thermalize_momenta,
    )

from .neighbors import check_finite_atoms


@dataclass
class NVEResult:
    """Total energy per step (eV) and derived drift numbers."""

    total_energy: np.ndarray  # [n_steps + 1] eV
    potential_energy: np.ndarray  # [n_steps + 1] eV
    seconds_per_step: float

    @property
    def drift_per_atom(self) -> float:
        """Largest ``|E_tot(t) - E_tot(0)|`` over the run, per atom (eV/atom)."""
        return float(
            np.abs(self.total_energy - self.total_energy[0]).max() / self.n_atoms
        )

    @property
    def relative_drift(self) -> float:
        """Largest ``|E_tot(t) - E_tot(0)|`` relative to the kinetic-energy scale."""
        fluctuation = np.ptp(self.potential_energy)
        return float(
            np.abs(self.total_energy - self.total_energy[0]).max()
            / max(fluctuation, 1e-12)
        )

    n_atoms: int = 1


def run_nve(
    atoms: ase.Atoms,
    calculator,
    steps: int = 100,
    timestep_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
    log: Optional[Callable[[str], None]] = print,
    log_every: int = 20,
) -> NVEResult:
    """Run ``steps`` velocity-Verlet steps from Maxwell-Boltzmann velocities.

    Energies are recorded once per step, steps ``0..steps`` (``steps + 1`` values).

    :param timestep_fs: time step (fs)
    :param temperature_K: temperature of the initial velocities (K)
    :raises ValueError: for NaN or infinite positions or cell at the start, or when
        the energy or forces stop being finite (the run blew up; stopped before the
        next neighbour list is built from the broken positions)
    """
    check_finite_atoms(atoms, "the initial structure")
    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(
        atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed)
    )
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    total, potential = [], []

    def record():
        # ASE calls observers once before the first step, then after every step
        step = len(total)
        e_pot = atoms.get_potential_energy()
        if not (np.isfinite(e_pot) and np.isfinite(atoms.get_forces()).all()):
            raise ValueError(
                f"NVE run unstable: non-finite energy or forces at step {step}"
            )
        potential.append(e_pot)
        total.append(e_pot + atoms.get_kinetic_energy())
        if log is not None and step % log_every == 0:
            log(
                f"step {step:5d}  E_pot {e_pot: .6f} eV  "
                f"E_tot {total[-1]: .6f} eV  T {atoms.get_temperature():7.1f} K"
            )

    dynamics.attach(record, interval=1)
    start = time.perf_counter()
    dynamics.run(steps)
    elapsed = time.perf_counter() - start
    return NVEResult(
        total_energy=np.array(total),
        potential_energy=np.array(potential),
        seconds_per_step=elapsed / max(steps, 1),
        n_atoms=len(atoms),
    )
