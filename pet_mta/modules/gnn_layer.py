"""One message-passing layer of PET: tokenise the edges, run transformer blocks."""

from typing import Any, Dict, List, Tuple

import torch

from .chunks import AtomChunk
from .graph import EdgeGraph
from .receptive_field import AtomSubset
from .tokens import EdgeTokenizer
from .transformer import TransformerBlock


class GNNLayer(torch.nn.Module):
    """One message-passing layer: tokenise edges, run transformer blocks."""

    def __init__(self, hypers: Dict[str, Any], n_species: int):
        super().__init__()
        d_pet = int(hypers["d_pet"])
        self.central_embedding = torch.nn.Embedding(n_species, d_pet)
        self.tokenizer = EdgeTokenizer(
            d_pet,
            distance_only=hypers["edge_embedding"] == "distance",
        )
        self.blocks = torch.nn.ModuleList(
            [
                TransformerBlock(
                    width=d_pet,
                    num_heads=int(hypers["num_heads"]),
                    feedforward=int(hypers["d_feedforward"]),
                    normalization=hypers["normalization"],
                    activation=hypers["activation"],
                    temperature=float(hypers["attention_temperature"]),
                    pre_norm=hypers["transformer_type"] == "PreLN",
                )
                for _ in range(int(hypers["num_attention_layers"]))
            ]
        )

    def forward(
        self,
        central: torch.Tensor,
        species: torch.Tensor,
        vectors: torch.Tensor,
        distances: torch.Tensor,
        projected: torch.Tensor,
        token_atom: torch.Tensor,
        token_slot: torch.Tensor,
        key_bias: torch.Tensor,
    ) -> torch.Tensor:
        """
        :param projected: ``[E, d_pet]`` incoming messages after
            ``tokenizer.project_messages``
        :return: packed output tokens ``[N + E, d_pet]`` (centres first)
        """
        tokens = torch.cat(
            [
                central + self.central_embedding(species),
                self.tokenizer.tokens(vectors, distances, projected),
            ]
        )
        for block in self.blocks:
            tokens = block(tokens, token_atom, token_slot, key_bias)
        return tokens

    def by_chunks(
        self,
        chunks: List[AtomChunk],
        central: torch.Tensor,
        graph: EdgeGraph,
        projected: torch.Tensor,
        key_bias: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """This layer over all atoms, chunk by chunk (see :mod:`.chunks`); same result
        as one call on all atoms.

        :return: central tokens ``[N, d]`` and edge tokens ``[E, d]``
        """
        if len(chunks) == 1:
            tokens = self(
                central,
                graph.species,
                graph.vectors,
                graph.distances,
                projected,
                graph.token_atom,
                graph.token_slot,
                key_bias,
            )
            n_atoms = central.shape[0]
            return tokens[:n_atoms], tokens[n_atoms:]
        central_parts: List[torch.Tensor] = []
        edge_parts: List[torch.Tensor] = []
        for chunk in chunks:
            a0, a1 = chunk.first_atom, chunk.stop_atom
            e0, e1 = chunk.first_edge, chunk.stop_edge
            tokens = self(
                central[a0:a1],
                graph.species[a0:a1],
                graph.vectors[e0:e1],
                graph.distances[e0:e1],
                projected[e0:e1],
                chunk.token_atom,
                chunk.token_slot,
                chunk.key_bias,
            )
            central_parts.append(tokens[: a1 - a0])
            edge_parts.append(tokens[a1 - a0 :])
        return torch.cat(central_parts), torch.cat(edge_parts)

    def on_subset(
        self,
        subset: AtomSubset,
        central: torch.Tensor,
        projected: torch.Tensor,
        n_edges: int,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """This layer on the sequences of ``subset`` only (see
        :mod:`.receptive_field`).

        :param central: ``[N, d]`` central tokens of all atoms (subset rows are read)
        :param projected: ``[e, d]`` projected messages of the subset's edges
        :param n_edges: ``E``, number of edges of the full graph
        :return: central tokens ``[N, d]`` and edge tokens ``[E, d]``, zero outside
            the subset
        """
        sub_central, sub_edges = self.by_chunks(
            subset.chunks,
            central.index_select(0, subset.atoms),
            subset.graph,
            projected,
            subset.key_bias,
        )
        return subset.scatter(sub_central, sub_edges, central.shape[0], n_edges)
