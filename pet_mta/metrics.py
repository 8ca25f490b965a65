"""Errors of a calculator against labelled structures, in the units people report."""

from typing import Dict, List, Sequence, Set, Tuple

import ase
import numpy as np

from .neighbors import check_finite_atoms

UNITS = {"energy/atom": "meV/atom", "forces": "meV/Å", "stress": "meV/Å³"}


def reference_labels(atoms: ase.Atoms) -> Set[str]:
    """Which of ``energy``, ``forces``, ``stress`` ``atoms`` carries a reference for.

    Stress counts only for fully periodic structures (no volume otherwise).
    """
    results = atoms.calc.results if atoms.calc is not None else {}
    labels = {name for name in ("energy", "forces", "stress") if name in results}
    if not atoms.pbc.all():
        labels.discard("stress")
    return labels


def prediction_errors(
    frames: Sequence[ase.Atoms], calculator
) -> Dict[str, Tuple[float, float, str]]:
    """MAE and RMSE of energy per atom (meV/atom), forces (meV/Å), stress (meV/Å³).

    Reference values are the results stored with each frame (``ase.io.read`` of an
    extxyz file). Quantities absent from the reference are skipped.

    :return: ``{name: (mae, rmse, unit)}``
    :raises ValueError: before any evaluation, when no frame carries a label, or for
        a frame with NaN or infinite positions or cell (named by its index)
    """
    labels: List[Set[str]] = [reference_labels(atoms) for atoms in frames]
    if not any(labels):
        raise ValueError(
            f"none of the {len(frames)} structures has an energy, forces or stress "
            "label to compare with"
        )
    for index, atoms in enumerate(frames):
        check_finite_atoms(atoms, f"structure {index}")
    diffs: Dict[str, list] = {name: [] for name in UNITS}
    for atoms, present in zip(frames, labels):
        reference = atoms.calc.results if present else {}
        probe = atoms.copy()
        probe.calc = calculator
        if "energy" in present:
            predicted = probe.get_potential_energy()
            diffs["energy/atom"].append((predicted - reference["energy"]) / len(atoms))
        if "forces" in present:
            diffs["forces"].append((probe.get_forces() - reference["forces"]).ravel())
        if "stress" in present:
            predicted = probe.get_stress(voigt=False).ravel()
            expected = np.asarray(reference["stress"])
            if expected.shape == (6,):
                from ase.stress import voigt_6_to_full_3x3_stress

                expected = voigt_6_to_full_3x3_stress(expected)
            diffs["stress"].append(predicted - expected.ravel())
    result = {}
    for name, values in diffs.items():
        if values:
            flat = 1000 * np.concatenate([np.atleast_1d(v) for v in values])
            result[name] = (
                float(np.mean(np.abs(flat))),
                float(np.sqrt(np.mean(flat**2))),
                UNITS[name],
            )
    return result
