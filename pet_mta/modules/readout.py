"""Per-target read-out: node and edge heads summed into atomic contributions."""

from typing import List, Tuple

import torch

from .heads import Head
from .members import member_shape, zero_rows


class TargetReadout(torch.nn.Module):
    """Atomic contributions of one target from the features of every read-out layer.

    ``y_i = scale * sum_layers [node_head(h_i) + sum_j f_c(r_ij) edge_head(t_ij)]
    + baseline[species_i]``. The edge heads have no bias, so ``y_i`` is linear in the
    last-layer features ``[node hidden, sum_j f_c edge hidden]`` of every layer.

    :param n_layers: number of read-out layers (1, or ``num_gnn_layers``)
    :param n_species: number of atomic species (rows of the baseline)
    :param n_values: values per atom (``n_properties * n_components``)
    :param n_members: leading member axis of the weights, baseline and scale (see
        :mod:`.members`)
    """

    def __init__(
        self,
        n_layers: int,
        d_node: int,
        d_pet: int,
        d_head: int,
        n_species: int,
        n_values: int,
        has_baseline: bool,
        n_members: int = 0,
    ):
        super().__init__()
        self.node_heads = torch.nn.ModuleList(
            [
                Head(d_node, d_head, n_values, n_members=n_members)
                for _ in range(n_layers)
            ]
        )
        self.edge_heads = torch.nn.ModuleList(
            [
                Head(d_pet, d_head, n_values, bias=False, n_members=n_members)
                for _ in range(n_layers)
            ]
        )
        self.has_baseline = has_baseline
        members = member_shape(n_members)
        self.register_buffer("baseline", torch.zeros(members + [n_species, n_values]))
        self.register_buffer("scale", torch.ones(members + [n_values]))
        self.n_values = n_values

    def forward(
        self,
        node_features: List[torch.Tensor],
        edge_features: List[torch.Tensor],
        edge_weights: torch.Tensor,
        centers: torch.Tensor,
        species: torch.Tensor,
        with_last_layer: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        :param node_features: per layer ``[(M,) N, d_node]``
        :param edge_features: per layer ``[(M,) E, d_pet]``
        :param edge_weights: ``[E]`` cutoff weights
        :param centers: ``[E]`` centre atom of every edge
        :param species: ``[N]`` species index of every atom
        :return: atomic values ``[(M,) N, n_values]`` and, if requested, last-layer
            features ``[(M,) N, 2 * d_head * n_layers]`` (else an empty tensor)
        """
        values = zero_rows(node_features[0], species.shape[0], self.n_values)
        hidden: List[torch.Tensor] = []
        for i, (node_head, edge_head) in enumerate(
            zip(self.node_heads, self.edge_heads)
        ):
            node_hidden = node_head.hidden(node_features[i])
            edge_hidden = edge_head.hidden(edge_features[i]) * edge_weights[:, None]
            summed = torch.zeros_like(node_hidden).index_add(-2, centers, edge_hidden)
            values = values + node_head.last(node_hidden) + edge_head.last(summed)
            if with_last_layer:
                hidden.append(node_hidden)
                hidden.append(summed)
        values = values * self.scale.unsqueeze(-2)
        if self.has_baseline:
            values = values + self.baseline.index_select(-2, species)
        if with_last_layer:
            return values, torch.cat(hidden, dim=-1)
        return values, torch.zeros(0, device=values.device, dtype=values.dtype)


def atomic_stress(
    virials: torch.Tensor, volumes: torch.Tensor, system_index: torch.Tensor
) -> torch.Tensor:
    """Atomic virials -> symmetric atomic stress contributions ``w_i / V``.

    The per-system stress is the sum over atoms, ``sum_i w_i / V``: atom-local virials
    over the cell volume, so a stretched cell with the same local environments has
    a proportionally smaller stress.

    :param virials: ``[N, 9 * n_properties]`` atomic virials (row-major 3x3 first)
    :param volumes: ``[n_systems]`` cell volumes (0 without a 3D cell)
    :param system_index: ``[N]`` system of every atom
    :return: ``[N, 9 * n_properties]``, NaN for atoms of systems without a volume
    """
    n_atoms = virials.shape[0]
    matrices = virials.reshape(n_atoms, 3, 3, -1)
    matrices = 0.5 * (matrices + matrices.transpose(1, 2))
    volume = volumes.index_select(0, system_index)[:, None, None, None]
    has_volume = volume > 0
    safe = torch.where(has_volume, volume, torch.ones_like(volume))
    stress = torch.where(
        has_volume, matrices / safe, torch.full_like(matrices, float("nan"))
    )
    return stress.reshape(n_atoms, -1)
