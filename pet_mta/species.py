"""Load the weights of a model into one that knows more atomic types (or targets).

Every species-dependent tensor of :class:`pet_mta.PET` is indexed by species along
its first dimension, in blocks of ``n_species`` rows (row ``b * n_species + s``:
the embeddings, the per-layer species embeddings, the per-species baselines).
Rows of the old species are moved to their index among the new types; rows of the
added species keep the new model's initialisation. A structure made only of old
species therefore gets exactly the old predictions.
"""

from typing import Dict, List

import torch

DERIVED = ("type_to_index",)
"""Buffers computed from the atomic types: never copied."""


def load_extended_state(
    model: torch.nn.Module, state: Dict[str, torch.Tensor], old_types: List[int]
) -> List[str]:
    """Load ``state`` (of a model with atomic types ``old_types``) into ``model``.

    :param model: a :class:`pet_mta.PET` whose ``atomic_types`` contain
        ``old_types``, with the same hypers and at least the same targets
    :return: the entries of ``model`` absent from ``state`` (left at their
        initialisation: the heads of new targets)
    :raises ValueError: for an entry of ``state`` that ``model`` lacks, or one
        whose shape is not ``state``'s with more species rows
    """
    new_types = list(model.atomic_types)
    missing_types = sorted(set(old_types) - set(new_types))
    if missing_types:
        raise ValueError(f"model lacks the atomic types {missing_types} of 'state'")
    n_old, n_new = len(old_types), len(new_types)
    index = torch.tensor([new_types.index(int(t)) for t in old_types])
    target = {k: v.detach().clone() for k, v in model.state_dict().items()}
    unexpected = sorted(set(state) - set(target))
    if unexpected:
        raise ValueError(f"'state' has entries the model lacks: {unexpected}")
    missing = []
    for key, value in target.items():
        if key in DERIVED:
            continue
        if key not in state:
            missing.append(key)
            continue
        source = state[key].to(value)
        if source.shape == value.shape:
            value.copy_(source)
            continue
        blocks = source.shape[0] // n_old if source.dim() > 0 else 0
        if (
            source.dim() != value.dim()
            or source.shape[1:] != value.shape[1:]
            or blocks * n_old != source.shape[0]
            or blocks * n_new != value.shape[0]
        ):
            raise ValueError(
                f"cannot extend '{key}' from {n_old} to {n_new} species: shape "
                f"{tuple(source.shape)} -> {tuple(value.shape)}"
            )
        rows = (torch.arange(blocks)[:, None] * n_new + index[None, :]).reshape(-1)
        value[rows] = source
    model.load_state_dict(target)
    return missing
