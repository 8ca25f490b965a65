"""Fit the per-species baseline and the scale of a scalar target from data.

The baseline is the least-squares composition model ``y_s ~ sum_i b[Z_i]``. The scale
(:class:`ScaleAccumulator`, the one definition used everywhere) is the root mean
square of the per-atom residual ``(y_s - sum_i b[Z_i]) / n_s``, or, when forces are
trained with the target, the mean absolute force component times 1 Å if that is
larger. The network's output is multiplied by the scale and it sees lengths in Å,
so its raw outputs then change by O(1) per Å, like the typical force it must learn.
With the energy scale alone, data whose energies per atom vary little but whose
forces are large (water clusters: 18 meV/atom against 0.95 eV/Å) need raw outputs
of O(50) per Å, the optimiser moves the energies by only ``scale x learning rate``
per step, and the energies drift away while forces are fitted. The mean absolute
force (not its root mean square) keeps a few very large forces (methane with C-H
distances down to 0.5 Å: RMS 6.4, mean 2.0 eV/Å) from setting too coarse a scale.
Both baseline and scale are stored inside the model, so an exported file is
complete.
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import ase
import numpy as np

FORCE_LENGTH = 1.0
"""Length (Å) that turns a typical force into an energy scale: the unit in which the
network sees interatomic distances."""


def _labelled(values) -> np.ndarray:
    """``values`` flattened to float64, without NaN entries (missing labels)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    return flat[~np.isnan(flat)]


class ScaleAccumulator:
    """Running sums for the scale of one target (see the module doc).

    Feed per-atom residuals (per-system residuals divided by the number of atoms,
    or per-atom values minus their baseline) and, for energies trained with forces,
    force components; :meth:`scale` gives the result.
    """

    def __init__(self) -> None:
        self.value_squares = 0.0
        self.value_count = 0
        self.force_absolute = 0.0
        self.force_count = 0

    def add_values(self, residuals) -> None:
        """Per-atom residuals, any shape; NaN entries (missing labels) skipped."""
        values = _labelled(residuals)
        self.value_squares += float(np.sum(values**2))
        self.value_count += values.size

    def add_forces(self, forces) -> None:
        """Force components (eV/Å), any shape; NaN entries skipped."""
        values = _labelled(forces)
        self.force_absolute += float(np.sum(np.abs(values)))
        self.force_count += values.size

    def scale(self) -> float:
        """``max(rms(residuals), mean(|forces|) * FORCE_LENGTH)``; 1 without data
        or when both are zero (nothing to scale)."""
        candidates = []
        if self.value_count > 0:
            candidates.append(math.sqrt(self.value_squares / self.value_count))
        if self.force_count > 0:
            candidates.append(self.force_absolute / self.force_count * FORCE_LENGTH)
        scale = max(candidates, default=1.0)
        if not math.isfinite(scale) or scale <= 1e-12:
            return 1.0
        return scale


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
    forces: Optional[Sequence[np.ndarray]] = None,
) -> Tuple[Dict[int, float], float]:
    """Least-squares per-species baseline and scale of a scalar target.

    :param frames: structures
    :param values: one value per structure (e.g. energies in eV)
    :param forces: ``[n_atoms, 3]`` forces of every frame (eV/Å), when they are
        trained with the target (they set the scale if larger, see the module doc)
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
    # a composition model that explains everything leaves nothing to scale
    typical = float(np.sqrt(np.mean((values / n_atoms) ** 2)))
    residual[np.abs(residual / n_atoms) <= 1e-6 * max(typical, 1e-12)] = 0.0
    accumulator = ScaleAccumulator()
    accumulator.add_values(residual / n_atoms)
    for frame_forces in forces or []:
        accumulator.add_forces(frame_forces)
    baseline = {int(z): float(w) for z, w in zip(atomic_types, weights)}
    return baseline, accumulator.scale()


def fit_energy_baseline(
    model, frames: Sequence[ase.Atoms], key: str = "energy", forces: bool = True
):
    """Fit and store the energy baseline and scale of ``model`` from labelled frames.

    Energies are read with ``atoms.get_potential_energy()`` when ``key`` is
    ``"energy"`` and a calculator is attached, else from ``atoms.info[key]``.

    :param forces: the forces will be trained too: include them in the scale
        (read with ``atoms.get_forces()`` from frames whose calculator has them)
    :return: the fitted ``(baseline, scale)``
    """
    energies = []
    frame_forces = []
    for atoms in frames:
        if key == "energy" and atoms.calc is not None:
            energies.append(atoms.get_potential_energy())
        else:
            energies.append(float(atoms.info[key]))
        if forces and atoms.calc is not None and "forces" in atoms.calc.results:
            frame_forces.append(atoms.get_forces())
    baseline, scale = fit_composition(
        frames, energies, model.atomic_types, forces=frame_forces
    )
    model.set_baseline("energy", baseline)
    model.set_scale("energy", scale)
    return baseline, scale
