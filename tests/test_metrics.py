"""``pet_mta.metrics.prediction_errors``: errors in meV, per atom for energies,
Voigt or 3x3 reference stresses, only the labels each structure carries."""

import ase
import ase.build
import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from pet_mta.metrics import prediction_errors


class Predictions(Calculator):
    """Returns the predictions stored for ``atoms.info["index"]``."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, predictions):
        super().__init__()
        self.predictions = predictions

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = dict(self.predictions[atoms.info["index"]])


def _frames():
    """Three labelled structures and the predictions of a made-up model.

    0: periodic, 4 atoms, energy +8 meV (+2 meV/atom), forces off by ``D``, stress
       labelled in Voigt order and predicted exactly as a 3x3 matrix;
    1: periodic, 2 atoms, energy -2 meV (-1 meV/atom), no forces label, stress
       labelled as 3x3, predicted 1 meV/Å³ too high on the diagonal;
    2: a molecule, 3 atoms, energy +9 meV (+3 meV/atom), a stress label that does
       not count (no cell) and a prediction far from it.
    """
    rng = np.random.default_rng(0)
    bulk = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    small = ase.build.bulk("Cu", "bcc", a=2.9, cubic=True)
    molecule = ase.build.molecule("H2O")
    voigt = np.array([0.011, 0.022, 0.033, 0.004, 0.005, 0.006])  # xx yy zz yz xz xy
    full = np.array(
        [[0.011, 0.006, 0.005], [0.006, 0.022, 0.004], [0.005, 0.004, 0.033]]
    )
    stress1 = np.array([[0.1, 0.02, 0.0], [0.02, -0.1, 0.03], [0.0, 0.03, 0.05]])
    forces0 = rng.normal(size=(4, 3))
    offsets = np.array([[1, -2, 3], [-4, 5, -6], [0, 0, 0], [0.5, 0, -0.5]]) * 1e-3

    frames = []
    for index, (atoms, labels) in enumerate(
        [
            (bulk, {"energy": -1.0, "forces": forces0, "stress": voigt}),
            (small, {"energy": -2.0, "stress": stress1}),
            (molecule, {"energy": -3.0, "stress": np.ones(6)}),
        ]
    ):
        atoms.info["index"] = index
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    predictions = [
        {"energy": -1.0 + 0.008, "forces": forces0 + offsets, "stress": full},
        {
            "energy": -2.0 - 0.002,
            "forces": np.zeros((2, 3)),
            "stress": stress1 + 0.001 * np.eye(3),
        },
        {"energy": -3.0 + 0.009, "forces": np.zeros((3, 3)), "stress": np.zeros(6)},
    ]
    return frames, Predictions(predictions), offsets


def test_errors_in_mev_per_atom_and_voigt_stress():
    frames, calculator, offsets = _frames()
    errors = prediction_errors(frames, calculator)
    assert set(errors) == {"energy/atom", "forces", "stress"}

    mae, rmse, unit = errors["energy/atom"]
    assert unit == "meV/atom"
    assert mae == pytest.approx((2 + 1 + 3) / 3, rel=1e-9)
    assert rmse == pytest.approx(np.sqrt((4 + 1 + 9) / 3), rel=1e-9)

    mae, rmse, unit = errors["forces"]  # structure 0 only, 12 components
    assert unit == "meV/Å"
    assert mae == pytest.approx(np.mean(np.abs(1000 * offsets)), rel=1e-9)
    assert rmse == pytest.approx(np.sqrt(np.mean((1000 * offsets) ** 2)), rel=1e-9)

    # structures 0 (exact) and 1 (1 meV/Å³ on three of nine components)
    mae, rmse, unit = errors["stress"]
    assert unit == "meV/Å³"
    assert mae == pytest.approx(3 / 18, rel=1e-9)
    assert rmse == pytest.approx(np.sqrt(3 / 18), rel=1e-9)


def test_only_the_labelled_quantities_are_reported():
    frames, calculator, _ = _frames()
    errors = prediction_errors(frames[2:], calculator)
    assert set(errors) == {"energy/atom"}
    assert errors["energy/atom"][:2] == pytest.approx((3.0, 3.0), rel=1e-9)
