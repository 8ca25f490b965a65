"""Compute only the sequences that the selected atoms' outputs depend on.

The read-outs of atom ``i`` use the central and edge tokens of ``i``'s own sequence
(of the last GNN layer, or of every layer with the residual featurizer). The edge
``i -> j`` of layer ``l`` receives the output of edge ``j -> i`` of layer ``l - 1``,
so layer ``l - 1`` must compute the sequences of ``i``'s neighbours too, and so on:

``needed[L - 1] = selected``, ``needed[l - 1] = needed[l] + neighbours(needed[l])``.

A layer whose needed set is a strict subset of the atoms runs on those sequences only
(:class:`AtomSubset`); the rows of the next, smaller subset are gathered from its
outputs, and the read-outs run on the selected atoms only.
"""

from typing import List

import torch

from .chunks import AtomChunk, split_atoms
from .graph import EdgeGraph


class AtomSubset:
    """The sequences of some atoms of an :class:`EdgeGraph`, as a graph of their own.

    ``atoms`` and ``edges`` are sorted, so rows are found by binary search.

    ``graph`` has the subset's ``n`` atoms and ``e`` edges (all the edges of those
    atoms, still sorted by centre) with local ``centers``, ``token_atom``,
    ``token_slot`` and ``edge_offsets``; its ``neighbors`` and ``reverse`` still
    index the full graph (message passing looks its rows up with them).
    """

    def __init__(
        self,
        atoms: torch.Tensor,
        edges: torch.Tensor,
        graph: EdgeGraph,
        chunks: List[AtomChunk],
    ):
        self.atoms = atoms  # [n] index of every subset atom in the full graph
        self.edges = edges  # [e] index of every subset edge in the full graph
        self.graph = graph  # the subset as a graph (see the class docstring)
        # the subset split as in :func:`split_atoms`, with the log cutoff weights
        # of its sequences (T' = longest + 1 slots)
        self.chunks = chunks

    def atom_rows(self, atoms: torch.Tensor) -> torch.Tensor:
        """Rows in this subset of ``atoms`` (full-graph indices of subset atoms)."""
        return torch.searchsorted(self.atoms, atoms)

    def edge_rows(self, edges: torch.Tensor) -> torch.Tensor:
        """Rows in this subset of ``edges`` (full-graph indices of subset edges)."""
        return torch.searchsorted(self.edges, edges)


def needed_atoms(
    graph: EdgeGraph, selected: torch.Tensor, n_layers: int
) -> List[torch.Tensor]:
    """Atoms whose sequences every layer must compute for the ``selected`` outputs.

    :param selected: ``[M]`` index of the reported atoms in the graph
    :return: per layer, a ``[N]`` boolean mask (the last one marks ``selected``)
    """
    needed = torch.zeros(
        graph.species.shape[0], dtype=torch.bool, device=graph.species.device
    )
    needed[selected] = True
    masks: List[torch.Tensor] = [needed]
    for _ in range(n_layers - 1):
        reached = graph.neighbors[needed[graph.centers]]
        needed = needed.clone()
        needed[reached] = True
        masks.append(needed)
    masks.reverse()
    return masks


def make_subset(
    graph: EdgeGraph, key_bias: torch.Tensor, mask: torch.Tensor, budget: int
) -> AtomSubset:
    """The sequences of the atoms in ``mask`` (``[N]`` booleans) as an
    :class:`AtomSubset`, split into chunks of ``budget`` padded tokens.

    :param key_bias: ``[N, T]`` log cutoff weights of the full graph
    """
    n_total = graph.species.shape[0]
    atoms = torch.nonzero(mask).flatten()
    edges = torch.nonzero(mask[graph.centers]).flatten()
    local = torch.cumsum(mask.to(torch.long), 0) - 1  # [N] full -> subset index
    n_atoms = atoms.shape[0]
    centers = local[graph.centers[edges]]
    counts = torch.bincount(centers, minlength=n_atoms)
    max_tokens = int(torch.max(counts)) + 1 if n_atoms > 0 else 1
    offsets = torch.cumsum(counts, 0)
    subgraph = EdgeGraph(
        species=graph.species[atoms],
        system_index=graph.system_index[atoms],
        vectors=graph.vectors.index_select(0, edges),
        distances=graph.distances.index_select(0, edges),
        centers=centers,
        neighbors=graph.neighbors[edges],
        reverse=graph.reverse[edges],
        token_atom=torch.cat([torch.arange(n_atoms, device=atoms.device), centers]),
        # an atom keeps all its edges, so every token keeps its slot
        token_slot=torch.cat(
            [graph.token_slot[atoms], graph.token_slot[n_total + edges]]
        ),
        max_tokens=max_tokens,
        edge_offsets=torch.cat(
            [torch.zeros(1, dtype=offsets.dtype, device=offsets.device), offsets]
        ),
    )
    sub_bias = key_bias.index_select(0, atoms)[:, :max_tokens]
    return AtomSubset(atoms, edges, subgraph, split_atoms(subgraph, sub_bias, budget))


def trimmed_subsets(
    graph: EdgeGraph,
    key_bias: torch.Tensor,
    selected: torch.Tensor,
    n_layers: int,
    budget: int,
) -> List[AtomSubset]:
    """Per layer, the :class:`AtomSubset` to compute (the first layers may need all
    atoms); an empty list when every atom is selected (nothing to trim).

    :param selected: ``[M]`` index of the reported atoms in the graph
    """
    masks = needed_atoms(graph, selected, n_layers)
    if bool(torch.all(masks[-1])):
        return []
    return [make_subset(graph, key_bias, mask, budget) for mask in masks]
