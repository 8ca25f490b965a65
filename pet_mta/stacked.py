"""Several PET models of the same architecture, evaluated in one batched pass.

:class:`StackedPET` holds the weights of ``M`` PET models with a leading member
axis (see :mod:`pet_mta.modules.stacked`). The neighbour graph, token layout and
cutoff weights are built once; every dense layer is one batched matrix product over
the members and the attention of all members is one batched product. It returns
one prediction per member, the same numbers as calling the members one after
another (to round-off). :class:`pet_mta.Ensemble` uses it when it can.

Members are Python :class:`pet_mta.PET` modules or the TorchScript modules of
exported PET models; :func:`stack_members` says whether a list of them can be
stacked (same architecture, atomic types, targets and dtype).
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from .modules.chunks import split_atoms
from .modules.cutoff import SmoothCutoff
from .modules.graph import EdgeGraph, build_edge_graph
from .modules.readout import atomic_stress
from .modules.selection import cell_volumes, check_dtype, select_atoms
from .modules.stacked import (
    StackedGNNLayer,
    StackedLinear,
    StackedReadout,
    child,
    stacked,
)
from .modules.tensormaps import make_tensormap
from .modules.transformer import key_bias_grid


class StackedPET(torch.nn.Module):
    """``M`` PET models of one architecture in one pass (see module docstring).

    :param members: PET modules (Python or TorchScript), checked by
        :func:`stack_members`
    """

    def __init__(self, members: List[torch.nn.Module]):
        super().__init__()
        first = members[0]
        self.n_members = len(members)
        self.register_buffer("type_to_index", first.type_to_index.detach().clone())
        self.cutoff = float(first.cutoff)
        self.min_distance = float(first.min_distance)
        self.n_species = int(first.n_species)
        self.residual_readout = bool(first.residual_readout)
        self.tokens_per_chunk = int(first.tokens_per_chunk)
        cutoff = child(first, "cutoff_function")
        self.cutoff_function = SmoothCutoff(
            float(cutoff.cutoff),
            float(cutoff.width),
            "Bump" if bool(cutoff.bump) else "Cosine",
        )
        self.neighbor_options = NeighborListOptions(
            cutoff=self.cutoff, full_list=True, strict=True, requestor="pet_mta"
        )
        self.register_buffer(
            "neighbor_embedding",
            stacked([child(m, "neighbor_embedding").weight for m in members]),
        )
        self.register_buffer(
            "layer_species",
            stacked([child(m, "layer_species").weight for m in members]),
        )
        n_layers = len(child(first, "gnn_layers")._modules)
        self.gnn_layers = torch.nn.ModuleList(
            [
                StackedGNNLayer(
                    [child(child(m, "gnn_layers"), str(k)) for m in members]
                )
                for k in range(n_layers)
            ]
        )
        n_readout = len(child(first, "node_features")._modules)
        self.node_features = torch.nn.ModuleList(
            [
                StackedLinear.of(
                    [
                        child(child(child(m, "node_features"), str(i)), "0")
                        for m in members
                    ]
                )
                for i in range(n_readout)
            ]
        )
        names = list(first.target_kinds.keys())
        self.readouts = torch.nn.ModuleDict(
            {
                name: StackedReadout(
                    [child(child(m, "readouts"), name) for m in members]
                )
                for name in names
            }
        )
        self.target_kinds: Dict[str, str] = dict(first.target_kinds)
        self.target_components: Dict[str, int] = dict(first.target_components)
        self.target_properties: Dict[str, int] = dict(first.target_properties)
        self.target_property_names: Dict[str, str] = dict(first.target_property_names)

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> List[Dict[str, TensorMap]]:
        """Every member's prediction of the target ``outputs`` (as ``PET.forward``;
        features and last-layer features are not available here).

        With ``selected_atoms``, every atom's sequences are computed and the
        selected rows reported (no receptive-field trimming).
        """
        for name in outputs.keys():
            if name not in self.target_kinds:
                raise ValueError("the stacked PET can not compute '" + name + "'")
        dtype = self.neighbor_embedding.dtype
        check_dtype(systems, dtype)
        graph = build_edge_graph(
            systems,
            self.neighbor_options,
            self.type_to_index,
            self.cutoff,
            self.min_distance,
        )
        edge_weights = self.cutoff_function(graph.distances)
        key_bias = key_bias_grid(graph, edge_weights)
        chosen, chosen_system, chosen_atom = select_atoms(
            systems, graph.system_index, selected_atoms
        )
        node_features, edge_features = self._sequences(graph, key_bias)
        for i, node_mlp in enumerate(self.node_features):
            node_features[i] = torch.nn.functional.silu(node_mlp(node_features[i]))

        results: List[Dict[str, TensorMap]] = []
        for _ in range(self.n_members):
            result: Dict[str, TensorMap] = {}
            results.append(result)
        for name, readout in self.readouts.items():
            if name in outputs:
                values = readout(
                    node_features,
                    edge_features,
                    edge_weights,
                    graph.centers,
                    graph.species,
                )
                properties = Labels(
                    [self.target_property_names[name]],
                    torch.arange(
                        self.target_properties[name], dtype=torch.int32
                    ).reshape(-1, 1),
                )
                for m in range(self.n_members):
                    member_values = values[m]
                    if self.target_kinds[name] == "stress":
                        member_values = atomic_stress(
                            member_values,
                            cell_volumes(systems, member_values),
                            graph.system_index,
                        )
                    results[m][name] = make_tensormap(
                        member_values.index_select(0, chosen),
                        chosen_system,
                        chosen_atom,
                        len(systems),
                        outputs[name].sample_kind == "atom",
                        self.target_components[name],
                        properties,
                    )
        return results

    def _sequences(
        self, graph: EdgeGraph, key_bias: torch.Tensor
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """The GNN layers of every member on every atom (as ``PET._all_sequences``).

        :return: per read-out layer, central ``[M, N, d]`` and edge ``[M, E, d]``
            tokens
        """
        neighbor_species = graph.species.index_select(0, graph.neighbors)
        messages = self.neighbor_embedding.index_select(1, neighbor_species)
        members = messages.shape[0]
        n_atoms = graph.species.shape[0]
        central = torch.zeros(
            members,
            n_atoms,
            messages.shape[2],
            dtype=messages.dtype,
            device=messages.device,
        )
        has_reverse = (graph.reverse >= 0)[None, :, None]
        reverse = graph.reverse.clamp(min=0)
        # the chunks hold every member: the same memory per chunk as one PET
        budget = max(1, self.tokens_per_chunk // members)
        chunks = split_atoms(graph, key_bias, budget)
        node_features: List[torch.Tensor] = []
        edge_features: List[torch.Tensor] = []
        n_layers = len(self.gnn_layers)
        for k, layer in enumerate(self.gnn_layers):
            if k == 0:
                table = layer.tokenizer.project_messages(self.neighbor_embedding)
                projected = table.index_select(1, neighbor_species)
            else:
                species = neighbor_species + (k - 1) * self.n_species
                projected = layer.tokenizer.project_messages(
                    messages + self.layer_species.index_select(1, species)
                )
            central_parts: List[torch.Tensor] = []
            edge_parts: List[torch.Tensor] = []
            for chunk in chunks:
                a0, a1 = chunk.first_atom, chunk.stop_atom
                e0, e1 = chunk.first_edge, chunk.stop_edge
                tokens = layer(
                    central[:, a0:a1],
                    graph.species[a0:a1],
                    graph.vectors[e0:e1],
                    graph.distances[e0:e1],
                    projected[:, e0:e1],
                    chunk.token_atom,
                    chunk.token_slot,
                    chunk.key_bias,
                )
                central_parts.append(tokens[:, : a1 - a0])
                edge_parts.append(tokens[:, a1 - a0 :])
            central = torch.cat(central_parts, dim=1)
            edge_out = torch.cat(edge_parts, dim=1)
            if self.residual_readout or k == n_layers - 1:
                node_features.append(central)
                edge_features.append(edge_out)
            if k < n_layers - 1:
                # message passing: the output of edge j -> i feeds edge i -> j
                incoming = edge_out.index_select(1, reverse)
                messages = torch.where(
                    has_reverse, 0.5 * (messages + incoming), messages
                )
        return node_features, edge_features


def _signature(module: torch.nn.Module) -> Optional[Tuple]:
    """What must agree between stacked members, or ``None`` if not a PET."""
    name = getattr(module, "original_name", type(module).__name__)
    if name != "PET":
        return None
    try:
        cutoff = child(module, "cutoff_function")
        state = module.state_dict()
        hyper_attributes = []
        for key, sub in module.named_modules():
            for attribute in (
                "num_heads",
                "scale",
                "gated",
                "pre_norm",
                "distance_only",
                "eps",
            ):
                value = getattr(sub, attribute, None)
                if value is not None and not isinstance(value, torch.Tensor):
                    hyper_attributes.append((key, attribute, value))
            kind = getattr(sub, "original_name", type(sub).__name__)
            hyper_attributes.append((key, kind))
        return (
            tuple(
                (key, tuple(value.shape), value.dtype) for key, value in state.items()
            ),
            tuple(hyper_attributes),
            tuple(module.atomic_types),
            float(module.cutoff),
            float(cutoff.width),
            bool(cutoff.bump),
            tuple(sorted(dict(module.target_kinds).items())),
            tuple(sorted(dict(module.target_components).items())),
            tuple(sorted(dict(module.target_properties).items())),
            tuple(sorted(dict(module.target_property_names).items())),
            bool(module.residual_readout),
        )
    except (AttributeError, KeyError, RuntimeError):
        return None


def stack_members(members: List[torch.nn.Module]) -> Optional[StackedPET]:
    """A :class:`StackedPET` of ``members`` if they are PET models of one
    architecture (same hyper-parameters, atomic types, targets and dtype), else
    ``None``."""
    if len(members) < 2:
        return None
    signatures = [_signature(m) for m in members]
    if signatures[0] is None or any(s != signatures[0] for s in signatures[1:]):
        return None
    return StackedPET(members)
