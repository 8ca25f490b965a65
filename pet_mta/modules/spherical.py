"""Atomic values of a spherical target -> one ``TensorMap`` block per irrep.

PET is not equivariant: a spherical target is predicted as ``sum_b (2 lambda_b + 1)
* n_properties`` unconstrained numbers per atom (the head's last linear layer has
one row per component of every irrep). Rotational symmetry is learned from the
augmented data, or imposed exactly by the ECSE wrapper (:mod:`pet_mta.wrappers.ecse`).
"""

from typing import List

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap

from .tensormaps import reduce_samples


def spherical_tensormap(
    values: torch.Tensor,
    system_index: torch.Tensor,
    atom_index: torch.Tensor,
    n_systems: int,
    per_atom: bool,
    irreps: List[List[int]],
    properties: Labels,
) -> TensorMap:
    """Split atomic ``values`` into the blocks of a spherical ``TensorMap``.

    :param values: ``[n_selected, n_properties * sum_b (2 lambda_b + 1)]``: block
        ``b`` occupies the next ``(2 lambda_b + 1) * n_properties`` columns,
        component-major (``o3_mu = -lambda .. lambda``), property-minor
    :param system_index: ``[n_selected]`` system of every selected atom
    :param atom_index: ``[n_selected]`` index of every selected atom in its system
    :param per_atom: keep atoms as samples, or sum them per system
    :param irreps: ``[o3_lambda, o3_sigma]`` of every block, in order
    :param properties: the ``n_properties`` property labels shared by all blocks
    :return: keys ``["o3_lambda", "o3_sigma"]``, components ``[Labels(["o3_mu"])]``,
        values ``[n_samples, 2 lambda + 1, n_properties]``
    """
    device = values.device
    values, samples = reduce_samples(
        values, system_index, atom_index, n_systems, per_atom
    )
    n_properties = len(properties)
    blocks: List[TensorBlock] = []
    offset = 0
    for irrep in irreps:
        o3_lambda = irrep[0]
        size = 2 * o3_lambda + 1
        block_values = values[:, offset : offset + size * n_properties]
        offset += size * n_properties
        mu = torch.arange(-o3_lambda, o3_lambda + 1, dtype=torch.int32, device=device)
        blocks.append(
            TensorBlock(
                values=block_values.reshape(values.shape[0], size, n_properties),
                samples=samples,
                components=[Labels(["o3_mu"], mu.reshape(-1, 1))],
                properties=properties.to(device),
            )
        )
    keys = Labels(
        ["o3_lambda", "o3_sigma"],
        torch.tensor(irreps, dtype=torch.int32, device=device).reshape(-1, 2),
    )
    return TensorMap(keys, blocks)
