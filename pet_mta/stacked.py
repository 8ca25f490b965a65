"""Several PET models of one architecture as one :class:`pet_mta.PET` with stacked
weights.

:func:`stack_members` builds a ``PET(n_members=M)`` (the same layers, every weight
with a leading member axis, see :mod:`pet_mta.modules.members`) from ``M`` members
and copies their state dicts into it, entry by entry. Its
:meth:`~pet_mta.PET.predict_members` builds the neighbour graph, token layout and
cutoff weights once, runs every dense layer as one batched matrix product over the
members and the attention of all members as one batched product, and returns one
prediction per member: the same numbers as calling the members one after another
(to round-off). :class:`pet_mta.Ensemble` uses it when it can.

Members are Python :class:`pet_mta.PET` modules or the TorchScript modules of
exported PET models: both carry the JSON :attr:`~pet_mta.PET.architecture` they were
built from (models exported before it existed are not stacked).
"""

from typing import Dict, List, Optional

import torch

from .model import PET


def is_pet(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a :class:`~pet_mta.PET` (Python or TorchScript)."""
    return getattr(module, "original_name", type(module).__name__) == "PET"


def architecture(module: torch.nn.Module) -> Optional[str]:
    """The :attr:`~pet_mta.PET.architecture` of a single PET model (Python or
    TorchScript), or ``None`` for any other module."""
    value = getattr(module, "architecture", None)
    if not is_pet(module) or not isinstance(value, str):
        return None
    if int(getattr(module, "n_members", 0)) != 0:
        return None
    return value


def stacked_state(
    template: Dict[str, torch.Tensor], states: List[Dict[str, torch.Tensor]]
) -> Optional[Dict[str, torch.Tensor]]:
    """The state dict of the stacked model (``template``: its own, for the shapes)
    from the members' ``states``: entries with a member axis in the template are
    the members' entries stacked; the others (tables that do not depend on the
    weights) must be equal in every member. ``None`` where members do not fit."""
    result: Dict[str, torch.Tensor] = {}
    for key, target in template.items():
        if any(key not in state for state in states):
            return None
        values = [state[key].detach() for state in states]
        if any(
            v.shape != values[0].shape
            or v.dtype != values[0].dtype
            or v.device != values[0].device
            for v in values
        ):
            return None
        if values[0].shape == target.shape:
            if any(not torch.equal(v, values[0]) for v in values[1:]):
                return None
            result[key] = values[0]
        elif (len(values),) + tuple(values[0].shape) == tuple(target.shape):
            result[key] = torch.stack(values)
        else:
            return None
    if any(len(state) != len(template) for state in states):
        return None
    return result


def stack_members(members: List[torch.nn.Module]) -> Optional[PET]:
    """A ``PET(n_members=len(members))`` holding the weights of ``members`` (copies,
    that need no gradient), if they are PET models of one architecture
    (hyper-parameters, atomic types, targets, dtype and device), else ``None``."""
    if len(members) < 2:
        return None
    architectures = [architecture(m) for m in members]
    first = architectures[0]
    if first is None or any(a != first for a in architectures[1:]):
        return None
    states = [m.state_dict() for m in members]
    reference = next(v for v in states[0].values() if v.is_floating_point())
    stacked = PET.from_architecture(first, n_members=len(members))
    stacked = stacked.to(dtype=reference.dtype, device=reference.device)
    state = stacked_state(stacked.state_dict(), states)
    if state is None:
        return None
    stacked.load_state_dict(state)
    stacked.tokens_per_chunk = int(members[0].tokens_per_chunk)
    return stacked.requires_grad_(False).eval()
