"""A distance-only PET matching a given PET: the exactly invariant auxiliary model
that keeps PET's ECSE symmetrization (:class:`pet_mta.Symmetrized`) exact in
degenerate environments (collinear, isolated or single-neighbour atoms)."""

from typing import Any

from .model import PET


def distance_only_auxiliary(model: PET, **overrides: Any) -> PET:
    """A distance-only PET matching ``model`` (a :class:`pet_mta.PET`).

    Same atomic types, targets, cutoff and sizes, ``edge_embedding="distance"``: an
    exactly rotation-invariant PET (complete for collinear structures) to use as the
    ECSE ``auxiliary`` model. It starts from random weights: train it on the same
    data (the scalar baselines and scales are copied from ``model``).
    """
    hypers = dict(model.hypers)
    hypers.update(overrides)
    hypers["edge_embedding"] = "distance"
    targets = {
        t.name: dict(
            quantity=t.quantity, unit=t.unit, kind=t.kind, n_properties=t.n_properties
        )
        for t in model.target_list
        if t.kind == "scalar"
    }
    aux = PET(
        atomic_types=list(model.atomic_types),
        targets=targets,
        length_unit=model.length_unit,
        **hypers,
    )
    dtype = next(model.parameters()).dtype
    aux = aux.to(dtype)
    for name in targets:
        aux.set_baseline(name, model.get_baseline(name))
        aux.readouts[name].scale.copy_(model.readouts[name].scale)
    return aux
