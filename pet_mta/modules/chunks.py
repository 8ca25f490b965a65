"""Run a message-passing layer on the atoms of a batch chunk by chunk.

Inside one GNN layer every atom's token sequence is processed independently, so the
atoms can be split into chunks of contiguous sequences (edges are sorted by centre)
and the layer run once per chunk. The result is identical; what changes is the size
of the intermediate tensors. With one chunk per system, a 4,000-atom box makes every
intermediate tensor tens of MB large: the C allocator serves such blocks with fresh
memory maps, so every operation pays page faults on its output, and the cost per atom
grew 2.5x from 1,000 to 4,000 atoms on one CPU core. Chunks of a few thousand tokens
keep blocks small enough to be reused, and the cost per atom flat.
"""

from typing import List, Optional

import torch

from .graph import EdgeGraph


class AtomChunk:
    """Atoms ``[first_atom, stop_atom)`` and their edges ``[first_edge, stop_edge)``,
    with token indices local to the chunk."""

    def __init__(
        self,
        first_atom: int,
        stop_atom: int,
        first_edge: int,
        stop_edge: int,
        token_atom: torch.Tensor,
        token_slot: torch.Tensor,
        key_bias: torch.Tensor,
    ):
        self.first_atom = first_atom
        self.stop_atom = stop_atom
        self.first_edge = first_edge
        self.stop_edge = stop_edge
        self.token_atom = token_atom  # [n + e] sequence of every token, in the chunk
        self.token_slot = token_slot  # [n + e] slot of every token in its sequence
        self.key_bias = key_bias  # [n, T] log cutoff weights of the chunk's sequences
        # the tokens whose output the chunk's last transformer block computes (see
        # :meth:`read_only`); None: every token
        self.queries = torch.jit.annotate(Optional[torch.Tensor], None)  # [q] sorted
        self.query_slot = torch.jit.annotate(Optional[torch.Tensor], None)  # [q]
        self.max_queries = 0  # most queries of one sequence
        self.query_atoms = 0  # how many queries are centre tokens

    def read_only(self, mask: torch.Tensor) -> None:
        """Let the last transformer block compute the output of the tokens in
        ``mask`` only (``[n + e]`` booleans over the chunk's packed tokens); its
        attention still uses every token as key and value.

        Every query gets a row in its sequence's ``[max_queries]`` query grid
        (``query_slot``: its rank among its sequence's queries).
        """
        n_atoms = self.key_bias.shape[0]
        queries = torch.nonzero(mask).flatten()
        sequence = self.token_atom.index_select(0, queries)
        counts = torch.bincount(sequence, minlength=n_atoms)
        order = torch.argsort(sequence, stable=True)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(queries.shape[0], device=queries.device)
        slot = torch.empty_like(queries)
        slot[order] = rank - first.index_select(0, sequence.index_select(0, order))
        self.queries = queries
        self.query_slot = slot
        self.max_queries = max(1, int(torch.max(counts))) if n_atoms > 0 else 1
        self.query_atoms = int(torch.count_nonzero(queries < n_atoms))


def split_atoms(
    graph: EdgeGraph, key_bias: torch.Tensor, budget: int
) -> List[AtomChunk]:
    """Chunks of whole sequences with at most ``budget`` padded tokens (atoms x
    longest sequence) on CPU, and 64 times more on other devices (where large
    launches matter more, and torch caches the memory anyway).

    :param key_bias: ``[N, T]`` log cutoff weights of every slot (see
        :func:`~pet_mta.modules.transformer.log_key_weights`)
    """
    n_atoms = graph.species.shape[0]
    if graph.vectors.device.type != "cpu":
        budget = 64 * budget
    per_chunk = max(1, budget // graph.max_tokens)
    offsets: List[int] = graph.edge_offsets.tolist()
    chunks: List[AtomChunk] = []
    for first_atom in range(0, max(n_atoms, 1), per_chunk):
        stop_atom = min(first_atom + per_chunk, n_atoms)
        first_edge = int(offsets[first_atom]) if n_atoms > 0 else 0
        stop_edge = int(offsets[stop_atom]) if n_atoms > 0 else 0
        chunks.append(
            AtomChunk(
                first_atom,
                stop_atom,
                first_edge,
                stop_edge,
                torch.cat(
                    [
                        graph.token_atom[first_atom:stop_atom],
                        graph.token_atom[n_atoms + first_edge : n_atoms + stop_edge],
                    ]
                )
                - first_atom,
                torch.cat(
                    [
                        graph.token_slot[first_atom:stop_atom],
                        graph.token_slot[n_atoms + first_edge : n_atoms + stop_edge],
                    ]
                ),
                key_bias[first_atom:stop_atom],
            )
        )
    return chunks
