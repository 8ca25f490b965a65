"""metatrain ``TargetInfo`` -> :class:`pet_mta.Target`."""

from typing import Dict, List

from metatrain.utils.data import TargetInfo

from ..targets import Target


def target_from_info(name: str, info: TargetInfo) -> Target:
    """The :class:`pet_mta.Target` predicting the metatrain target ``name``.

    Rank-2 Cartesian targets whose name contains ``stress`` (metatrain's
    ``non_conservative_stress``) become ``"stress"`` targets: symmetric, atomic
    virials divided by the cell volume.

    :raises ValueError: for spherical, atomic-basis, other rank > 1 Cartesian or
        atom-pair targets, which pet_mta does not predict
    """
    if info.sample_kind not in ("system", "atom"):
        raise ValueError(
            f"target '{name}': pet_mta predicts per-system and per-atom targets, "
            f"not '{info.sample_kind}' ones"
        )
    if len(info.layout.keys) != 1:
        raise ValueError(
            f"target '{name}' has {len(info.layout.keys)} blocks; pet_mta only "
            "predicts single-block scalar and Cartesian-vector targets"
        )
    block = info.layout.block()
    n_properties = len(block.properties)
    if info.is_scalar:
        kind = "scalar"
    elif info.is_cartesian and len(block.components) == 1:
        kind = "cartesian"
    elif info.is_cartesian and len(block.components) == 2 and "stress" in name:
        kind = "stress"
    else:
        raise ValueError(
            f"target '{name}': pet_mta predicts scalars, Cartesian vectors (rank 1) "
            "and stresses only, not spherical tensors or other higher-rank Cartesian "
            "tensors"
        )
    return Target(
        name=name,
        kind=kind,
        unit=info.unit,
        quantity=info.quantity,
        n_properties=n_properties,
        description=info.description,
    )


def targets_from_infos(infos: Dict[str, TargetInfo]) -> List[Target]:
    """:func:`target_from_info` for every target, in order."""
    return [target_from_info(name, info) for name, info in infos.items()]
