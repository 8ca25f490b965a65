"""The PET model: edge tokens -> cutoff-weighted transformers -> messages -> heads.

Point Edge Transformer, Pozdnyakov & Ceriotti, NeurIPS 2023. For every atom, the
edges to its neighbours form a token sequence that a transformer processes; the output
token of edge ``j -> i`` becomes the message of edge ``i -> j`` in the next GNN layer.
Node and edge read-outs give atomic contributions, summed into per-system values.
"""

import dataclasses
import json
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)

from .hypers import resolve_hypers, with_legacy_values
from .modules.chunks import split_atoms
from .modules.cutoff import SmoothCutoff
from .modules.gnn_layer import GNNLayer, central_state_width
from .modules.graph import EdgeGraph, build_edge_graph
from .modules.members import Embedding, Linear, Norm, zero_rows
from .modules.readout import TargetReadout, atomic_stress
from .modules.receptive_field import AtomSubset, trimmed_subsets
from .modules.selection import cell_volumes, check_dtype, select_atoms
from .modules.spherical import (
    atomic_basis_tensormap,
    property_counts,
    spherical_tensormap,
)
from .modules.tensormaps import feature_labels, make_tensormap
from .modules.transformer import key_bias_grid
from .targets import Target, make_targets


def of_member(values: torch.Tensor, member: int) -> torch.Tensor:
    """Rows ``[n, ...]`` of ``member`` in ``[M, n, ...]`` values of stacked members;
    ``values`` themselves (``[n, width]``) for one model."""
    return values if values.dim() == 2 else values[member]


def feature_map(
    features: torch.Tensor,
    selected: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    n_systems: int,
    output: ModelOutput,
) -> TensorMap:
    """Features ``[N, width]`` of every atom as the ``TensorMap`` of ``output``,
    for the ``selected`` atoms: (rows in ``features``, system index, atom index)."""
    rows, system_index, atom_index = selected
    return make_tensormap(
        features.index_select(0, rows),
        system_index,
        atom_index,
        n_systems,
        output.sample_kind == "atom",
        1,
        feature_labels(features.shape[1]),
    )


def last_layer_features_name(target: str) -> str:
    """Name of the last-layer-features output of ``target`` (metatrain convention)."""
    base = target[5:] if target.startswith("mtt::") else target
    return "mtt::aux::" + base + "_last_layer_features"


class PET(torch.nn.Module):
    """Point Edge Transformer as a ``metatomic.torch.ModelInterface``.

    :param atomic_types: atomic numbers the model handles
    :param targets: what to predict (default: ``energy`` in eV); see
        :func:`pet_mta.targets.make_targets`
    :param length_unit: unit of positions and of every length hyper-parameter
    :param n_members: ``0`` for one model; ``M`` for ``M`` models of this
        architecture in one module, every weight with a leading member axis (see
        :mod:`pet_mta.modules.members` and :mod:`pet_mta.stacked`), evaluated with
        :meth:`predict_members` (one prediction per member)
    :param hypers: model hyper-parameters, see :mod:`pet_mta.hypers`

    >>> from pet_mta import PET
    >>> model = PET(atomic_types=[1, 6, 8], cutoff=4.5, d_pet=128)
    """

    __pet_min_distance__ = 1e-4
    # declared here: TorchScript cannot infer the type of the empty lists
    target_irreps: Dict[str, List[List[int]]]
    target_basis: Dict[str, List[List[int]]]

    def __init__(
        self,
        atomic_types: List[int],
        targets: Union[None, List[Any], Dict[str, Any]] = None,
        length_unit: str = "angstrom",
        n_members: int = 0,
        **hypers: Any,
    ):
        super().__init__()
        if len(atomic_types) == 0:
            raise ValueError("atomic_types must list at least one atomic number")
        types = sorted({int(t) for t in atomic_types})
        if types[0] < 0:
            raise ValueError(f"atomic types must be non-negative, got {types}")
        self.hypers = resolve_hypers(**hypers)
        self.target_list: List[Target] = make_targets(targets)
        self.atomic_types: List[int] = types
        self.length_unit = length_unit
        self.n_members = int(n_members)
        self.architecture = json.dumps(
            {
                "atomic_types": types,
                "targets": [dataclasses.asdict(t) for t in self.target_list],
                "length_unit": length_unit,
                "hypers": self.hypers,
                "n_members": self.n_members,
            },
            sort_keys=True,
        )
        """What :meth:`from_architecture` builds this model from (JSON); a string,
        so TorchScript keeps it and exported models can be stacked too."""
        members = self.n_members

        self.cutoff = float(self.hypers["cutoff"])
        self.tokens_per_chunk = 16384
        """Message-passing layers run on chunks of atoms with at most this many
        padded tokens (see :mod:`pet_mta.modules.chunks`); changes no result."""
        self.read_tokens_only = True
        """With ``selected_atoms``, the last transformer block of every GNN layer but
        the last computes only the tokens that the next layer and the read-outs
        read (see :mod:`pet_mta.modules.receptive_field`); changes no result."""
        self.min_distance = self.__pet_min_distance__
        self.residual_readout = self.hypers["featurizer_type"] == "residual"
        self.edge_stream = bool(self.hypers["edge_stream"])
        n_species = len(types)
        n_layers = int(self.hypers["num_gnn_layers"])
        d_pet = int(self.hypers["d_pet"])
        d_node = int(self.hypers["d_node"])
        d_head = int(self.hypers["d_head"])

        type_to_index = torch.full((max(types) + 1,), -1, dtype=torch.long)
        for i, t in enumerate(types):
            type_to_index[t] = i
        self.register_buffer("type_to_index", type_to_index)

        self.cutoff_function = SmoothCutoff(
            self.cutoff,
            float(self.hypers["cutoff_width"]),
            self.hypers["cutoff_function"],
        )
        self.neighbor_embedding = Embedding(n_species, d_pet, members)
        # the neighbour's species enters the tokens of every later layer too, through
        # one embedding per layer (stacked: row (k - 1) * n_species + species);
        # zero at initialisation
        self.n_species = n_species
        self.layer_species = Embedding((n_layers - 1) * n_species, d_pet, members)
        torch.nn.init.zeros_(self.layer_species.weight)
        self.gnn_layers = torch.nn.ModuleList(
            [
                GNNLayer(self.hypers, n_species, members, self.edge_stream and k > 0)
                for k in range(n_layers)
            ]
        )
        n_readout = n_layers if self.residual_readout else 1
        state_width = central_state_width(self.hypers)
        self.central_width = state_width or d_pet
        """Width of the atoms' central tokens or states (``d_pet`` or ``d_node``)."""
        self.node_features = torch.nn.ModuleList(
            [self._node_features(state_width, d_pet, d_node) for _ in range(n_readout)]
        )
        self.readouts = torch.nn.ModuleDict(
            {
                t.name: TargetReadout(
                    n_layers=n_readout,
                    d_node=d_node,
                    d_pet=d_pet,
                    d_head=d_head,
                    n_species=n_species,
                    n_values=t.n_properties * t.n_components,
                    has_baseline=len(t.invariant_columns) > 0,
                    n_members=members,
                )
                for t in self.target_list
            }
        )
        self.target_components: Dict[str, int] = {
            t.name: t.n_components for t in self.target_list
        }
        self.target_properties: Dict[str, int] = {
            t.name: t.n_properties for t in self.target_list
        }
        self.target_property_names: Dict[str, str] = {
            t.name: t.property_name for t in self.target_list
        }
        self.target_kinds: Dict[str, str] = {t.name: t.kind for t in self.target_list}
        self.target_irreps = {
            t.name: [list(irrep) for irrep in t.irreps] for t in self.target_list
        }
        # blocks of atomic-basis targets: Target.basis_columns + species index
        self.target_basis = {
            t.name: [
                row + [types.index(block[0]) if block[0] in types else -1]
                for block, row in zip(t.basis, t.basis_columns)
            ]
            for t in self.target_list
        }
        self.stress_targets: List[str] = [
            t.name for t in self.target_list if t.kind == "stress"
        ]
        self.last_layer_names: Dict[str, str] = {
            last_layer_features_name(t.name): t.name for t in self.target_list
        }
        self.last_layer_of_target: Dict[str, str] = {
            t.name: last_layer_features_name(t.name) for t in self.target_list
        }
        self.neighbor_options = NeighborListOptions(
            cutoff=self.cutoff, full_list=True, strict=True, requestor="pet_mta"
        )

    def _node_features(
        self, state_width: int, d_pet: int, d_node: int
    ) -> torch.nn.Sequential:
        """``[(M,) n, c] -> [(M,) n, d_node]``: the features the node heads read from
        a central token (``Linear``, ``SiLU``) or a central-stream state (normalised
        first: the state is a sum of residual updates, of unbounded size)."""
        members = self.n_members
        layers: List[torch.nn.Module] = []
        if state_width > 0:
            layers.append(Norm(self.hypers["normalization"], state_width, members))
        layers.append(Linear(state_width or d_pet, d_node, n_members=members))
        layers.append(torch.nn.SiLU())
        return torch.nn.Sequential(*layers)

    @classmethod
    def from_architecture(cls, architecture: str, n_members: int = 0) -> "PET":
        """A new (randomly initialised) model with the architecture of another one.

        :param architecture: the other model's :attr:`architecture` (a JSON string)
        :param n_members: see :class:`PET`
        """
        spec = json.loads(architecture)
        with_legacy_values(spec["hypers"])
        return cls(
            atomic_types=spec["atomic_types"],
            targets=spec["targets"],
            length_unit=spec["length_unit"],
            n_members=n_members,
            **spec["hypers"],
        )

    # ------------------------------------------------------------------ metatomic API
    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """One full, strict neighbour list at the model cutoff."""
        return [self.neighbor_options]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Predict ``outputs`` for ``systems``; see ``metatomic.torch.ModelInterface``.

        A system with zero atoms is valid: its per-system outputs are zero and it has
        no per-atom samples.
        """
        if self.n_members > 0:
            raise ValueError(
                "a PET of stacked members gives one prediction per member: call "
                "predict_members (or wrap the members in pet_mta.Ensemble)"
            )
        return self.predict_members(systems, outputs, selected_atoms)[0]

    @torch.jit.export
    def predict_members(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> List[Dict[str, TensorMap]]:
        """:meth:`forward` of every member (one dictionary, for ``n_members = 0``):
        the graph is built once and every layer runs all members at once."""
        self._check_request(outputs)
        dtype = self.neighbor_embedding.weight.dtype
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

        # which atoms are reported
        n_systems = len(systems)
        chosen, chosen_system, chosen_atom = select_atoms(
            systems, graph.system_index, selected_atoms
        )
        # the chunks hold every member: the same memory per chunk as one model
        budget = max(1, self.tokens_per_chunk // max(1, self.n_members))
        # with a selection of some atoms, the layers compute only the sequences the
        # selected atoms' outputs depend on, and the read-outs only the selected atoms
        subsets: List[AtomSubset] = []
        if selected_atoms is not None:
            subsets = trimmed_subsets(
                graph,
                key_bias,
                chosen,
                len(self.gnn_layers),
                budget,
                self.residual_readout,
                self.read_tokens_only,
                self.edge_stream,
            )
        node_features, edge_features = self._sequences(graph, key_bias, subsets, budget)
        centers = graph.centers
        species = graph.species
        system_index = graph.system_index
        rows = chosen
        if len(subsets) > 0:
            last = subsets[-1]
            edge_weights = edge_weights.index_select(0, last.edges)
            centers = last.graph.centers
            species = last.graph.species
            system_index = last.graph.system_index
            rows = torch.searchsorted(last.atoms, chosen)

        for i, node_mlp in enumerate(self.node_features):
            node_features[i] = node_mlp(node_features[i])

        results: List[Dict[str, TensorMap]] = []
        for _ in range(max(1, self.n_members)):
            member_result: Dict[str, TensorMap] = {}
            results.append(member_result)
        selected = (rows, chosen_system, chosen_atom)
        for name, readout in self.readouts.items():
            ll_name = self.last_layer_of_target[name]
            want_values = name in outputs
            want_ll = ll_name in outputs
            if want_values or want_ll:
                values, last_layer = readout(
                    node_features,
                    edge_features,
                    edge_weights,
                    centers,
                    species,
                    want_ll,
                )
                for m, result in enumerate(results):
                    if want_values:
                        member_values = of_member(values, m)
                        if self.target_kinds[name] == "stress":
                            member_values = atomic_stress(
                                member_values,
                                cell_volumes(systems, member_values),
                                system_index,
                            )
                        result[name] = self._target_map(
                            name,
                            member_values.index_select(0, rows),
                            chosen_system,
                            chosen_atom,
                            species.index_select(0, rows),
                            n_systems,
                            outputs[name].sample_kind == "atom",
                        )
                    if want_ll:
                        result[ll_name] = feature_map(
                            of_member(last_layer, m),
                            selected,
                            n_systems,
                            outputs[ll_name],
                        )
        if "feature" in outputs:
            edges = edge_features[-1]
            summed_edges = zero_rows(
                edges, node_features[-1].shape[-2], edges.shape[-1]
            ).index_add(-2, centers, edges * edge_weights[:, None])
            features = torch.cat([node_features[-1], summed_edges], dim=-1)
            for m, result in enumerate(results):
                result["feature"] = feature_map(
                    of_member(features, m), selected, n_systems, outputs["feature"]
                )
        return results

    def _check_request(self, outputs: Dict[str, ModelOutput]) -> None:
        """Refuse outputs this model does not have, and explicit gradients."""
        for name in outputs.keys():
            if not self._has_output(name):
                raise ValueError(
                    "this model cannot compute the output '"
                    + name
                    + "'; available outputs are: "
                    + ", ".join(self._output_names())
                )
            if len(outputs[name].explicit_gradients) > 0:
                raise ValueError(
                    "explicit gradients are not supported for '"
                    + name
                    + "': request forces/stress through autograd (the engine does this)"
                )

    def _sequences(
        self,
        graph: EdgeGraph,
        key_bias: torch.Tensor,
        subsets: List[AtomSubset],
        budget: int,
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Run the GNN layers: on every atom's sequence, or with ``subsets`` (see
        :mod:`pet_mta.modules.receptive_field`) layer ``k`` on the sequences of
        ``subsets[k]`` only (the same numbers for the atoms of the last subset).

        :param key_bias: ``[N, T]`` log cutoff weights of every slot
        :param budget: padded tokens per chunk (see :mod:`pet_mta.modules.chunks`)
        :return: per read-out layer, central ``[(M,) n, c]`` (``c`` is
            :attr:`central_width`) and edge
            ``[(M,) e, d_pet]`` output tokens of every atom and edge (``n = N``,
            ``e = E``), or of the last subset's atoms and edges
        """
        trimmed = len(subsets) > 0
        layer_graph = graph
        if trimmed:
            layer_graph = subsets[0].graph
            chunks = subsets[0].chunks
        else:
            chunks = split_atoms(graph, key_bias, budget)
        # the graph of a subset keeps the full graph's `neighbors` and `reverse`
        neighbor_species = graph.species.index_select(0, layer_graph.neighbors)
        # messages, central and edge tokens live on the rows of the previous layer
        messages = self.neighbor_embedding(neighbor_species)
        central = zero_rows(messages, layer_graph.species.shape[0], self.central_width)
        edge_out = messages
        node_features: List[torch.Tensor] = []
        edge_features: List[torch.Tensor] = []
        n_layers = len(self.gnn_layers)
        for k, layer in enumerate(self.gnn_layers):
            own_outputs: Optional[torch.Tensor] = None
            if k == 0:
                # first messages are species embeddings: project the table only
                table = layer.tokenizer.project_messages(self.neighbor_embedding.weight)
                projected = table.index_select(-2, neighbor_species)
            else:
                # message passing: the output of edge j -> i feeds edge i -> j
                if trimmed:
                    previous, subset = subsets[k - 1], subsets[k]
                    layer_graph = subset.graph
                    chunks = subset.chunks
                    reverse = layer_graph.reverse
                    central = central.index_select(
                        -2, previous.out_atom_rows(subset.atoms)
                    )
                    messages = messages.index_select(
                        -2, previous.edge_rows(subset.edges)
                    )
                    reverse_rows = previous.out_edge_rows(
                        torch.where(reverse >= 0, reverse, subset.edges)
                    )
                    neighbor_species = graph.species.index_select(
                        0, layer_graph.neighbors
                    )
                    if self.edge_stream:
                        own_outputs = edge_out.index_select(
                            -2, previous.out_edge_rows(subset.edges)
                        )
                else:
                    reverse = layer_graph.reverse
                    reverse_rows = reverse.clamp(min=0)
                    if self.edge_stream:
                        own_outputs = edge_out  # the same edges, in order
                incoming = edge_out.index_select(-2, reverse_rows)
                messages = torch.where(
                    (reverse >= 0)[:, None], 0.5 * (messages + incoming), messages
                )
                projected = layer.tokenizer.project_messages(
                    messages
                    + self.layer_species(neighbor_species + (k - 1) * self.n_species)
                )
            central, edge_out = layer.by_chunks(
                chunks, central, layer_graph, projected, own_outputs
            )
            if self.residual_readout or k == n_layers - 1:
                if trimmed:
                    last, subset = subsets[-1], subsets[k]
                    node_features.append(
                        central.index_select(-2, subset.out_atom_rows(last.atoms))
                    )
                    edge_features.append(
                        edge_out.index_select(-2, subset.out_edge_rows(last.edges))
                    )
                else:
                    node_features.append(central)
                    edge_features.append(edge_out)
        return node_features, edge_features

    def _target_map(
        self,
        name: str,
        values: torch.Tensor,
        system_index: torch.Tensor,
        atom_index: torch.Tensor,
        selected_species: torch.Tensor,
        n_systems: int,
        per_atom: bool,
    ) -> TensorMap:
        """The output ``TensorMap`` of target ``name`` from the atomic ``values``
        ``[n_selected, n_values]`` of the selected atoms (species indices
        ``selected_species``)."""
        if self.target_kinds[name] == "atomic_basis":
            return atomic_basis_tensormap(
                values,
                system_index,
                atom_index,
                selected_species,
                n_systems,
                per_atom,
                self.target_basis[name],
            )
        properties = Labels(
            [self.target_property_names[name]],
            torch.arange(self.target_properties[name], dtype=torch.int32).reshape(
                -1, 1
            ),
        )
        if self.target_kinds[name] == "spherical":
            return spherical_tensormap(
                values,
                system_index,
                atom_index,
                n_systems,
                per_atom,
                self.target_irreps[name],
                property_counts(
                    self.target_properties[name], len(self.target_irreps[name][0]) // 2
                ),
            )
        return make_tensormap(
            values,
            system_index,
            atom_index,
            n_systems,
            per_atom,
            self.target_components[name],
            properties,
        )

    def _has_output(self, name: str) -> bool:
        return (
            name in self.target_components
            or name in self.last_layer_names
            or name == "feature"
        )

    def _output_names(self) -> List[str]:
        names: List[str] = []
        for name in self.target_components.keys():
            names.append(name)
        for name in self.last_layer_names.keys():
            names.append(name)
        names.append("feature")
        return names

    # ------------------------------------------------------------------ python only
    @torch.jit.unused
    def output_capabilities(self) -> Dict[str, ModelOutput]:
        """Every output of this model, as exported in its capabilities."""
        result: Dict[str, ModelOutput] = {}
        for t in self.target_list:
            result[t.name] = ModelOutput(
                unit=t.unit,
                sample_kind="atom",
                description=t.description,
            )
            result[last_layer_features_name(t.name)] = ModelOutput(
                sample_kind="atom",
                description=f"last-layer features of the '{t.name}' head",
            )
        result["feature"] = ModelOutput(
            sample_kind="atom", description="PET atomic features (node + edges)"
        )
        return result

    @torch.jit.unused
    def set_baseline(self, target: str, values: Dict[int, float]) -> None:
        """Set the per-species additive baseline of a scalar ``target``.

        :param values: ``{atomic number: value}`` in the target's unit; missing
            species keep their current value
        """
        readout = self._scalar_readout(target)
        for z, value in values.items():
            if int(z) not in self.atomic_types:
                raise ValueError(
                    f"atomic type {z} is not one of the types {self.atomic_types}"
                )
            index = self.atomic_types.index(int(z))
            readout.baseline[index] = float(value)

    @torch.jit.unused
    def set_scale(self, target: str, scale: float) -> None:
        """Set the multiplicative scale of the atomic contributions of ``target``."""
        self._one_model("set_scale")
        if target not in self.readouts:
            raise ValueError(f"unknown target '{target}'")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.readouts[target].scale.fill_(float(scale))

    @torch.jit.unused
    def get_baseline(self, target: str) -> Dict[int, float]:
        """The per-species baseline of a scalar ``target``."""
        readout = self._scalar_readout(target)
        return {
            z: float(readout.baseline[i, 0]) for i, z in enumerate(self.atomic_types)
        }

    @torch.jit.unused
    def _one_model(self, method: str) -> None:
        if self.n_members > 0:
            raise ValueError(
                f"{method} needs a single model, not a stack of {self.n_members}"
            )

    @torch.jit.unused
    def _scalar_readout(self, target: str) -> TargetReadout:
        self._one_model("baselines")
        if target not in self.readouts:
            raise ValueError(f"unknown target '{target}'")
        readout = self.readouts[target]
        if self.target_kinds[target] != "scalar":
            raise ValueError(f"target '{target}' is not a scalar: it has no baseline")
        return readout

    @torch.jit.unused
    def export(self, metadata: Optional[ModelMetadata] = None) -> AtomisticModel:
        """Wrap a copy of this model into an ``AtomisticModel`` (current dtype)."""
        from .export import export

        self._one_model("export")
        return export(self, metadata=metadata)
