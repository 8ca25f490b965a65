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


def property_counts(n_properties: int, rank: int) -> List[int]:
    """Properties per axis of a spherical target with ``n_properties`` per block:
    ``[n]`` (rank 1), or ``[n_1, n_2]``, both ``sqrt(n_properties)`` (rank 2)."""
    if rank == 1:
        return [n_properties]
    size = int(round(n_properties**0.5))
    return [size, size]


def spherical_properties(counts: List[int], device: torch.device) -> Labels:
    """metatrain's property labels: ``n = 0 .. counts[0] - 1`` (rank 1), or ``n_1,
    n_2`` over all pairs of ``counts[0]`` and ``counts[1]`` values, ``n_2`` fastest
    (rank 2, products of irreps)."""
    if len(counts) == 1:
        values = torch.arange(counts[0], dtype=torch.int32, device=device)
        return Labels(["n"], values.reshape(-1, 1))
    first = torch.arange(counts[0], dtype=torch.int32, device=device)
    second = torch.arange(counts[1], dtype=torch.int32, device=device)
    return Labels(
        ["n_1", "n_2"],
        torch.stack(
            [first.repeat_interleave(counts[1]), second.repeat(counts[0])], dim=1
        ),
    )


def spherical_tensormap(
    values: torch.Tensor,
    system_index: torch.Tensor,
    atom_index: torch.Tensor,
    n_systems: int,
    per_atom: bool,
    irreps: List[List[int]],
    counts: List[int],
) -> TensorMap:
    """Split atomic ``values`` into the blocks of a spherical ``TensorMap``.

    :param values: ``[n_selected, n_properties * sum_b size_b]``: block ``b`` occupies
        the next ``size_b * n_properties`` columns, components first (row-major),
        properties last; ``size_b = 2 lambda + 1``, or ``(2 lambda_1 + 1) (2 lambda_2
        + 1)`` for a product of two irreps
    :param system_index: ``[n_selected]`` system of every selected atom
    :param atom_index: ``[n_selected]`` index of every selected atom in its system
    :param per_atom: keep atoms as samples, or sum them per system
    :param irreps: the key of every block, in order: ``[o3_lambda, o3_sigma]``, or
        ``[o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2]`` (rank 2)
    :param counts: properties of every block per axis, ``[n]`` or ``[n_1, n_2]``
        (``n_properties`` their product, see :func:`spherical_properties`)
    :return: keys ``["o3_lambda", "o3_sigma"]`` and components ``[o3_mu]``, values
        ``[n_samples, 2 lambda + 1, n_properties]``; for rank 2 keys ``o3_lambda_1,
        o3_lambda_2, o3_sigma_1, o3_sigma_2`` and components ``[o3_mu_1, o3_mu_2]``
    """
    device = values.device
    values, samples = reduce_samples(
        values, system_index, atom_index, n_systems, per_atom
    )
    rank = len(irreps[0]) // 2
    properties = spherical_properties(counts, device)
    n_properties = len(properties)
    if rank == 1:
        key_names = ["o3_lambda", "o3_sigma"]
        mu_names = ["o3_mu"]
    else:
        key_names = ["o3_lambda_1", "o3_lambda_2", "o3_sigma_1", "o3_sigma_2"]
        mu_names = ["o3_mu_1", "o3_mu_2"]
    blocks: List[TensorBlock] = []
    offset = 0
    for irrep in irreps:
        shape: List[int] = [values.shape[0]]
        components: List[Labels] = []
        size = 1
        for axis in range(rank):
            o3_lambda = irrep[axis]
            mu = torch.arange(
                -o3_lambda, o3_lambda + 1, dtype=torch.int32, device=device
            )
            components.append(Labels([mu_names[axis]], mu.reshape(-1, 1)))
            shape.append(2 * o3_lambda + 1)
            size *= 2 * o3_lambda + 1
        shape.append(n_properties)
        block_values = values[:, offset : offset + size * n_properties]
        offset += size * n_properties
        blocks.append(
            TensorBlock(
                values=block_values.reshape(shape),
                samples=samples,
                components=components,
                properties=properties,
            )
        )
    keys = Labels(
        key_names,
        torch.tensor(irreps, dtype=torch.int32, device=device).reshape(
            -1, len(key_names)
        ),
    )
    return TensorMap(keys, blocks)


def atomic_basis_tensormap(
    values: torch.Tensor,
    system_index: torch.Tensor,
    atom_index: torch.Tensor,
    species: torch.Tensor,
    n_systems: int,
    per_atom: bool,
    basis: List[List[int]],
) -> TensorMap:
    """Split atomic ``values`` into the blocks of a spherical target in an atomic
    basis (keys ``o3_lambda, o3_sigma, atom_type``, or ``o3_lambda_1, o3_lambda_2,
    o3_sigma_1, o3_sigma_2, atom_type`` for products of two irreps): each block
    holds the atoms of its type only.

    :param values: ``[n_selected, n_values]``; an atom of a type uses the columns
        of its own blocks, see :attr:`pet_mta.targets.Target.basis_columns`
    :param system_index: ``[n_selected]`` system of every selected atom
    :param atom_index: ``[n_selected]`` index of every selected atom in its system
    :param species: ``[n_selected]`` species index of every selected atom
    :param per_atom: keep atoms as samples, or sum them per system
    :param basis: one ``[*key, atom_type, *n, first column, species index]`` row
        per block (``Target.basis_columns``; species index -1 for a type the model
        does not know: an empty block)
    :return: the blocks of :func:`spherical_tensormap`, one per row
    """
    blocks: List[TensorBlock] = []
    keys: List[List[int]] = []
    names: List[str] = []
    rank = (len(basis[0]) - 3) // 3
    for row in basis:
        key = row[: 2 * rank]
        counts = row[2 * rank + 1 : 3 * rank + 1]
        offset, index = row[3 * rank + 1], row[3 * rank + 2]
        atoms = torch.nonzero(species == index).reshape(-1)
        # the block's columns come first: spherical_tensormap takes as many as needed
        single = spherical_tensormap(
            values.index_select(0, atoms)[:, offset:],
            system_index.index_select(0, atoms),
            atom_index.index_select(0, atoms),
            n_systems,
            per_atom,
            [key],
            counts,
        )
        block = single.block(0)
        names = single.keys.names
        blocks.append(
            TensorBlock(block.values, block.samples, block.components, block.properties)
        )
        keys.append(key + [row[2 * rank]])
    labels = Labels(
        names + ["atom_type"],
        torch.tensor(keys, dtype=torch.int32, device=values.device).reshape(
            -1, 2 * rank + 1
        ),
    )
    return TensorMap(labels, blocks)
