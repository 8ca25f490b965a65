"""Fit the per-species baseline and the scale of a scalar target from data.

The baseline is the least-squares composition model ``y_s ~ sum_i b[Z_i]``; the scale is
the size of one atom's contribution to what is left: if atomic contributions were
independent with standard deviation ``sigma``, the residual of an ``n``-atom structure
would have variance ``n sigma^2``, so ``sigma = sqrt(mean(residual_s^2 / n_s))``.
Both are stored inside the model, so an exported file is complete.
"""

from typing import Dict, Sequence, Tuple

import ase
import numpy as np


def composition_matrix(frames: Sequence[ase.Atoms], atomic_types: Sequence[int]):
    """``[n_frames, n_types]`` count of every atomic type in every frame."""
    index = {int(z): i for i, z in enumerate(atomic_types)}
    counts = np.zeros((len(frames), len(atomic_types)))
    for f, atoms in enumerate(frames):
        for z in atoms.numbers:
            if int(z) not in index:
                raise ValueError(
                    f"frame {f} contains atomic type {z}, "
                    f"not one of {list(atomic_types)}"
                )
            counts[f, index[int(z)]] += 1
    return counts


def fit_composition(
    frames: Sequence[ase.Atoms],
    values: Sequence[float],
    atomic_types: Sequence[int],
    regularizer: float = 1e-8,
) -> Tuple[Dict[int, float], float]:
    """Least-squares per-species baseline and per-atom scale of a scalar target.

    :param frames: structures
    :param values: one value per structure (e.g. energies in eV)
    :param regularizer: ridge term relative to the mean squared count, so species
        absent from the data get a zero baseline instead of an error
    :return: ``({atomic number: baseline}, scale)``; the scale is 1 when the
        baseline explains the data exactly
    """
    values = np.asarray(values, dtype=np.float64)
    if len(frames) != len(values):
        raise ValueError(f"{len(frames)} frames but {len(values)} values")
    if len(frames) == 0:
        raise ValueError("cannot fit a baseline without data")
    counts = composition_matrix(frames, atomic_types)
    gram = counts.T @ counts
    gram += (
        regularizer
        * max(np.trace(gram) / len(atomic_types), 1.0)
        * np.eye(len(atomic_types))
    )
    weights = np.linalg.solve(gram, counts.T @ values)
    residual = values - counts @ weights
    n_atoms = np.maximum(counts.sum(axis=1), 1)
    scale = float(np.sqrt(np.mean(residual**2 / n_atoms)))
    baseline = {int(z): float(w) for z, w in zip(atomic_types, weights)}
    # a composition model that explains everything leaves nothing to scale
    typical = float(np.sqrt(np.mean((values / n_atoms) ** 2)))
    if scale <= 1e-6 * max(typical, 1e-12):
        scale = 1.0
    return baseline, scale


def fit_energy_baseline(model, frames: Sequence[ase.Atoms], key: str = "energy"):
    """Fit and store the energy baseline and scale of ``model`` from labelled frames.

    Energies are read with ``atoms.get_potential_energy()`` when ``key`` is
    ``"energy"`` and a calculator is attached, else from ``atoms.info[key]``.

    :return: the fitted ``(baseline, scale)``
    """
    energies = []
    for atoms in frames:
        if key == "energy" and atoms.calc is not None:
            energies.append(atoms.get_potential_energy())
        else:
            energies.append(float(atoms.info[key]))
    baseline, scale = fit_composition(frames, energies, model.atomic_types)
    model.set_baseline("energy", baseline)
    model.set_scale("energy", scale)
    return baseline, scale
