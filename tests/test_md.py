"""run_nve records every step once (0..N) and stops cleanly when a run blows up."""

import ase.build
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

from pet_mta.md import run_nve, thermalize_momenta  # ase-version independent


def copper() -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=2)
    return atoms


def reference_total_energies(atoms: ase.Atoms, steps: int) -> np.ndarray:
    """Total energy (eV) after 0, 1, ..., ``steps`` velocity-Verlet steps."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K=300.0, rng=np.random.default_rng(0))
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    energies = [atoms.get_total_energy()]
    for _ in range(steps):
        dynamics.run(1)
        energies.append(atoms.get_total_energy())
    return np.array(energies)


def test_every_step_recorded_once():
    steps = 6
    result = run_nve(copper(), EMT(), steps=steps, temperature_K=300.0, log=None)
    expected = reference_total_energies(copper(), steps)
    assert result.total_energy.shape == (steps + 1,)
    assert result.potential_energy.shape == (steps + 1,)
    np.testing.assert_allclose(result.total_energy, expected, rtol=0, atol=1e-10)
    # step 0 once: the first two potential energies differ
    assert result.potential_energy[0] != result.potential_energy[1]
    drift = np.abs(expected - expected[0]).max() / 4
    assert result.drift_per_atom == pytest.approx(drift, rel=1e-9)


def test_log_counts_steps_from_zero():
    lines = []
    run_nve(copper(), EMT(), steps=4, log=lines.append, log_every=2)
    assert [line.split()[1] for line in lines] == ["0", "2", "4"]


def test_non_finite_start_refused():
    atoms = copper()
    atoms.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match="initial structure has NaN or infinite"):
        run_nve(atoms, EMT(), steps=2, log=None)


class Exploding(EMT):
    """EMT whose forces become NaN from the fourth evaluation on."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.calls += 1
        if self.calls > 3:
            self.results["forces"] = self.results["forces"] * np.nan


def test_blow_up_stops_with_the_step():
    with pytest.raises(ValueError, match="non-finite energy or forces at step 3"):
        run_nve(copper(), Exploding(), steps=10, log=None)
