"""Systems seen by the backbone: rotated copies, cut-out receptive fields, and
rotating predictions back.

A frame is a ``3 x 3`` orthogonal matrix ``F`` whose columns are the frame axes;
coordinates in the frame are the row vectors ``x F``. Rotation does not change which
pairs are neighbours, so the neighbour lists of a rotated copy are the original ones
with rotated vectors. Everything is TorchScript-compatible and differentiable with
respect to positions, cell and frames.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import NeighborListOptions, System

# the TorchScript kernel behind metatomic.torch.o3.O3Transformations.transform_*:
# O3Transformations itself stores fixed matrices, while ECSE frames depend on the
# positions (and must carry gradients), so the kernel is called with them directly
from metatomic.torch.o3._transformations import _transform_tensormap_batched

from ...neighbors import neighbor_list_block
from ...stacked import is_pet
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
    (minimum-image or periodic-image) vectors from the centre. Rotating the cluster
    does not change which pairs are neighbours: every rotated copy shares ``pairs``.
    """

    def __init__(
        self,
        types: torch.Tensor,
        positions: torch.Tensor,
        pairs: List[torch.Tensor],
    ):
        self.types = types  # [M]
        self.positions = positions  # [M, 3]
        self.pairs = pairs  # per neighbour list: [P, 2] (first, second) atom


def message_passing_reach(options: List[NeighborListOptions], radius: float) -> float:
    """How far from the centre the pairs of a cut-out cluster matter.

    With a single neighbour list of cutoff ``r_c`` and an interaction range
    ``radius >= 2 r_c``, the backbone reaches beyond one cutoff by message passing
    (metatomic's ``interaction_range``: the cutoff times the number of steps): the
    centre's output after ``L`` steps reads pairs of atoms within ``L - 1`` hops of
    it only, all closer than ``radius - r_c``. Otherwise every pair may matter.

    :return: ``radius - r_c`` (plus ``1e-6 radius``: distances here and in the
        neighbour lists may differ by round-off, and an extra pair is harmless),
        or infinity (keep every pair)
    """
    if len(options) == 1 and radius >= 2.0 * options[0].cutoff:
        return radius - options[0].cutoff + 1e-6 * radius
    return float("inf")


def cluster_reach(
    backbone: torch.nn.Module, options: List[NeighborListOptions], radius: float
) -> float:
    """:func:`message_passing_reach` for a pet_mta PET (Python or TorchScript),
    whose interaction range is its message-passing reach; infinity (keep every
    pair) for any other backbone, whose range may mean something else."""
    if not is_pet(backbone):
        return float("inf")
    return message_passing_reach(options, radius)


def cut_out(
    center_type: torch.Tensor,
    neighbor_types: torch.Tensor,
    vectors: torch.Tensor,
    options: List[NeighborListOptions],
    reach: float,
) -> Cluster:
    """Build the cluster of one centre and the backbone's neighbour pairs in it.

    Pairs with both atoms at ``reach`` or farther from the centre are left out (see
    :func:`message_passing_reach`), and so are the atoms left without a pair.

    :param center_type: atomic type of the centre (0-d)
    :param neighbor_types: ``[n]`` types of the atoms in the receptive field
    :param vectors: ``[n, 3]`` their vectors from the centre
    :param options: the backbone's neighbour lists (pairs are found by distance)
    :param reach: distance from the centre beyond which pairs do not matter
    """
    positions = torch.cat(
        [torch.zeros((1, 3), dtype=vectors.dtype, device=vectors.device), vectors]
    )
    cluster_types = torch.cat([center_type.reshape(1), neighbor_types])
    n = positions.shape[0]
    detached = positions.detach()
    distances = torch.cdist(detached, detached)
    index = torch.arange(n, device=vectors.device)
    near = distances[0] < reach
    pairs: List[torch.Tensor] = []
    used = index == 0
    for option in options:
        close = (distances < option.cutoff) & (index[:, None] != index[None, :])
        close = close & (near[:, None] | near[None, :])
        if not option.full_list:
            close = close & (index[:, None] < index[None, :])
        pair = torch.nonzero(close)
        used[pair.flatten()] = True
        pairs.append(pair)
    if bool(torch.all(used)):
        return Cluster(cluster_types, positions, pairs)
    kept = torch.nonzero(used).flatten()
    renumber = torch.cumsum(used.to(torch.long), 0) - 1
    for k in range(len(pairs)):
        pairs[k] = renumber[pairs[k]]
    return Cluster(cluster_types[kept], positions[kept], pairs)


def rotated_copies(
    clusters: Dict[int, Cluster],
    rows: torch.Tensor,
    frames: torch.Tensor,
    options: List[NeighborListOptions],
) -> Tuple[System, torch.Tensor]:
    """Copies of cut-out clusters, each expressed in its frame, as one system.

    Copy ``c`` is ``clusters[rows[c]]`` with positions ``x F_c``; every run of
    copies of one cluster is rotated by one product. The copies overlap in space
    but share no neighbour pair: the backbone, which reads its neighbours from its lists
    (metatomic's contract), sees them as disjoint (one system instead of one per
    copy: no per-copy overhead in the backbone).

    :param rows: ``[n_copies]`` cluster of every copy
    :param frames: ``[n_copies, 3, 3]`` orthogonal matrices, columns = frame axes
    :return: the system and ``[n_copies]`` index of every copy's centre in it
    """
    device = frames.device
    dtype = clusters[int(rows[0])].positions.dtype
    unique, counts = torch.unique_consecutive(rows, return_counts=True)
    types: List[torch.Tensor] = []
    positions: List[torch.Tensor] = []
    pair_lists: List[List[torch.Tensor]] = []
    for _ in options:
        pair_lists.append([])
    starts: List[torch.Tensor] = []
    offset = 0
    first = 0
    run_rows: List[int] = unique.tolist()
    run_counts: List[int] = counts.tolist()
    for row, count in zip(run_rows, run_counts):
        cluster = clusters[row]
        size = cluster.types.shape[0]
        rotated = torch.einsum(
            "ax,cxy->cay",
            cluster.positions.to(frames.dtype),
            frames[first : first + count],
        )
        positions.append(rotated.reshape(-1, 3).to(dtype))
        types.append(cluster.types.repeat(count))
        shifts = offset + size * torch.arange(count, device=device)
        starts.append(shifts)
        for k in range(len(options)):
            pairs = cluster.pairs[k][None, :, :] + shifts[:, None, None]
            pair_lists[k].append(pairs.reshape(-1, 2))
        offset += size * count
        first += count
    all_positions = torch.cat(positions)
    system = System(
        types=torch.cat(types),
        positions=all_positions,
        cell=torch.zeros((3, 3), dtype=dtype, device=device),
        pbc=torch.zeros(3, dtype=torch.bool, device=device),
    )
    for k, option in enumerate(options):
        pairs = torch.cat(pair_lists[k])
        values = all_positions[pairs[:, 1]] - all_positions[pairs[:, 0]]
        no_shift = torch.zeros((pairs.shape[0], 3), dtype=pairs.dtype, device=device)
        system.add_neighbor_list(
            option, neighbor_list_block(torch.cat([pairs, no_shift], dim=1), values)
        )
    return system, torch.cat(starts)


def by_copy(prediction: TensorMap, centres: torch.Tensor) -> TensorMap:
    """Per-atom ``prediction`` on the system of :func:`rotated_copies`, relabelled
    as one system per copy (sample ``(system=c, atom=0)`` for copy ``c``).

    :param centres: ``[n_copies]`` index of every copy's centre (increasing)
    """
    blocks: List[TensorBlock] = []
    for block in prediction.blocks():
        atom = block.samples.column("atom").to(centres.dtype)
        copy = torch.searchsorted(centres, atom)
        samples = Labels(
            ["system", "atom"],
            torch.stack([copy, torch.zeros_like(copy)], dim=1).to(torch.int32),
        )
        blocks.append(
            TensorBlock(block.values, samples, block.components, block.properties)
        )
    return TensorMap(prediction.keys, blocks)
