"""Turn metatomic systems and their neighbour lists into one batched edge graph.

Every atom ``i`` owns a token sequence: slot 0 is the atom itself (the central token),
slots ``1..n_i`` are its edges ``i -> j`` sorted by neighbour. Tokens are stored
*packed* (no padding) for all dense layers; :attr:`EdgeGraph.token_atom` and
:attr:`EdgeGraph.token_slot` place each packed token in an ``[n_atoms, max_tokens]``
grid for the attention products only.
"""

from typing import List

import torch
from metatomic.torch import NeighborListOptions, System

from ..neighbors import check_finite_geometry


class EdgeGraph:
    """All systems of a batch as one graph, edges sorted by centre atom.

    Shapes use ``N`` atoms (all systems), ``E`` edges, ``T`` = 1 + largest number of
    neighbours of any atom.
    """

    def __init__(
        self,
        species: torch.Tensor,
        system_index: torch.Tensor,
        vectors: torch.Tensor,
        distances: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        reverse: torch.Tensor,
        token_atom: torch.Tensor,
        token_slot: torch.Tensor,
        max_tokens: int,
        edge_offsets: torch.Tensor,
    ):
        self.species = species  # [N] index into the model's atomic types
        self.system_index = system_index  # [N] which system each atom belongs to
        self.vectors = vectors  # [E, 3] r_j - r_i + shift @ cell, length unit
        self.distances = distances  # [E] |vectors|
        self.centers = centers  # [E] i
        self.neighbors = neighbors  # [E] j
        self.reverse = reverse  # [E] index of the edge j -> i, -1 if absent
        self.token_atom = token_atom  # [N + E] packed token -> its atom (sequence)
        self.token_slot = token_slot  # [N + E] packed token -> slot in the sequence
        self.max_tokens = max_tokens  # T
        self.edge_offsets = edge_offsets  # [N + 1] edges of atom i: [off[i], off[i+1])


def build_edge_graph(
    systems: List[System],
    options: NeighborListOptions,
    type_to_index: torch.Tensor,
    cutoff: float,
    min_distance: float,
) -> EdgeGraph:
    """Collect atoms and edges of ``systems`` into an :class:`EdgeGraph`.

    :param systems: systems carrying the neighbour list described by ``options``
    :param type_to_index: ``[max_type + 1]`` map atomic number -> species index, -1
        for species the model does not know
    :param cutoff: edges at ``r >= cutoff`` are dropped (non-strict lists)
    :param min_distance: two atoms closer than this raise an error
    :raises ValueError: unknown species, non-finite positions or cell, overlapping
        atoms
    """
    device = type_to_index.device
    species_list: List[torch.Tensor] = []
    system_list: List[torch.Tensor] = []
    vector_list: List[torch.Tensor] = []
    center_list: List[torch.Tensor] = []
    neighbor_list: List[torch.Tensor] = []
    shift_list: List[torch.Tensor] = []
    offset = 0
    for s, system in enumerate(systems):
        check_finite_geometry(system.positions, system.cell, "system " + str(s))
        types = system.types
        n_atoms = types.shape[0]
        if n_atoms > 0:
            known = (types >= 0) & (types < type_to_index.shape[0])
            index = type_to_index[torch.where(known, types, torch.zeros_like(types))]
            index = torch.where(known, index, torch.full_like(index, -1))
            if bool(torch.any(index < 0)):
                unknown: List[int] = torch.unique(types[index < 0]).tolist()
                allowed: List[int] = (
                    torch.nonzero(type_to_index >= 0).flatten().tolist()
                )
                raise ValueError(
                    "system "
                    + str(s)
                    + " contains atomic types "
                    + str(unknown)
                    + " that this model does not know; it was trained for "
                    + str(allowed)
                )
            species_list.append(index)
        system_list.append(
            torch.full((n_atoms,), s, dtype=torch.long, device=types.device)
        )

        nl = system.get_neighbor_list(options)
        pairs = nl.samples.values
        # edge vectors from positions and cell, not from the list's values: they
        # stay differentiable (forces, stress, double backward for training) even
        # when the list was computed once, without gradients, and cached
        first = pairs[:, 0].to(torch.long)
        second = pairs[:, 1].to(torch.long)
        shifts = pairs[:, 2:5].to(system.positions.dtype)
        positions = system.positions
        vectors = positions[second] - positions[first] + shifts @ system.cell
        vector_list.append(vectors)
        center_list.append(pairs[:, 0].to(torch.long) + offset)
        neighbor_list.append(pairs[:, 1].to(torch.long) + offset)
        shift_list.append(pairs[:, 2:5].to(torch.long))
        offset += n_atoms

    n_total = offset
    if len(species_list) > 0:
        species = torch.cat(species_list)
    else:
        species = torch.zeros(0, dtype=torch.long, device=device)
    system_index = torch.cat(system_list).to(device)
    vectors = torch.cat(vector_list)
    centers = torch.cat(center_list)
    neighbors = torch.cat(neighbor_list)
    shifts = torch.cat(shift_list)

    distances = torch.linalg.vector_norm(vectors, dim=1)
    keep = distances < cutoff
    if not bool(torch.all(keep)):
        vectors = vectors[keep]
        distances = distances[keep]
        centers = centers[keep]
        neighbors = neighbors[keep]
        shifts = shifts[keep]

    if distances.shape[0] > 0 and bool(torch.any(distances < min_distance)):
        bad = int(torch.argmin(distances))
        raise ValueError(
            "atoms "
            + str(int(centers[bad]))
            + " and "
            + str(int(neighbors[bad]))
            + " (counting across the batch) are "
            + str(float(distances[bad]))
            + " apart, closer than the minimum distance "
            + str(min_distance)
            + ": overlapping atoms are not a valid structure"
        )

    # sort edges by (centre, neighbour, shift); find each edge's reverse by search
    n_edges = centers.shape[0]
    if n_edges > 0:
        bound = int(torch.max(torch.abs(shifts))) + 1
    else:
        bound = 1
    base = 2 * bound + 1
    key = _edge_key(centers, neighbors, shifts, bound, base, n_total)
    key, order = torch.sort(key)
    vectors = vectors[order]
    distances = distances[order]
    centers = centers[order]
    neighbors = neighbors[order]
    shifts = shifts[order]
    reverse_key = _edge_key(neighbors, centers, -shifts, bound, base, n_total)
    position = torch.searchsorted(key, reverse_key)
    position = position.clamp(max=max(n_edges - 1, 0))
    if n_edges > 0:
        found = key[position] == reverse_key
    else:
        found = torch.zeros(0, dtype=torch.bool, device=key.device)
    reverse = torch.where(found, position, torch.full_like(position, -1))

    counts = torch.bincount(centers, minlength=n_total)
    if n_total > 0:
        max_tokens = int(torch.max(counts)) + 1
    else:
        max_tokens = 1
    first_edge = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_edges, device=centers.device) - first_edge[centers] + 1
    atoms = torch.arange(n_total, device=centers.device)
    token_atom = torch.cat([atoms, centers])
    token_slot = torch.cat([torch.zeros_like(atoms), slot])

    return EdgeGraph(
        species=species,
        system_index=system_index,
        vectors=vectors,
        distances=distances,
        centers=centers,
        neighbors=neighbors,
        reverse=reverse,
        token_atom=token_atom,
        token_slot=token_slot,
        max_tokens=max_tokens,
        edge_offsets=torch.cat([first_edge, counts.sum().reshape(1)]),
    )


def _edge_key(
    first: torch.Tensor,
    second: torch.Tensor,
    shifts: torch.Tensor,
    bound: int,
    base: int,
    n_atoms: int,
) -> torch.Tensor:
    """A unique integer per (first, second, shift) triple, ordered by ``first``."""
    shifted = shifts + bound
    cell_code = (shifted[:, 0] * base + shifted[:, 1]) * base + shifted[:, 2]
    return (first * n_atoms + second) * (base * base * base) + cell_code
