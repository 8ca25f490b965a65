"""Systems seen by the backbone: rotated copies, cut-out receptive fields, and
rotating predictions back.

A frame is a ``3 x 3`` orthogonal matrix ``F`` whose columns are the frame axes;
coordinates in the frame are the row vectors ``x F``. Rotation does not change which
pairs are neighbours, so the neighbour lists of a rotated copy are the original ones
with rotated vectors. Everything is TorchScript-compatible and differentiable with
respect to positions, cell and frames.
"""

from typing import List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import NeighborListOptions, System

# the TorchScript kernel behind metatomic.torch.o3.O3Transformations.transform_*:
# O3Transformations itself stores fixed matrices, while ECSE frames depend on the
# positions (and must carry gradients), so the kernel is called with them directly
from metatomic.torch.o3._transformations import _transform_tensormap_batched

from .spherical import WignerMatrices, wigner_for


def transform_tensormap(
    tensor: TensorMap,
    matrices: torch.Tensor,
    wigner: Optional[List[torch.Tensor]] = None,
) -> TensorMap:
    """Apply ``matrices[c]`` to every Cartesian axis of the rows of system ``c``.

    Scalars are unchanged, vectors ``v -> M v``, rank-2 tensors ``T -> M T M^T`` (one
    factor per ``xyz`` component axis); spherical (``o3_mu``) axes need the
    ``wigner`` matrices of :func:`.spherical.wigner_for`.

    :param matrices: ``[n_systems, 3, 3]``, one per system label ``0..n-1``
    """
    improper = torch.linalg.det(matrices.detach()) < 0
    blocks: List[torch.Tensor] = []
    if wigner is not None:
        blocks = wigner
    return _transform_tensormap_batched(tensor, matrices, blocks, improper, None)


def rotate_back(
    prediction: TensorMap, frames: torch.Tensor, wigner: WignerMatrices
) -> TensorMap:
    """Predictions on copies seen in ``frames``, back in the original orientation.

    Copy ``c`` (system label ``c`` of ``prediction``) had positions ``x F_c``; its
    outputs are rotated back by ``F_c`` (:func:`transform_tensormap`) in float64.
    This is the one place where ECSE needs to know how an output transforms.

    :param frames: ``[n_copies, 3, 3]``, columns = frame axes
    """
    prediction = prediction.to(dtype=torch.float64)
    return transform_tensormap(
        prediction, frames, wigner_for(prediction, frames, wigner)
    )


def rotated_copy(
    system: System, frame: torch.Tensor, options: List[NeighborListOptions]
) -> System:
    """``system`` expressed in ``frame`` (positions, cell, neighbour vectors, data).

    :param frame: ``[3, 3]`` orthogonal matrix, columns = frame axes
    :param options: the neighbour lists to carry over (must exist in ``system``)
    """
    # rotated in the frame's dtype (float64 in ECSE), then cast back
    dtype = system.positions.dtype
    copy = System(
        types=system.types,
        positions=(system.positions.to(frame.dtype) @ frame).to(dtype),
        cell=(system.cell.to(frame.dtype) @ frame).to(dtype),
        pbc=system.pbc,
    )
    for option in options:
        nl = system.get_neighbor_list(option)
        values = torch.einsum("pxo,xy->pyo", nl.values.to(frame.dtype), frame)
        values = values.to(dtype)
        copy.add_neighbor_list(
            option, TensorBlock(values, nl.samples, nl.components, nl.properties)
        )
    for name in system.known_data():
        data = system.get_data(name)
        matrix = frame.T.unsqueeze(0).to(data.block_by_id(0).values.dtype)
        copy.add_data(name, transform_tensormap(data, matrix))
    return copy


class Cluster:
    """The receptive field of one atom, cut out of its system (non-periodic).

    Atom 0 is the centre, at the origin; positions of the others are their
    (minimum-image or periodic-image) vectors from the centre.
    """

    def __init__(
        self,
        types: torch.Tensor,
        positions: torch.Tensor,
        pairs: List[torch.Tensor],
        samples: List[Labels],
    ):
        self.types = types  # [M]
        self.positions = positions  # [M, 3]
        self.pairs = pairs  # per neighbour list: [P, 2] (first, second) atom
        self.samples = samples  # per neighbour list: sample labels of the pairs


def cut_out(
    types: torch.Tensor,
    center_type: torch.Tensor,
    neighbor_types: torch.Tensor,
    vectors: torch.Tensor,
    options: List[NeighborListOptions],
) -> Cluster:
    """Build the cluster of one centre and the backbone's neighbour pairs in it.

    :param center_type: atomic type of the centre (0-d)
    :param neighbor_types: ``[n]`` types of the atoms in the receptive field
    :param vectors: ``[n, 3]`` their vectors from the centre
    :param options: the backbone's neighbour lists (pairs are found by distance)
    """
    positions = torch.cat(
        [torch.zeros((1, 3), dtype=vectors.dtype, device=vectors.device), vectors]
    )
    cluster_types = torch.cat([center_type.reshape(1), neighbor_types])
    n = positions.shape[0]
    detached = positions.detach()
    distances = torch.cdist(detached, detached)
    index = torch.arange(n, device=vectors.device)
    pairs: List[torch.Tensor] = []
    samples: List[Labels] = []
    for option in options:
        close = (distances < option.cutoff) & (index[:, None] != index[None, :])
        if not option.full_list:
            close = close & (index[:, None] < index[None, :])
        pair = torch.nonzero(close)
        pairs.append(pair)
        zeros = torch.zeros((pair.shape[0], 3), dtype=torch.int32, device=pair.device)
        samples.append(
            Labels(
                [
                    "first_atom",
                    "second_atom",
                    "cell_shift_a",
                    "cell_shift_b",
                    "cell_shift_c",
                ],
                torch.cat([pair.to(torch.int32), zeros], dim=1),
            )
        )
    return Cluster(cluster_types, positions, pairs, samples)


def rotated_cluster(
    cluster: Cluster, frame: torch.Tensor, options: List[NeighborListOptions]
) -> System:
    """The cut-out ``cluster`` expressed in ``frame``, with its neighbour lists."""
    dtype = cluster.positions.dtype
    positions = (cluster.positions.to(frame.dtype) @ frame).to(dtype)
    system = System(
        types=cluster.types,
        positions=positions,
        cell=torch.zeros((3, 3), dtype=positions.dtype, device=positions.device),
        pbc=torch.zeros(3, dtype=torch.bool, device=positions.device),
    )
    components = [
        Labels(
            ["xyz"],
            torch.arange(3, dtype=torch.int32, device=positions.device)[:, None],
        )
    ]
    properties = Labels(
        ["distance"], torch.zeros((1, 1), dtype=torch.int32, device=positions.device)
    )
    for k, option in enumerate(options):
        pair = cluster.pairs[k]
        values = positions[pair[:, 1]] - positions[pair[:, 0]]
        system.add_neighbor_list(
            option,
            TensorBlock(
                values.unsqueeze(-1), cluster.samples[k], components, properties
            ),
        )
    return system
