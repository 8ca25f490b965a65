"""Composition baseline and target scale, fitted on the training set and stored in
the core model's read-outs (so exported models carry them).

The baseline uses metatrain's composition model (least squares on the atom counts,
or fixed/loaded values from ``atomic_baseline``); the scale is
:class:`pet_mta.baseline.ScaleAccumulator`'s: the root mean square of the per-atom
residual after the baseline, or the mean absolute force component times 1 Å when
forces are trained and that is larger.
"""

import logging
from typing import Dict, List, Union

import torch
from metatrain.composition import CompositionModel, train_or_load_composition_model
from metatrain.utils.data import DatasetInfo

from ..baseline import ScaleAccumulator
from ..model import PET
from ..targets import Target
from .targets import flat_values


def fit_baseline(
    pet: PET,
    dataset_info: DatasetInfo,
    atomic_baseline: Union[dict, str],
    train_datasets: list,
    batch_size: int,
    is_distributed: bool,
    checkpoint_dir: str,
) -> None:
    """Fit the per-species baseline of every scalar target, and of the invariant
    ``(o3_lambda=0, o3_sigma=1)`` block of spherical ones, and store it in ``pet``.

    Cartesian targets and the other spherical blocks have no baseline (a constant
    vector per species would break rotational equivariance).
    """
    scalars = {
        name: info
        for name, info in dataset_info.targets.items()
        if name in pet.readouts
        and (info.is_scalar or (info.is_spherical and _has_invariants(pet, name)))
    }
    if not scalars:
        return
    composition = CompositionModel.from_valid_targets(
        DatasetInfo(
            length_unit=dataset_info.length_unit,
            atomic_types=pet.atomic_types,
            targets=scalars,
            extra_data=dataset_info.extra_data,
        ),
        pet.atomic_types,
    )
    train_or_load_composition_model(
        composition_model=composition,
        atomic_baseline=atomic_baseline,
        train_datasets=train_datasets,
        other_additive_models=[],
        batch_size=batch_size,
        is_distributed=is_distributed,
        checkpoint_dir=checkpoint_dir,
    )
    for name in scalars:
        if name not in composition.model.weights:
            continue
        weights = composition.model.weights[name]
        if pet.target_kinds[name] == "spherical":
            block = weights.block({"o3_lambda": 0, "o3_sigma": 1})
        else:
            block = weights.block()
        readout = pet.readouts[name]
        columns = _target(pet, name).invariant_columns
        with torch.no_grad():
            for row, atomic_type in enumerate(block.samples.values[:, 0].tolist()):
                index = pet.atomic_types.index(int(atomic_type))
                readout.baseline[index, columns] = (
                    block.values[row].reshape(-1).to(readout.baseline)
                )
        logging.info(f"baseline of '{name}': {readout.baseline[:, columns].tolist()}")


def _target(pet: PET, name: str) -> Target:
    return next(t for t in pet.target_list if t.name == name)


def _has_invariants(pet: PET, name: str) -> bool:
    return len(_target(pet, name).invariant_columns) > 0


def _per_atom_residuals(
    pet: PET, name: str, per_atom: bool, sample
) -> List[torch.Tensor]:
    """Target values minus baseline, per atom (per-system values divided by the
    number of atoms), flattened."""
    system = sample["system"] if isinstance(sample, dict) else sample.system
    values = flat_values(sample[name], _target(pet, name)).detach()
    values = values.to(torch.float64)
    if pet.target_kinds[name] == "atomic_basis":
        # no baseline; missing values of the data set are NaN
        return [values[~torch.isnan(values)]]
    if name in pet.stress_targets:
        # the stress head predicts atomic virials: scale them, not the stress
        volume = float(torch.abs(torch.det(system.cell.to(torch.float64))))
        if volume == 0.0:
            return []
        values = values * volume
    types = system.types.to(torch.long)
    index = pet.type_to_index[types]
    baseline = pet.readouts[name].baseline.to(torch.float64)
    if per_atom:
        return [(values - baseline[index]).reshape(-1)]
    n_atoms = max(len(types), 1)
    total = values - baseline[index].sum(0, keepdim=True)
    return [(total / n_atoms).reshape(-1)]


def _forces(name: str, sample) -> List[torch.Tensor]:
    """The position gradients of ``sample`` for target ``name`` (minus the forces;
    the scale uses only their magnitude), if the data set has them."""
    if len(sample[name]) != 1:
        return []  # spherical targets have no gradients
    block = sample[name].block()
    if "positions" not in block.gradients_list():
        return []
    return [block.gradient("positions").values.detach().to(torch.float64)]


def fit_scales(
    pet: PET,
    dataset_info: DatasetInfo,
    fixed: Union[dict, str],
    train_datasets: list,
) -> Dict[str, float]:
    """Set the scale of every target (see the module doc).

    :param fixed: ``{target: scale}`` for the targets whose scale is given
    :return: the scale of every target
    """
    if isinstance(fixed, str):
        raise ValueError(
            "pet_mta stores one scale per target inside the model: give "
            "`fixed_scaling_weights` as {target: value}, not a scaler checkpoint"
        )
    scales: Dict[str, float] = {}
    for name, info in dataset_info.targets.items():
        if name in fixed:
            value = fixed[name]
            if not isinstance(value, (int, float)):
                raise ValueError(
                    f"fixed_scaling_weights['{name}'] must be a single number: "
                    "pet_mta does not use per-species scales"
                )
            scales[name] = float(value)
            continue
        accumulator = ScaleAccumulator()
        for dataset in train_datasets:
            for i in range(len(dataset)):
                sample = dataset[i]._asdict()
                if name not in sample:
                    continue
                for residual in _per_atom_residuals(pet, name, info.per_atom, sample):
                    accumulator.add_values(residual.numpy())
                for forces in _forces(name, sample):
                    accumulator.add_forces(forces.numpy())
        scales[name] = accumulator.scale()
    for name, scale in scales.items():
        pet.set_scale(name, scale)
    logging.info(f"target scales: {scales}")
    return scales


def unit_scales(pet: PET) -> Dict[str, float]:
    """Scale 1 for every target (``scale_targets: false``)."""
    for name in pet.readouts:
        pet.set_scale(name, 1.0)
    return {name: 1.0 for name in pet.readouts}
