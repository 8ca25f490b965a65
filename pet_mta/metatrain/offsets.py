"""Per-species offsets of the scalar targets, refitted in closed form after every
epoch (trainer hyper-parameter ``refit_baseline``).

A constant shift per species of an energy leaves the forces unchanged, so only the
energy's own loss term holds it in place. Adam moves the head's bias by about one
learning rate (times the target scale) per step, while the force gradients move
every weight the head reads, and with them the mean output, by many such steps.
On data whose energies per atom vary little (a single composition: rattled cells,
clusters of one molecule) the energies then wander by tens of meV/atom from one
epoch to the next. The shift that minimises the training set's squared error (per
atom, as in the loss) is a linear least-squares problem in the species counts; it
is solved after every epoch, on the training structures in their own orientation
(all of them up to :data:`REFIT_MINIMUM`, a fixed random subset beyond), and added
to the stored baseline, so it is exported with the model.
"""

import logging
import math
from typing import Dict, List, Union

import numpy as np
import torch
from metatomic.torch import ModelOutput
from metatrain.utils.data import TargetInfo, unpack_batch
from metatrain.utils.transfer import batch_to

from ..model import PET

REFIT_FRACTION = 0.1
"""Fraction of the training structures the offsets are refitted on."""
REFIT_MINIMUM = 1000
"""... but at least this many structures (all of them in smaller sets). A fit on a
subset is the subset's optimum, not the training set's, and the energy loss then
pulls against it for a whole epoch: on HEA with 100 structures a fit on 50 of
them ended with energies 19 % worse than one on all 100 (four seeds)."""


def refit_subsets(datasets: list) -> list:
    """A fixed random subset of every training set for :func:`refit_offsets`:
    :data:`REFIT_FRACTION` of its structures, at least :data:`REFIT_MINIMUM`.

    The offsets are one number per species: beyond a thousand structures, a
    tenth of the data estimates them to within the model's energy error over
    ``sqrt(n)``, for a tenth of the cost of a pass over all of it. The subset is
    drawn from its own generator (seed 0), so it leaves the training's random
    state alone.
    """
    generator = np.random.default_rng(0)
    subsets = []
    for dataset in datasets:
        n = len(dataset)
        size = min(n, max(REFIT_MINIMUM, math.ceil(REFIT_FRACTION * n)))
        chosen = np.sort(generator.choice(n, size=size, replace=False))
        subsets.append(torch.utils.data.Subset(dataset, chosen.tolist()))
    return subsets


def refit_names(
    pet: PET, targets: Dict[str, TargetInfo], atomic_baseline: Union[dict, str]
) -> List[str]:
    """The targets whose offsets are refitted: scalar targets with a baseline,
    except those whose baseline the user fixed (``atomic_baseline``)."""
    if isinstance(atomic_baseline, str):
        return []  # every baseline loaded from a composition-model checkpoint
    return [
        name
        for name in targets
        if pet.target_kinds.get(name) == "scalar"
        and pet.readouts[name].has_baseline
        and name not in atomic_baseline
    ]


class OffsetFit:
    """Normal equations of the per-species shift of every target in ``names``.

    For a per-structure target averaged per atom in the loss, structure ``s`` adds
    the row ``counts_s / N_s`` (``[n_species]``) with right-hand side
    ``(y_s - prediction_s) / N_s`` (``[n_values]``); per-structure targets listed in
    ``per_structure`` use the counts and residuals themselves; per-atom targets add
    one row per atom (the one-hot of its species).
    """

    def __init__(self, pet: PET, names: List[str], per_structure: List[str]):
        self.pet = pet
        self.names = names
        self.per_structure = per_structure
        n = len(pet.atomic_types)
        self.normal: Dict[str, torch.Tensor] = {}
        self.right: Dict[str, torch.Tensor] = {}
        for name in names:
            n_values = pet.readouts[name].baseline.shape[-1]
            self.normal[name] = torch.zeros(n, n, dtype=torch.float64)
            self.right[name] = torch.zeros(n, n_values, dtype=torch.float64)

    def add(self, systems, predictions, targets) -> None:
        """Add one batch (``predictions`` and ``targets``: TensorMaps by name)."""
        for name in self.names:
            if name not in targets:
                continue
            rows, residuals = self._rows(name, systems, predictions[name], targets)
            self.normal[name] += rows.T @ rows
            self.right[name] += rows.T @ residuals

    def _rows(self, name, systems, prediction, targets):
        n_species = len(self.pet.atomic_types)
        residuals = targets[name].block().values - prediction.block().values
        residuals = residuals.detach().to(torch.float64).cpu()
        species = [self.pet.type_to_index[s.types.to(torch.long)] for s in systems]
        if "atom" in prediction.block().samples.names:
            rows = torch.nn.functional.one_hot(torch.cat(species), n_species)
            return rows.to(torch.float64).cpu(), residuals
        counts = torch.stack(
            [torch.bincount(index, minlength=n_species) for index in species]
        ).to(torch.float64)
        counts = counts.cpu()
        if name in self.per_structure:
            return counts, residuals
        n_atoms = counts.sum(1, keepdim=True).clamp(min=1.0)
        return counts / n_atoms, residuals / n_atoms

    def apply(self, distributed: bool) -> Dict[str, float]:
        """Add the least-squares shifts to the baselines (minimum-norm solution:
        species whose counts are collinear over the data set share the shift);
        :return: the largest absolute shift of every target (its units)."""
        largest: Dict[str, float] = {}
        for name in self.names:
            normal, right = self.normal[name], self.right[name]
            if distributed:
                normal, right = _summed(normal), _summed(right)
            shift = torch.linalg.pinv(normal, rtol=1e-10, hermitian=True) @ right
            baseline = self.pet.readouts[name].baseline
            with torch.no_grad():
                baseline += shift.to(baseline)
            largest[name] = float(shift.abs().max()) if shift.numel() else 0.0
        return largest


def _summed(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    torch.distributed.all_reduce(tensor)
    return tensor


def refit_offsets(
    model: torch.nn.Module,
    loader,
    infos: Dict[str, TargetInfo],
    per_structure: List[str],
    dtype: torch.dtype,
    device: torch.device,
    distributed: bool,
) -> Dict[str, float]:
    """One forward pass (no gradients) of ``model`` (a
    :class:`~pet_mta.metatrain.model.PETModel`) over ``loader``, then the
    per-species offsets of the targets in ``infos`` refitted (:class:`OffsetFit`).

    :return: the largest absolute shift of every target
    """
    fit = OffsetFit(model.pet, list(infos), per_structure)
    with torch.no_grad():
        for batch in loader:
            systems, targets, extra = unpack_batch(batch)
            systems, targets, extra = batch_to(
                systems, targets, extra, dtype=dtype, device=device
            )
            outputs = {
                name: ModelOutput(sample_kind=info.sample_kind)
                for name, info in infos.items()
                if name in targets
            }
            fit.add(systems, model(systems, outputs), targets)
    largest = fit.apply(distributed)
    logging.debug(f"refitted per-species offsets, largest shifts: {largest}")
    return largest
