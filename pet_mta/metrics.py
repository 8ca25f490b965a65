"""Errors of a calculator against labelled structures, in the units people report."""

from typing import Dict, Sequence, Tuple

import ase
import numpy as np


def prediction_errors(
    frames: Sequence[ase.Atoms], calculator
) -> Dict[str, Tuple[float, float, str]]:
    """MAE and RMSE of energy per atom (meV/atom), forces (meV/Å), stress (meV/Å³).

    Reference values are the results stored with each frame (``ase.io.read`` of an
    extxyz file). Quantities absent from the reference are skipped.

    :return: ``{name: (mae, rmse, unit)}``
    """
    diffs: Dict[str, list] = {"energy/atom": [], "forces": [], "stress": []}
    for atoms in frames:
        reference = dict(atoms.calc.results) if atoms.calc is not None else {}
        probe = atoms.copy()
        probe.calc = calculator
        if "energy" in reference:
            predicted = probe.get_potential_energy()
            diffs["energy/atom"].append((predicted - reference["energy"]) / len(atoms))
        if "forces" in reference:
            diffs["forces"].append((probe.get_forces() - reference["forces"]).ravel())
        if "stress" in reference and atoms.pbc.all():
            predicted = probe.get_stress(voigt=False).ravel()
            expected = np.asarray(reference["stress"])
            if expected.shape == (6,):
                from ase.stress import voigt_6_to_full_3x3_stress

                expected = voigt_6_to_full_3x3_stress(expected)
            diffs["stress"].append(predicted - expected.ravel())
    units = {"energy/atom": "meV/atom", "forces": "meV/Å", "stress": "meV/Å³"}
    result = {}
    for name, values in diffs.items():
        if values:
            flat = 1000 * np.concatenate([np.atleast_1d(v) for v in values])
            result[name] = (
                float(np.mean(np.abs(flat))),
                float(np.sqrt(np.mean(flat**2))),
                units[name],
            )
    return result
