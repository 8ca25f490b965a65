"""Transformer over each atom's token sequence, with cutoff-weighted attention.

Tokens are packed ``[N + E, d]`` (central tokens first, then edges); dense layers run
on the packed tensor so no work is spent on padding. Only the attention products use
a padded ``[N * heads, T, ...]`` layout. Every layer also runs ``M`` models at once
(weights and tokens with a leading member axis, see :mod:`.members`).
"""

from typing import List, Optional, Tuple

import torch

from .central_stream import CentralStream
from .chunks import AtomChunk
from .feedforward import FeedForward
from .graph import EdgeGraph
from .members import Linear, Norm, linear


class CutoffAttention(torch.nn.Module):
    """Multi-head self-attention inside every atom's sequence.

    The softmax weight of key token ``k`` is multiplied by its cutoff weight
    ``w_k`` (1 for the central token, ``f_c(r_ik)`` for edges, 0 for padding) and
    renormalised: ``alpha_qk = exp(l_qk) w_k / sum_k' exp(l_qk') w_k'``. A neighbour at
    the cutoff therefore contributes exactly nothing, and the central token keeps the
    denominator away from zero. This is computed as ``softmax(l_qk + log w_k)`` (one
    fused kernel), with ``log 0 = -inf`` for padding.

    Queries, keys and values are scattered from the packed tokens straight into a
    head-major ``[3, S * heads, T, d_head]`` grid, so both attention products are
    plain batched matrix products on contiguous memory; the ``1 / sqrt(d_head)``
    factor is applied to the query rows of the projection weights. With a member
    axis, every (member, atom) pair is one of the ``S = M N`` sequences.
    """

    def __init__(
        self, width: int, num_heads: int, temperature: float, n_members: int = 0
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.scale = 1.0 / (temperature * self.head_dim**0.5)
        self.qkv = Linear(width, 3 * width, n_members=n_members)
        self.out = Linear(width, width, n_members=n_members)
        self.width = width

    def forward(
        self, tokens: torch.Tensor, chunk: AtomChunk, trim: bool = False
    ) -> torch.Tensor:
        """
        :param tokens: packed tokens ``[(M,) n + e, d]`` of the ``n`` atoms and ``e``
            edges of ``chunk``
        :param chunk: where every token sits (``token_atom``: its sequence,
            ``token_slot``: its position there) and the ``[n, T]`` log cutoff
            weight of every slot (``key_bias``, ``-inf`` for padding, see
            :func:`log_key_weights`)
        :param trim: compute the output of ``chunk.queries`` only (when set, see
            :meth:`.chunks.AtomChunk.read_only`); every token stays a key and value
        :return: updated packed tokens ``[(M,) q, d]``: every token (``q = n + e``)
            or the queries
        """
        key_bias = chunk.key_bias
        n_atoms, max_tokens = key_bias.shape
        members = 1 if tokens.dim() == 2 else tokens.shape[0]
        sequences = members * n_atoms
        sequence, slot = member_rows(
            chunk.token_atom, chunk.token_slot, members, n_atoms
        )
        queries = chunk.queries
        query_slot = chunk.query_slot
        if trim and queries is not None and query_slot is not None:
            query_sequence, query_slot = member_rows(
                chunk.token_atom.index_select(0, queries), query_slot, members, n_atoms
            )
            query = self.project(
                tokens.index_select(-2, queries),
                (0, 1),
                (query_sequence, query_slot),
                sequences,
                chunk.max_queries,
            )[0]
            key, value = torch.unbind(
                self.project(tokens, (1, 2), (sequence, slot), sequences, max_tokens)
            )
        else:
            query_sequence, query_slot = sequence, slot
            query, key, value = torch.unbind(
                self.project(tokens, (0, 3), (sequence, slot), sequences, max_tokens)
            )
        mixed = self.mix(query, key, value, key_bias, members)
        shape: List[int] = list(tokens.shape[:-2])
        shape.extend([-1, self.width])
        return self.out(mixed[query_sequence, query_slot].reshape(shape))

    def project(
        self,
        tokens: torch.Tensor,
        groups: Tuple[int, int],
        where: Tuple[torch.Tensor, torch.Tensor],
        sequences: int,
        rows: int,
    ) -> torch.Tensor:
        """Projections ``groups = (first, count)`` of query (0), key (1) and value
        (2) of ``tokens`` ``[(M,) t, d]``, in a ``[count, S * heads, rows, d_head]``
        grid at the ``[M t]`` sequences and rows ``where`` of the tokens."""
        width = self.width
        first, count = groups
        weight, bias = self.scaled_projection()
        projected = linear(
            tokens,
            weight.narrow(-2, first * width, count * width),
            bias.narrow(-1, first * width, count * width),
        )
        return self.grid(projected, where[0], where[1], sequences, rows)

    def scaled_projection(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Weight ``[(M,) 3 d, d]`` and bias ``[(M,) 3 d]`` of the query, key and
        value projection, the query rows multiplied by ``1 / sqrt(d_head)``."""
        width = self.width
        weight = self.qkv.weight
        bias = self.qkv.bias
        assert bias is not None
        weight = torch.cat(
            [
                weight.narrow(-2, 0, width) * self.scale,
                weight.narrow(-2, width, 2 * width),
            ],
            dim=-2,
        )
        bias = torch.cat(
            [bias.narrow(-1, 0, width) * self.scale, bias.narrow(-1, width, 2 * width)],
            dim=-1,
        )
        return weight, bias

    def grid(
        self,
        projected: torch.Tensor,
        sequence: torch.Tensor,
        slot: torch.Tensor,
        sequences: int,
        rows: int,
    ) -> torch.Tensor:
        """Head-major grid ``[g, S * heads, rows, d_head]`` of ``g`` projections.

        :param projected: ``[(M,) t, g * d]`` projected tokens
        :param sequence: ``[M t]`` sequence (member-major) and ``slot``: row of
            every token in the grid
        """
        heads = self.num_heads
        head_dim = self.head_dim
        groups = projected.shape[-1] // self.width
        grid = torch.zeros(
            groups,
            sequences,
            heads,
            rows,
            head_dim,
            dtype=projected.dtype,
            device=projected.device,
        )
        # [S, rows, g, H, dh] view of the grid, filled token by token
        grid.permute(1, 3, 0, 2, 4).index_put_(
            (sequence, slot), projected.reshape(-1, groups, heads, head_dim)
        )
        return grid.view(groups, sequences * heads, rows, head_dim)

    def mix(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_bias: torch.Tensor,
        members: int,
    ) -> torch.Tensor:
        """Attention of the grids ``query`` ``[S H, Tq, dh]``, ``key`` and ``value``
        ``[S H, T, dh]`` with the ``[n, T]`` log cutoff weights ``key_bias``.

        :return: ``[S, Tq, H, dh]`` mixed values of every query row
        """
        n_atoms, max_tokens = key_bias.shape
        heads = self.num_heads
        rows = query.shape[1]
        logits = torch.bmm(query, key.transpose(1, 2))
        logits = logits.view(members, n_atoms, heads, rows, max_tokens)
        alpha = torch.softmax(logits + key_bias[None, :, None, None, :], dim=-1)
        mixed = torch.bmm(alpha.view(-1, rows, max_tokens), value)  # [S H, Tq, dh]
        return mixed.view(members * n_atoms, heads, rows, self.head_dim).permute(
            0, 2, 1, 3
        )


def member_rows(
    token_atom: torch.Tensor, token_slot: torch.Tensor, members: int, n_atoms: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sequence and slot ``[M t]`` of the tokens ``[t]`` of every member (member
    ``m``'s sequence of atom ``a`` is ``m n + a``; ``M = 1``: the inputs)."""
    if members == 1:
        return token_atom, token_slot
    member = torch.arange(members, device=token_atom.device)[:, None]
    sequence = (member * n_atoms + token_atom[None, :]).reshape(-1)
    return sequence, token_slot.repeat(members)


def log_key_weights(weights: torch.Tensor) -> torch.Tensor:
    """``log w`` with ``log 0 = -inf`` and no ``nan`` in the gradient at ``w = 0``.

    Where ``w = 0`` the attention weight is exactly zero whatever the logits, so no
    gradient flows to ``w`` there (as for the explicit ``exp(l) w`` form).
    """
    positive = weights > 0.0
    safe = torch.where(positive, weights, torch.ones_like(weights))
    return torch.where(positive, torch.log(safe), torch.full_like(weights, -torch.inf))


def key_bias_grid(graph: EdgeGraph, edge_weights: torch.Tensor) -> torch.Tensor:
    """``[N, T]`` log attention weight of every slot of every sequence of ``graph``:
    ``log 1 = 0`` for the centre, ``log f_c`` for edges, ``-inf`` for padding.

    :param edge_weights: ``[E]`` cutoff weights of the edges
    """
    n_atoms = graph.species.shape[0]
    grid = torch.full(
        (n_atoms, graph.max_tokens),
        -torch.inf,
        dtype=edge_weights.dtype,
        device=edge_weights.device,
    )
    return grid.index_put(
        (graph.token_atom, graph.token_slot),
        torch.cat(
            [
                torch.zeros(n_atoms, dtype=grid.dtype, device=grid.device),
                log_key_weights(edge_weights),
            ]
        ),
    )


class TransformerBlock(torch.nn.Module):
    """One PET transformer block on the tokens of the atoms and edges of a chunk:
    attention then feed-forward, each with a residual and a normalisation, before
    (pre-LN) or after (post-LN) the residual.

    :param central_width: ``0``: the centres are ``width``-wide tokens like the
        edges; otherwise the width of every atom's state, which a
        :class:`.central_stream.CentralStream` turns into the centre's token and
        updates from its output
    :param n_members: leading member axis of the weights (see :mod:`.members`)
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        feedforward: int,
        normalization: str,
        activation: str,
        temperature: float,
        pre_norm: bool,
        central_width: int = 0,
        n_members: int = 0,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = CutoffAttention(width, num_heads, temperature, n_members)
        self.feedforward = FeedForward(width, feedforward, activation, n_members)
        self.norm_attention = Norm(normalization, width, n_members)
        self.norm_feedforward = Norm(normalization, width, n_members)
        self.stream: Optional[CentralStream] = None
        if central_width > 0:
            self.stream = CentralStream(
                central_width, width, normalization, activation, n_members
            )

    def forward(
        self,
        central: torch.Tensor,
        edges: torch.Tensor,
        chunk: AtomChunk,
        trim: bool = False,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        :param central: ``[(M,) n, d]`` centre tokens of the ``n`` atoms of
            ``chunk``, or their ``[(M,) n, central_width]`` states
        :param edges: ``[(M,) e, d]`` tokens of the ``e`` edges of ``chunk``
        :param trim: compute the outputs of ``chunk.queries`` only (when set): the
            attention reads every token, the rest of the block only those
        :return: the updated ``central`` and ``edges`` (see :class:`CutoffAttention`),
            with ``trim`` those of the queries only (``chunk.query_atoms`` centres,
            then the edges)
        """
        stream = self.stream
        token = central if stream is None else stream.token(central)
        tokens = torch.cat([token, edges], dim=-2)
        n_atoms = central.shape[-2]
        queries = chunk.queries
        kept = tokens
        if trim and queries is not None:
            kept = tokens.index_select(-2, queries)
            n_atoms = chunk.query_atoms
            central = central.index_select(-2, queries.narrow(0, 0, n_atoms))
        if self.pre_norm:
            kept = kept + self.attention(self.norm_attention(tokens), chunk, trim)
            kept = kept + self.feedforward(self.norm_feedforward(kept))
        else:
            kept = self.norm_attention(kept + self.attention(tokens, chunk, trim))
            kept = self.norm_feedforward(kept + self.feedforward(kept))
        out = kept.narrow(-2, 0, n_atoms)
        if stream is not None:
            out = stream(central, out)
        return out, kept.narrow(-2, n_atoms, kept.shape[-2] - n_atoms)
