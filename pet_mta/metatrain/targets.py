"""metatrain ``TargetInfo`` -> :class:`pet_mta.Target`."""

from typing import Dict, List

import torch
from metatensor.torch import TensorMap
from metatrain.utils.data import TargetInfo

from ..modules.spherical import property_counts, spherical_properties
from ..targets import Target


def target_from_info(name: str, info: TargetInfo) -> Target:
    """The :class:`pet_mta.Target` predicting the metatrain target ``name``.

        Rank-2 Cartesian targets whose name contains ``stress`` (metatrain's
        ``non_conservative_stress``) become ``"stress"`` targets: symmetric, atomic
        virials divided by the cell volume. Spherical targets (keys ``o3_lambda,
        o3_sigma``, or ``o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2`` for
    products of irreps; the same properties in every block) become ``"spherical"``
    ones; spherical targets in an atomic basis (the same keys and ``atom_type``,
    products of irreps included) become ``"atomic_basis"`` ones.

        :raises ValueError: for other rank > 1 Cartesian or atom-pair targets,
            which pet_mta does not predict
    """
    if info.sample_kind not in ("system", "atom"):
        raise ValueError(
            f"target '{name}': pet_mta predicts per-system and per-atom targets, "
            f"not '{info.sample_kind}' ones"
        )
    if info.is_spherical:
        return _spherical_target(name, info)
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
            f"target '{name}': pet_mta predicts scalars, Cartesian vectors (rank 1), "
            "stresses and spherical tensors only, not other higher-rank Cartesian "
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


RANK_1_KEYS = ["o3_lambda", "o3_sigma"]
RANK_2_KEYS = ["o3_lambda_1", "o3_lambda_2", "o3_sigma_1", "o3_sigma_2"]
BASIS_KEYS = RANK_1_KEYS + ["atom_type"]


def _spherical_target(name: str, info: TargetInfo) -> Target:
    keys = info.layout.keys
    if keys.names in (BASIS_KEYS, RANK_2_KEYS + ["atom_type"]):
        return _atomic_basis_target(name, info)
    if keys.names not in (RANK_1_KEYS, RANK_2_KEYS):
        raise ValueError(
            f"target '{name}': pet_mta predicts spherical targets with keys "
            f"{RANK_1_KEYS}, {RANK_2_KEYS} (products), each + ['atom_type'] (atomic "
            f"basis), not {keys.names}"
        )
    rank = len(keys.names) // 2
    properties = [block.properties for block in info.layout.blocks()]
    counts = property_counts(len(properties[0]), rank)
    expected = spherical_properties(counts, torch.device("cpu"))
    if any(p != expected for p in properties):
        raise ValueError(
            f"target '{name}': pet_mta needs the same properties in every block, "
            f"labelled {expected.names} (coupled products of irreps, whose blocks "
            "have their own properties, are not supported)"
        )
    return Target(
        name=name,
        kind="spherical",
        unit=info.unit,
        quantity=info.quantity,
        n_properties=len(properties[0]),
        description=info.description,
        irreps=[tuple(key) for key in keys.values.tolist()],
    )


def _atomic_basis_target(name: str, info: TargetInfo) -> Target:
    names = ["n"] if info.layout.keys.names == BASIS_KEYS else ["n_1", "n_2"]
    basis = []
    for key, block in info.layout.items():
        properties = block.properties
        valid = properties.names == names and len(properties) > 0
        if valid:
            counts = [int(properties.column(n).max()) + 1 for n in names]
            valid = properties == spherical_properties(counts, torch.device("cpu"))
        if not valid:
            raise ValueError(
                f"target '{name}': pet_mta needs the properties of block {key} "
                f"labelled {names}, all values from 0 (metatrain's layout)"
            )
        values = key.values.tolist()
        basis.append((values[-1], *values[:-1], *counts))
    return Target(
        name=name,
        kind="atomic_basis",
        unit=info.unit,
        quantity=info.quantity,
        description=info.description,
        basis=tuple(basis),
    )


def flat_values(tensor: TensorMap, target: Target) -> torch.Tensor:
    """The values of a target ``TensorMap`` as ``[n_samples, n_values]``, in the
    column order of the model's atomic values (blocks in ``target.irreps`` order,
    components then properties); for an atomic-basis target, every value of every
    block as one row ``[1, n_values]`` (its blocks have atoms of one type each)."""
    if target.kind == "atomic_basis":
        return torch.cat([b.values.reshape(-1) for b in tensor.blocks()]).reshape(1, -1)
    if target.kind != "spherical":
        values = tensor.block().values
        return values.reshape(values.shape[0], -1)
    blocks = []
    for key in target.irreps:
        values = tensor.block(dict(zip(target.key_names, key))).values
        blocks.append(values.reshape(values.shape[0], -1))
    return torch.cat(blocks, dim=1)


def targets_from_infos(infos: Dict[str, TargetInfo]) -> List[Target]:
    """:func:`target_from_info` for every target, in order."""
    return [target_from_info(name, info) for name, info in infos.items()]
