"""Compute only the sequences that the selected atoms' outputs depend on.

The read-outs of atom ``i`` use the central and edge tokens of ``i``'s own sequence
(of the last GNN layer, or of every layer with the residual featurizer). The edge
``i -> j`` of layer ``l`` receives the output of edge ``j -> i`` of layer ``l - 1``,
so layer ``l - 1`` must compute the sequences of ``i``'s neighbours too, and so on:

``needed[L - 1] = selected``, ``needed[l - 1] = needed[l] + neighbours(needed[l])``.

A layer whose needed set is a strict subset of the atoms runs on those sequences only
(:class:`AtomSubset`); the rows of the next, smaller subset are gathered from its
outputs, and the read-outs run on the selected atoms only.

Of the atoms in ``needed[l - 1]`` but not in ``needed[l]``, layer ``l`` reads only the
edges ``j -> i`` towards ``needed[l]``; of the others, the centre and those same
edges (and every token of the selected atoms with the residual featurizer, and
their own edges ``i -> j`` with the edge stream). The last
transformer block of layer ``l - 1`` computes those outputs only
(:func:`read_only`): its attention still takes every token as key and value.
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
        # the atoms and edges (full-graph indices, sorted) whose output tokens the
        # layer computes: every one, or those set by :func:`read_only`
        self.out_atoms = atoms
        self.out_edges = edges

    def atom_rows(self, atoms: torch.Tensor) -> torch.Tensor:
        """Rows in this subset of ``atoms`` (full-graph indices of subset atoms)."""
        return torch.searchsorted(self.atoms, atoms)

    def edge_rows(self, edges: torch.Tensor) -> torch.Tensor:
        """Rows in this subset of ``edges`` (full-graph indices of subset edges)."""
        return torch.searchsorted(self.edges, edges)

    def out_atom_rows(self, atoms: torch.Tensor) -> torch.Tensor:
        """Rows of ``atoms`` (full-graph indices) in the layer's central outputs."""
        return torch.searchsorted(self.out_atoms, atoms)

    def out_edge_rows(self, edges: torch.Tensor) -> torch.Tensor:
        """Rows of ``edges`` (full-graph indices) in the layer's edge outputs."""
        return torch.searchsorted(self.out_edges, edges)


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


def read_only(subset: AtomSubset, atoms: torch.Tensor, edges: torch.Tensor) -> None:
    """Let the last transformer block of ``subset``'s layer compute the outputs of
    ``atoms`` and ``edges`` only (``[a]``, ``[b]``: full-graph indices of subset
    atoms and edges, sorted, unique); nothing changes if that is all of them."""
    if atoms.shape[0] == subset.atoms.shape[0] and (
        edges.shape[0] == subset.edges.shape[0]
    ):
        return
    subset.out_atoms = atoms
    subset.out_edges = edges
    atom_mask = torch.zeros_like(subset.atoms, dtype=torch.bool)
    atom_mask[subset.atom_rows(atoms)] = True
    edge_mask = torch.zeros_like(subset.edges, dtype=torch.bool)
    edge_mask[subset.edge_rows(edges)] = True
    for chunk in subset.chunks:
        chunk.read_only(
            torch.cat(
                [
                    atom_mask[chunk.first_atom : chunk.stop_atom],
                    edge_mask[chunk.first_edge : chunk.stop_edge],
                ]
            )
        )


def read_edges(
    graph: EdgeGraph,
    following: AtomSubset,
    last: AtomSubset,
    every_layer: bool,
    own_edges: bool = False,
) -> torch.Tensor:
    """Sorted full-graph indices ``[b]`` of the edges whose output tokens the layer
    before ``following`` must give: the reverses of ``following``'s edges (an edge
    without a reverse stands for itself: its message is not read), ``last``'s edges
    if the read-outs read ``every_layer``, and ``following``'s edges themselves
    with ``own_edges`` (the edge stream reads them)."""
    edges = following.edges
    reverse = graph.reverse.index_select(0, edges)
    wanted = [torch.where(reverse >= 0, reverse, edges)]
    if every_layer:
        wanted.append(last.edges)
    if own_edges:
        wanted.append(edges)
    return torch.unique(torch.cat(wanted))


def trimmed_subsets(
    graph: EdgeGraph,
    key_bias: torch.Tensor,
    selected: torch.Tensor,
    n_layers: int,
    budget: int,
    every_layer: bool = False,
    queries: bool = True,
    own_edges: bool = False,
) -> List[AtomSubset]:
    """Per layer, the :class:`AtomSubset` to compute (the first layers may need all
    atoms); an empty list when every atom is selected (nothing to trim).

    :param selected: ``[M]`` index of the reported atoms in the graph
    :param every_layer: the read-outs read every layer's tokens of the selected
        atoms (residual featurizer), not only the last layer's
    :param queries: the last block of every layer but the last computes only the
        tokens the next layer and the read-outs read (:func:`read_only`)
    :param own_edges: every layer reads the previous layer's outputs of its own
        edges too (hyper-parameter ``edge_stream``)
    """
    masks = needed_atoms(graph, selected, n_layers)
    if bool(torch.all(masks[-1])):
        return []
    subsets = [make_subset(graph, key_bias, mask, budget) for mask in masks]
    if queries:
        last = subsets[-1]
        for k in range(n_layers - 1):
            following = subsets[k + 1]
            edges = read_edges(graph, following, last, every_layer, own_edges)
            read_only(subsets[k], following.atoms, edges)
    return subsets
