"""One message-passing layer of PET: tokenise the edges, run transformer blocks."""

from typing import Any, Dict, List, Optional, Tuple

import torch

from .chunks import AtomChunk
from .graph import EdgeGraph
from .members import Embedding, Linear
from .tokens import EdgeTokenizer
from .transformer import TransformerBlock


class GNNLayer(torch.nn.Module):
    """One message-passing layer: tokenise edges, run transformer blocks.

    :param hypers: resolved model hyper-parameters (:mod:`pet_mta.hypers`)
    :param n_species: number of atomic species
    :param n_members: leading member axis of the weights (see :mod:`.members`)
    :param own_edges: the layer reads its edges' own outputs of the layer before
        (hyper-parameter ``edge_stream``; not for the first layer)
    """

    def __init__(
        self,
        hypers: Dict[str, Any],
        n_species: int,
        n_members: int = 0,
        own_edges: bool = False,
    ):
        super().__init__()
        d_pet = int(hypers["d_pet"])
        # the edges' own outputs of the layer before enter the first layer of the
        # token MLP through these weights, zero at initialisation (edge_stream)
        self.own_edge: torch.nn.Module = torch.nn.Identity()
        if own_edges:
            self.own_edge = Linear(d_pet, d_pet, bias=False, n_members=n_members)
            torch.nn.init.zeros_(self.own_edge.weight)
        central_width = central_state_width(hypers)
        self.central_embedding = Embedding(n_species, central_width or d_pet, n_members)
        self.tokenizer = EdgeTokenizer(
            d_pet,
            cutoff=float(hypers["cutoff"]),
            distance_only=hypers["edge_embedding"] == "distance",
            radial_basis=int(hypers["radial_basis"]),
            n_members=n_members,
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
                    central_width=central_width,
                    n_members=n_members,
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
        chunk: AtomChunk,
        own_outputs: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        :param central: ``[(M,) n, c]`` central tokens (``c = d_pet``) or states
            (``c = d_node``, see :func:`central_state_width`) of the ``n`` atoms of
            ``chunk`` (their sequences, see :class:`.chunks.AtomChunk`)
        :param species: ``[n]`` species index of the atoms
        :param vectors: ``[e, 3]`` and ``distances``: ``[e]``, geometry of their edges
        :param projected: ``[(M,) e, d_pet]`` incoming messages after
            ``tokenizer.project_messages``
        :param own_outputs: ``[(M,) e, d_pet]`` the edges' own output tokens of the
            layer before (hyper-parameter ``edge_stream``), mapped by ``own_edge``
            into the first layer of the token MLP
        :return: output central ``[(M,) n, c]`` and edge ``[(M,) e, d_pet]`` tokens;
            if ``chunk`` has queries (:meth:`.chunks.AtomChunk.read_only`), those of
            the queries only (the last block computes no other)
        """
        central = central + self.central_embedding(species)
        if own_outputs is not None:
            projected = projected + self.own_edge(own_outputs)
        edges = self.tokenizer.tokens(vectors, distances, projected)
        last = len(self.blocks) - 1
        for k, block in enumerate(self.blocks):
            central, edges = block(central, edges, chunk, k == last)
        return central, edges

    def by_chunks(
        self,
        chunks: List[AtomChunk],
        central: torch.Tensor,
        graph: EdgeGraph,
        projected: torch.Tensor,
        own_outputs: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """This layer over all atoms, chunk by chunk (see :mod:`.chunks`); same result
        as one call on all atoms.

        :return: central tokens ``[(M,) N, d]`` and edge tokens ``[(M,) E, d]``, or
            those of the chunks' queries, in order
        """
        if len(chunks) == 1:
            return self(
                central,
                graph.species,
                graph.vectors,
                graph.distances,
                projected,
                chunks[0],
                own_outputs,
            )
        central_parts: List[torch.Tensor] = []
        edge_parts: List[torch.Tensor] = []
        for chunk in chunks:
            a0, n = chunk.first_atom, chunk.stop_atom - chunk.first_atom
            e0, e = chunk.first_edge, chunk.stop_edge - chunk.first_edge
            part: Optional[torch.Tensor] = None
            if own_outputs is not None:
                part = own_outputs.narrow(-2, e0, e)
            central_part, edge_part = self(
                central.narrow(-2, a0, n),
                graph.species.narrow(0, a0, n),
                graph.vectors.narrow(0, e0, e),
                graph.distances.narrow(0, e0, e),
                projected.narrow(-2, e0, e),
                chunk,
                part,
            )
            central_parts.append(central_part)
            edge_parts.append(edge_part)
        return torch.cat(central_parts, dim=-2), torch.cat(edge_parts, dim=-2)


def central_state_width(hypers: Dict[str, Any]) -> int:
    """Width of every atom's state in the central stream (``d_node``), or ``0``
    without one (:mod:`.central_stream`, hyper-parameter ``central_stream``)."""
    return int(hypers["d_node"]) if hypers["central_stream"] else 0
