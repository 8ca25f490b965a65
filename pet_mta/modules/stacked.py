"""PET layers for several models at once: weights with a leading member axis.

Every class here is built from the matching layers of ``M`` PET models with the same
architecture (Python modules or the TorchScript modules of exported models) and
runs them all in one pass: activations are ``[M, rows, width]``, dense layers are
batched matrix products (``baddbmm``) over the member axis, and the attention of
all members shares one batched product. The graph (edges, token positions, cutoff
weights) does not depend on the weights and is shared by every member.

Constant products that PET recomputes at every call (query scaling, the folded
geometry embedding of the edge tokens) are computed once here.
"""

from typing import List, Optional

import torch

from .transformer import ResidualBlock


def child(module: torch.nn.Module, name: str) -> torch.nn.Module:
    """Sub-module ``name`` of a Python or TorchScript module (also for names that are
    not identifiers, such as ``mtt::dipole`` in a ``ModuleDict``)."""
    return module._modules[name]


def stacked(tensors: List[torch.Tensor]) -> torch.Tensor:
    """``[M, ...]`` detached copy of the members' tensors."""
    return torch.stack([t.detach() for t in tensors]).clone()


class StackedLinear(torch.nn.Module):
    """``y_m = x_m W_m^T + b_m`` for every member ``m``.

    :param weight: ``[M, out, in]``
    :param bias: ``[M, out]`` or ``None``
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        if bias is None:
            bias = torch.zeros(
                weight.shape[0],
                weight.shape[1],
                dtype=weight.dtype,
                device=weight.device,
            )
        self.register_buffer("weight", weight.transpose(1, 2).contiguous())
        self.register_buffer("bias", bias.unsqueeze(1).contiguous())

    @staticmethod
    def of(layers: List[torch.nn.Module]) -> "StackedLinear":
        """From the ``torch.nn.Linear`` layers of every member."""
        bias = None
        if layers[0].bias is not None:
            bias = stacked([layer.bias for layer in layers])
        return StackedLinear(stacked([layer.weight for layer in layers]), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[M, n, in] -> [M, n, out]``."""
        return torch.baddbmm(self.bias, x, self.weight)


class StackedNorm(torch.nn.Module):
    """``RMSNorm`` or ``LayerNorm`` over the last dimension, weights per member."""

    def __init__(self, norms: List[torch.nn.Module]):
        super().__init__()
        kind = getattr(norms[0], "original_name", type(norms[0]).__name__)
        if kind not in ("RMSNorm", "LayerNorm"):
            raise ValueError(f"can not stack a '{kind}' normalization")
        self.rms = kind == "RMSNorm"
        self.width = int(norms[0].weight.shape[0])
        eps = norms[0].eps
        self.eps: Optional[float] = None if eps is None else float(eps)
        self.register_buffer("weight", stacked([n.weight for n in norms]).unsqueeze(1))
        if getattr(norms[0], "bias", None) is None:
            self.register_buffer("bias", torch.zeros_like(self.weight))
        else:
            self.register_buffer("bias", stacked([n.bias for n in norms]).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[M, n, d] -> [M, n, d]``."""
        if self.rms:
            return torch.nn.functional.rms_norm(x, [self.width], None, self.eps) * (
                self.weight
            )
        eps = 1e-5 if self.eps is None else self.eps
        normalized = torch.nn.functional.layer_norm(x, [self.width], None, None, eps)
        return normalized * self.weight + self.bias


class StackedFeedForward(torch.nn.Module):
    """``d -> hidden -> d`` with SiLU or SwiGLU, per member."""

    def __init__(self, layers: List[torch.nn.Module]):
        super().__init__()
        first = layers[0]
        self.gated = bool(first.gated)
        hidden = int(first.hidden)
        expand = [child(layer, "expand") for layer in layers]
        weight = stacked([e.weight for e in expand])
        bias = stacked([e.bias for e in expand])
        if self.gated:
            self.gate = StackedLinear(weight[:, :hidden], bias[:, :hidden])
            self.value = StackedLinear(weight[:, hidden:], bias[:, hidden:])
        else:
            self.gate = StackedLinear(weight, bias)
            self.value = StackedLinear(weight[:, :0], bias[:, :0])
        self.contract = StackedLinear.of([child(layer, "contract") for layer in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            h = torch.nn.functional.silu(self.gate(x)) * self.value(x)
        else:
            h = torch.nn.functional.silu(self.gate(x))
        return self.contract(h)


class StackedAttention(torch.nn.Module):
    """Cutoff-weighted multi-head attention (see ``CutoffAttention``) per member;
    one batched product over members, atoms and heads."""

    def __init__(self, layers: List[torch.nn.Module]):
        super().__init__()
        first = layers[0]
        self.num_heads = int(first.num_heads)
        self.head_dim = int(first.head_dim)
        width = int(first.width)
        self.width = width
        scale = float(first.scale)
        qkv = [child(layer, "qkv") for layer in layers]
        weight = stacked([q.weight for q in qkv])
        bias = stacked([q.bias for q in qkv])
        weight = torch.cat([weight[:, :width] * scale, weight[:, width:]], dim=1)
        bias = torch.cat([bias[:, :width] * scale, bias[:, width:]], dim=1)
        self.qkv = StackedLinear(weight, bias)
        self.out = StackedLinear.of([child(layer, "out") for layer in layers])

    def forward(
        self,
        tokens: torch.Tensor,
        token_atom: torch.Tensor,
        token_slot: torch.Tensor,
        key_bias: torch.Tensor,
    ) -> torch.Tensor:
        """Packed tokens ``[M, N + E, d]`` in and out; ``key_bias`` ``[N, T]``."""
        members = tokens.shape[0]
        n_tokens = tokens.shape[1]
        n_atoms = key_bias.shape[0]
        max_tokens = key_bias.shape[1]
        heads = self.num_heads
        head_dim = self.head_dim
        qkv = self.qkv(tokens).view(members * n_tokens, 3, heads, head_dim)
        # every (member, atom) pair is one sequence: the same layout as one PET
        # with members x atoms sequences
        member = torch.arange(members, device=tokens.device)[:, None]
        sequence = (member * n_atoms + token_atom[None, :]).reshape(-1)
        slot = token_slot.repeat(members)
        sequences = members * n_atoms
        grid = torch.zeros(
            3,
            sequences,
            heads,
            max_tokens,
            head_dim,
            dtype=tokens.dtype,
            device=tokens.device,
        )
        # [M N, T, 3, H, dh] view of the grid, filled token by token
        grid.permute(1, 3, 0, 2, 4).index_put_((sequence, slot), qkv)
        batch = sequences * heads
        query, key, value = torch.unbind(grid.view(3, batch, max_tokens, head_dim), 0)
        logits = torch.bmm(query, key.transpose(1, 2))
        logits = logits.view(members, n_atoms, heads, max_tokens, max_tokens)
        alpha = torch.softmax(logits + key_bias[None, :, None, None, :], dim=-1)
        mixed = torch.bmm(alpha.view(batch, max_tokens, max_tokens), value)
        mixed = mixed.view(sequences, heads, max_tokens, head_dim).permute(0, 2, 1, 3)
        mixed = mixed[sequence, slot]
        return self.out(mixed.reshape(members, n_tokens, heads * head_dim))


class StackedBlock(ResidualBlock):
    """``TransformerBlock`` of every member: the same wiring, stacked parts."""

    def __init__(self, blocks: List[torch.nn.Module]):
        super().__init__(
            StackedAttention([child(b, "attention") for b in blocks]),
            StackedFeedForward([child(b, "feedforward") for b in blocks]),
            StackedNorm([child(b, "norm_attention") for b in blocks]),
            StackedNorm([child(b, "norm_feedforward") for b in blocks]),
            bool(blocks[0].pre_norm),
        )


class StackedTokenizer(torch.nn.Module):
    """Edge tokens (``EdgeTokenizer``) with the geometry embedding folded in once."""

    def __init__(self, tokenizers: List[torch.nn.Module]):
        super().__init__()
        self.distance_only = bool(tokenizers[0].distance_only)
        geometry = [child(t, "geometry") for t in tokenizers]
        first = [child(child(t, "compress"), "0") for t in tokenizers]
        width = int(geometry[0].weight.shape[0])
        weight = stacked([f.weight for f in first])  # [M, d, 2d]
        geometry_weight = stacked([g.weight for g in geometry])  # [M, d, 4]
        geometry_bias = stacked([g.bias for g in geometry])  # [M, d]
        bias = stacked([f.bias for f in first]) + torch.bmm(
            weight[:, :, :width], geometry_bias.unsqueeze(-1)
        ).squeeze(-1)
        self.messages = StackedLinear(weight[:, :, width:], bias)
        # [M, 4, d]: geometry -> first hidden layer
        self.register_buffer(
            "folded",
            torch.bmm(weight[:, :, :width], geometry_weight)
            .transpose(1, 2)
            .contiguous(),
        )
        self.last = StackedLinear.of(
            [child(child(t, "compress"), "2") for t in tokenizers]
        )

    def project_messages(self, messages: torch.Tensor) -> torch.Tensor:
        """``[M, n, d] -> [M, n, d]`` (linear; see ``EdgeTokenizer``)."""
        return self.messages(messages)

    def tokens(
        self, vectors: torch.Tensor, distances: torch.Tensor, projected: torch.Tensor
    ) -> torch.Tensor:
        """``[M, E, d]`` edge tokens from ``[E, 3]`` vectors, ``[E]`` distances and
        the projected messages ``[M, E, d]``."""
        if self.distance_only:
            geometry = distances[:, None]
        else:
            geometry = torch.cat([vectors, distances[:, None]], dim=1)
        hidden = projected + torch.matmul(geometry, self.folded)
        return self.last(torch.nn.functional.silu(hidden))


class StackedGNNLayer(torch.nn.Module):
    """One message-passing layer (``GNNLayer``) of every member."""

    def __init__(self, layers: List[torch.nn.Module]):
        super().__init__()
        self.register_buffer(
            "central_embedding",
            stacked([child(layer, "central_embedding").weight for layer in layers]),
        )
        self.tokenizer = StackedTokenizer(
            [child(layer, "tokenizer") for layer in layers]
        )
        n_blocks = len(child(layers[0], "blocks")._modules)
        self.blocks = torch.nn.ModuleList(
            [
                StackedBlock(
                    [child(child(layer, "blocks"), str(b)) for layer in layers]
                )
                for b in range(n_blocks)
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
        """Packed output tokens ``[M, n + e, d]`` (centres first) of a chunk of ``n``
        atoms and their ``e`` edges."""
        tokens = torch.cat(
            [
                central + self.central_embedding.index_select(1, species),
                self.tokenizer.tokens(vectors, distances, projected),
            ],
            dim=1,
        )
        for block in self.blocks:
            tokens = block(tokens, token_atom, token_slot, key_bias)
        return tokens


class StackedHead(torch.nn.Module):
    """``Head``: two SiLU layers then a linear map, per member."""

    def __init__(self, heads: List[torch.nn.Module]):
        super().__init__()
        mlps = [child(h, "mlp") for h in heads]
        self.first = StackedLinear.of([child(m, "0") for m in mlps])
        self.second = StackedLinear.of([child(m, "2") for m in mlps])
        self.last = StackedLinear.of([child(h, "last") for h in heads])

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        silu = torch.nn.functional.silu
        return silu(self.second(silu(self.first(x))))


class StackedReadout(torch.nn.Module):
    """``TargetReadout`` of every member: ``[M, N, n_values]`` atomic values."""

    def __init__(self, readouts: List[torch.nn.Module]):
        super().__init__()
        first = readouts[0]
        n_layers = len(child(first, "node_heads")._modules)
        self.node_heads = torch.nn.ModuleList(
            [
                StackedHead([child(child(r, "node_heads"), str(i)) for r in readouts])
                for i in range(n_layers)
            ]
        )
        self.edge_heads = torch.nn.ModuleList(
            [
                StackedHead([child(child(r, "edge_heads"), str(i)) for r in readouts])
                for i in range(n_layers)
            ]
        )
        self.has_baseline = bool(first.has_baseline)
        self.n_values = int(first.n_values)
        self.register_buffer("baseline", stacked([r.baseline for r in readouts]))
        self.register_buffer("scale", stacked([r.scale for r in readouts]).unsqueeze(1))

    def forward(
        self,
        node_features: List[torch.Tensor],
        edge_features: List[torch.Tensor],
        edge_weights: torch.Tensor,
        centers: torch.Tensor,
        species: torch.Tensor,
    ) -> torch.Tensor:
        """:param node_features: per layer ``[M, N, d_node]``; ``edge_features``: per
        layer ``[M, E, d_pet]``. :return: ``[M, N, n_values]``"""
        values = torch.zeros(
            node_features[0].shape[0],
            species.shape[0],
            self.n_values,
            dtype=edge_weights.dtype,
            device=edge_weights.device,
        )
        i = 0
        for node_head, edge_head in zip(self.node_heads, self.edge_heads):
            node_hidden = node_head.hidden(node_features[i])
            edge_hidden = (
                edge_head.hidden(edge_features[i]) * edge_weights[None, :, None]
            )
            summed = torch.zeros_like(node_hidden).index_add(1, centers, edge_hidden)
            values = values + node_head.last(node_hidden) + edge_head.last(summed)
            i += 1
        values = values * self.scale
        if self.has_baseline:
            values = values + self.baseline.index_select(1, species)
        return values
