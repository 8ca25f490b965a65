"""Per-atom tensors -> metatensor ``TensorMap`` outputs (per atom or per system)."""

from typing import List, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap


def atom_samples(system_index: torch.Tensor, atom_index: torch.Tensor) -> Labels:
    """``["system", "atom"]`` sample labels."""
    return Labels(
        ["system", "atom"],
        torch.stack([system_index, atom_index], dim=1).to(torch.int32),
    )


def reduce_samples(
    values: torch.Tensor,
    system_index: torch.Tensor,
    atom_index: torch.Tensor,
    n_systems: int,
    per_atom: bool,
) -> Tuple[torch.Tensor, Labels]:
    """Atomic ``values`` ``[n_selected, ...]`` kept per atom (``["system", "atom"]``
    samples) or summed per system (``["system"]``, ``n_systems`` rows)."""
    if per_atom:
        return values, atom_samples(system_index, atom_index)
    device = values.device
    summed = torch.zeros(
        (n_systems, values.shape[1]), dtype=values.dtype, device=device
    )
    samples = Labels(
        ["system"],
        torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1),
    )
    return summed.index_add(0, system_index, values), samples


def make_tensormap(
    values: torch.Tensor,
    system_index: torch.Tensor,
    atom_index: torch.Tensor,
    n_systems: int,
    per_atom: bool,
    n_components: int,
    properties: Labels,
) -> TensorMap:
    """Build a single-block ``TensorMap`` from atomic ``values``.

    :param values: ``[n_selected, n_components * n_properties]`` atomic values
    :param system_index: ``[n_selected]`` system of every selected atom
    :param atom_index: ``[n_selected]`` index of every selected atom in its system
    :param per_atom: keep atoms as samples, or sum them into ``n_systems`` samples
    :param n_components: 1 for scalars, 3 for Cartesian vectors (component ``xyz``),
        9 for 3x3 matrices (components ``xyz_1, xyz_2``, row-major)
    """
    device = values.device
    values, samples = reduce_samples(
        values, system_index, atom_index, n_systems, per_atom
    )
    components: List[Labels] = []
    xyz = torch.arange(3, dtype=torch.int32, device=device)[:, None]
    if n_components == 3:
        values = values.reshape(values.shape[0], 3, -1)
        components.append(Labels(["xyz"], xyz))
    elif n_components == 9:
        values = values.reshape(values.shape[0], 3, 3, -1)
        components.append(Labels(["xyz_1"], xyz))
        components.append(Labels(["xyz_2"], xyz))
    block = TensorBlock(
        values=values,
        samples=samples,
        components=components,
        properties=properties.to(device),
    )
    keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
    return TensorMap(keys, [block])


def feature_labels(size: int) -> Labels:
    """``["feature"]`` property labels ``0 .. size - 1``."""
    return Labels(["feature"], torch.arange(size, dtype=torch.int32).reshape(-1, 1))
