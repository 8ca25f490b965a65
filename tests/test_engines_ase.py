"""The exported model in ASE through ``metatomic_ase.MetatomicCalculator``."""

import ase.build
import numpy as np
import pytest
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from engine_helpers import alloy, reference, small_model
from metatomic.torch import ModelOutput
from metatomic_ase import MetatomicCalculator

from pet_mta.neighbors import systems_from_ase


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = small_model()
    path = tmp_path_factory.mktemp("ase") / "model.pt"
    model.export().save(str(path))
    return model, str(path)


def test_calculator_matches_python_model(exported):
    model, path = exported
    atoms = alloy(triclinic=True)
    atoms.calc = MetatomicCalculator(path, device="cpu")
    energy, forces, stress, per_atom = reference(model, atoms)
    stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]  # Voigt, as ASE

    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), stress, atol=1e-10)
    np.testing.assert_allclose(atoms.get_potential_energies(), per_atom, atol=1e-10)
    assert per_atom.sum() == pytest.approx(energy, rel=1e-10)
    # the comparison is meaningful: forces and stress are not trivially zero
    assert np.abs(forces).max() > 1e-3
    assert np.abs(stress).max() > 1e-5


def test_nve_energy_is_conserved(exported):
    _, path = exported
    atoms = alloy(triclinic=True)
    atoms.calc = MetatomicCalculator(path, device="cpu")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    total, kinetic = [], []

    def record():
        total.append(atoms.get_total_energy())
        kinetic.append(atoms.get_kinetic_energy())

    dynamics.attach(record, interval=1)
    dynamics.run(300)

    total, kinetic = np.array(total), np.array(kinetic)
    n_atoms = len(atoms)
    # energy moved between kinetic and potential: the check is not vacuous
    assert np.ptp(kinetic) / n_atoms > 5e-3
    # fluctuations and drift of the total energy stay small (eV/atom)
    assert np.ptp(total) / n_atoms < 2e-4
    drift = abs(total[-50:].mean() - total[:50].mean()) / n_atoms
    assert drift < 5e-5


def test_symmetrized_model_in_ase(exported, tmp_path):
    """The ECSE-wrapped export runs in ASE, matches Python and is rotation-exact."""
    from scipy.spatial.transform import Rotation

    from pet_mta.wrappers import Symmetrized

    model, plain_path = exported
    symmetrized = Symmetrized(model, mode="whole")
    path = str(tmp_path / "symmetrized.pt")
    symmetrized.export().save(path)

    positions = np.random.default_rng(0).normal(scale=1.5, size=(5, 3))
    atoms = ase.Atoms("Cu3Ni2", positions=positions)
    atoms.calc = MetatomicCalculator(path, device="cpu")

    systems = systems_from_ase([atoms], symmetrized, positions_requires_grad=True)
    outputs = symmetrized(systems, {"energy": ModelOutput(sample_kind="system")})
    energy = outputs["energy"].block().values.sum()
    energy.backward()
    assert atoms.get_potential_energy() == pytest.approx(energy.item(), rel=1e-10)
    forces = -systems[0].positions.grad.numpy()
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)

    rotation = Rotation.random(random_state=1).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rotation.T
    rotated.calc = MetatomicCalculator(path, device="cpu")
    assert rotated.get_potential_energy() == pytest.approx(energy.item(), abs=1e-10)
    np.testing.assert_allclose(rotated.get_forces(), forces @ rotation.T, atol=1e-10)

    # the plain backbone is not exactly invariant: the check above is not vacuous
    plain = MetatomicCalculator(plain_path, device="cpu")
    atoms.calc, rotated.calc = plain, MetatomicCalculator(plain_path, device="cpu")
    assert abs(atoms.get_potential_energy() - rotated.get_potential_energy()) > 1e-6
