"""Turn a :class:`pet_mta.PET` into a ``metatomic.torch.AtomisticModel``."""

import copy
from typing import Optional

import torch
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    unit_conversion_factor,
)

from ._version import __version__

PET_REFERENCE = (
    "Pozdnyakov, S. N. & Ceriotti, M. Smooth, exact rotational symmetrization for "
    "deep learning on point clouds. NeurIPS 2023, arXiv:2305.19302"
)


def default_metadata() -> ModelMetadata:
    """Name, description, authors and references of a pet_mta model."""
    return ModelMetadata(
        name=f"pet_mta PET (v{__version__})",
        description=(
            "Point Edge Transformer machine-learning interatomic potential: an "
            "unconstrained graph transformer over neighbour-edge tokens, trained with "
            "rotational augmentation"
        ),
        authors=["pet_mta developers"],
        references={"architecture": [PET_REFERENCE]},
    )


def check_unit(unit: str, what: str) -> None:
    """Raise a clear error if metatomic cannot convert ``unit``.

    :param what: what has this unit, for the error (``"the length unit"``, ...)
    """
    if unit == "":
        return
    try:
        unit_conversion_factor(unit, unit)
    except Exception as error:
        raise ValueError(
            f"unit '{unit}' of {what} is not known to metatomic, so engines could "
            f"not convert it: {error}"
        ) from None


def export(model, metadata: Optional[ModelMetadata] = None) -> AtomisticModel:
    """Export ``model`` (a :class:`pet_mta.PET`) as an ``AtomisticModel``.

    The copy is in evaluation mode and in the model's current dtype;
    ``interaction_range`` is ``num_gnn_layers * cutoff`` (messages travel one cutoff
    per layer), which is what domain-decomposed engines need for ghost atoms.
    """
    check_unit(model.length_unit, "the length unit")
    outputs = model.output_capabilities()
    for name, output in outputs.items():
        check_unit(output.unit, f"output '{name}'")

    dtype = next(model.parameters()).dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"can only export float32 or float64 models, not {dtype}")
    exported = copy.deepcopy(model).eval()
    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=list(model.atomic_types),
        interaction_range=float(model.hypers["num_gnn_layers"]) * model.cutoff,
        length_unit=model.length_unit,
        supported_devices=["cuda", "cpu"],
        dtype="float32" if dtype == torch.float32 else "float64",
    )
    return AtomisticModel(
        exported, metadata if metadata is not None else default_metadata(), capabilities
    )
