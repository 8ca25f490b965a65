"""``Ensemble``: N metatomic models as one, with ensemble uncertainties.

The wrapped model predicts the mean over members of every output they share (in
the first member's units), and for every energy output ``energy[/variant]`` the
standard metatomic outputs

- ``energy_ensemble[/variant]``: every member's energy, samples like ``energy``
  and one property per member (``Labels(["energy"], [[0], [1], ...])``, metatomic's
  layout, as metatrain's LLPR ensembles and i-PI's committee reader expect);
- ``energy_uncertainty[/variant]``: the standard deviation over members with the
  ``N - 1`` normalisation, ``sqrt(sum_i (E_i - E_mean)^2 / (N - 1))``, per atom or
  per system as requested (the per-system value is the spread of the members'
  total energies, not a sum of atomic spreads).

Forces and stress stay conservative: engines differentiate the mean energy, and
autograd runs through every member. PET members of one architecture are evaluated
in one batched pass with stacked weights (:func:`pet_mta.stacked.stack_members`);
other members one after another. Neighbour lists are computed once by the engine.
"""

import copy
import os
from typing import Dict, List, Optional, Sequence

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
    unit_conversion_factor,
)

from ..checks import flag, per_atom
from ..model import PET
from ..stacked import stack_members
from .loading import Backbone, ModelLike, WrapperModule, load_model, wrapped_metadata

ENSEMBLE_REFERENCE = (
    "Lakshminarayanan, B., Pritzel, A. & Blundell, C. Simple and scalable "
    "predictive uncertainty estimation using deep ensembles. NeurIPS 2017, "
    "arXiv:1612.01474"
)


def is_energy(name: str) -> bool:
    """``energy`` or one of its variants ``energy/<variant>``."""
    return name == "energy" or name.startswith("energy/")


def derived_name(energy: str, kind: str) -> str:
    """``energy[/v]`` -> ``energy_<kind>[/v]`` (kind: ``ensemble``, ``uncertainty``)."""
    return "energy_" + kind + energy[len("energy") :]


def averageable(name: str) -> bool:
    """Outputs whose member average is meaningful (not features or member UQ)."""
    base = name.split("/")[0]
    if base in ("feature", "features") or name.startswith("mtt::aux::"):
        return False
    return not (base.endswith("_ensemble") or base.endswith("_uncertainty"))


class EnsembleModule(WrapperModule):
    """The TorchScript-able ensemble (see :class:`pet_mta.Ensemble`).

    :param members: the loaded members (same length unit and dtype); the engine
        computes their neighbour lists and inputs (see
        :class:`~pet_mta.wrappers.loading.WrapperModule`)
    :param averaged: outputs predicted as the member mean
    :param factors: ``factors[i][name]`` converts member ``i``'s ``name`` to the
        ensemble's unit
    :param stacked: the members as one ``PET(n_members=M)`` (see
        :func:`~pet_mta.stacked.stack_members`; then only it is kept), or ``None``
        to evaluate them one after another
    """

    derived: Dict[str, str]
    engine_lists: List[NeighborListOptions]
    engine_inputs: Dict[str, ModelOutput]
    __jit_unused_properties__ = ["is_stacked"]

    def __init__(
        self,
        members: List[Backbone],
        averaged: List[str],
        factors: List[Dict[str, float]],
        stacked: Optional[PET] = None,
    ):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        super().__init__(members)
        self.n_members = len(members)
        modules = [member.module for member in members]
        self.members = torch.nn.ModuleList(modules if stacked is None else [])
        self.stacked = stacked
        self.averaged = averaged
        self.factors = factors
        self.derived: Dict[str, str] = {}
        for name in averaged:
            if is_energy(name):
                self.derived[derived_name(name, "ensemble")] = name
                self.derived[derived_name(name, "uncertainty")] = name

    @property
    def is_stacked(self) -> bool:
        """Whether the members run as one stacked ``PET`` (see ``stacked``)."""
        return self.stacked is not None

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Member mean of the averaged outputs, ensembles and uncertainties."""
        # what to ask the members: per atom if any request derived from it is
        requests: Dict[str, ModelOutput] = {}
        for name, output in outputs.items():
            if name in self.derived:
                source = self.derived[name]
            elif name in self.averaged:
                source = name
            else:
                raise ValueError("the ensemble can not compute '" + name + "'")
            if source not in requests or output.sample_kind == "atom":
                requests[source] = ModelOutput(sample_kind=output.sample_kind)

        predictions: Dict[str, List[TensorMap]] = {}
        for source in requests.keys():
            empty: List[TensorMap] = []
            predictions[source] = empty
        member_results: List[Dict[str, TensorMap]] = []
        if self.stacked is not None:
            member_results = self.stacked.predict_members(
                systems, requests, selected_atoms
            )
        else:
            for member in self.members:
                member_results.append(member(systems, requests, selected_atoms))
        for i, result in enumerate(member_results):
            for source in requests.keys():
                predictions[source].append(
                    _scaled(result[source], self.factors[i][source])
                )

        results: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            per_atom = output.sample_kind == "atom"
            if name in self.derived:
                maps = predictions[self.derived[name]]
                stacked = _stack(maps, per_atom, len(systems))
                block = maps[0].block()
                if block.values.shape[-1] != 1 or len(block.components) != 0:
                    raise ValueError("energy outputs must have a single property")
                samples = _samples(block, per_atom, len(systems))
                values = stacked[0].squeeze(-1)  # [members, samples]
                if name.startswith("energy_ensemble"):
                    properties = Labels(
                        ["energy"],
                        torch.arange(
                            self.n_members, dtype=torch.int32, device=values.device
                        ).reshape(-1, 1),
                    )
                    values = values.T
                else:
                    properties = block.properties
                    values = torch.std(values, dim=0, correction=1).reshape(-1, 1)
                results[name] = TensorMap(
                    maps[0].keys,
                    [TensorBlock(values, samples, empty_components(), properties)],
                )
            else:
                maps = predictions[name]
                stacked = _stack(maps, per_atom, len(systems))
                blocks: List[TensorBlock] = []
                for b, block in enumerate(maps[0].blocks()):
                    blocks.append(
                        TensorBlock(
                            torch.mean(stacked[b], dim=0),
                            _samples(block, per_atom, len(systems)),
                            block.components,
                            block.properties,
                        )
                    )
                results[name] = TensorMap(maps[0].keys, blocks)
        return results


def empty_components() -> List[Labels]:
    components: List[Labels] = []
    return components


def _scaled(tensor: TensorMap, factor: float) -> TensorMap:
    if factor == 1.0:
        return tensor
    blocks: List[TensorBlock] = []
    for block in tensor.blocks():
        blocks.append(
            TensorBlock(
                block.values * factor, block.samples, block.components, block.properties
            )
        )
    return TensorMap(tensor.keys, blocks)


def _per_system(block: TensorBlock, n_systems: int) -> torch.Tensor:
    """Values of ``block`` summed over the atoms of each system."""
    values = block.values
    if block.samples.names == ["system"]:
        return values
    size: List[int] = [n_systems]
    for d in values.shape[1:]:
        size.append(d)
    summed = torch.zeros(size, dtype=values.dtype, device=values.device)
    return summed.index_add(0, block.samples.column("system").to(torch.long), values)


def _samples(block: TensorBlock, per_atom: bool, n_systems: int) -> Labels:
    if per_atom or block.samples.names == ["system"]:
        return block.samples
    return Labels(
        ["system"],
        torch.arange(n_systems, dtype=torch.int32, device=block.values.device).reshape(
            -1, 1
        ),
    )


def _stack(maps: List[TensorMap], per_atom: bool, n_systems: int) -> List[torch.Tensor]:
    """Per block, the members' values ``[members, samples, ...]``.

    Members must agree on the metadata; per-atom predictions are summed per system
    when a per-system value is wanted.
    """
    first = maps[0]
    stacked: List[torch.Tensor] = []
    for b, reference in enumerate(first.blocks()):
        if per_atom and reference.samples.names == ["system"]:
            raise ValueError("a member gave per-system values for a per-atom request")
        values: List[torch.Tensor] = []
        for tensor in maps:
            if len(tensor) != len(first) or not torch.equal(
                tensor.keys.values, first.keys.values
            ):
                raise ValueError("ensemble members return different blocks")
            block = tensor.block_by_id(b)
            if not torch.equal(block.samples.values, reference.samples.values):
                raise ValueError("ensemble members return different samples")
            if not torch.equal(block.properties.values, reference.properties.values):
                raise ValueError("ensemble members return different properties")
            if per_atom:
                values.append(block.values)
            else:
                values.append(_per_system(block, n_systems))
        stacked.append(torch.stack(values))
    return stacked


class Ensemble(EnsembleModule):
    """Several metatomic models (ours or foreign) as one ensemble model.

    The result is a metatomic ``ModelInterface`` module: call it, export it with
    :meth:`export`, or build the exported model in one step with :meth:`wrap`.
    Members must share the length unit and dtype; outputs are those all members
    declare (features and the members' own uncertainties excepted), in the first
    member's units, plus ``energy_ensemble`` and ``energy_uncertainty`` for every
    energy output. An output (with its ensemble and uncertainty) is declared per
    atom when every member can give it per atom (every pet_mta model can), per
    system otherwise (e.g. with a pair potential that only gives total energies).

    PET members with the same architecture (hyper-parameters, atomic types,
    targets, dtype) run in one batched pass with stacked weights; the weights are
    copied, so train members before building the ensemble.

    :param models: at least two modules (e.g. :class:`pet_mta.PET`),
        ``AtomisticModel`` or paths of saved ones
    :param stack: stack the weights of PET members when possible (``False``: always
        one member after another)
    :raises ValueError: (one line) fewer than two models, a file that does not
        load (named), members with other length units or dtypes, or with no
        output or atomic type in common
    """

    __jit_ignored_attributes__ = ["info"]

    def __init__(self, models: Sequence[ModelLike], stack: bool = True):
        if isinstance(models, (str, os.PathLike, torch.nn.Module)):
            raise ValueError(
                "models must be a list of at least two models, got a single one"
            )
        stack = flag("stack", stack)
        models = list(models)
        if len(models) < 2:
            raise ValueError("an ensemble needs at least two members")
        loaded = [
            load_model(model, name=f"member {i}") for i, model in enumerate(models)
        ]
        first = loaded[0].capabilities
        for member in loaded[1:]:
            capabilities = member.capabilities
            if capabilities.length_unit != first.length_unit:
                raise ValueError(
                    "ensemble members must use the same length unit, got "
                    f"'{first.length_unit}' and '{capabilities.length_unit}'"
                )
            if capabilities.dtype != first.dtype:
                raise ValueError(
                    "ensemble members must use the same dtype, got "
                    f"{first.dtype} and {capabilities.dtype}"
                )
        averaged = [
            name
            for name in loaded[0].output_names
            if averageable(name)
            and all(name in m.output_names for m in loaded[1:])
            and all(m.outputs[name].sample_kind in ("system", "atom") for m in loaded)
        ]
        if len(averaged) == 0:
            raise ValueError("ensemble members have no output in common")
        if len(common_types(loaded)) == 0:
            raise ValueError("ensemble members have no atomic type in common")
        reference = loaded[0].outputs
        factors: List[Dict[str, float]] = []
        for i, member in enumerate(loaded):
            factor: Dict[str, float] = {}
            for name in averaged:
                unit, wanted = member.outputs[name].unit, reference[name].unit
                try:
                    factor[name] = (
                        1.0
                        if unit == wanted
                        else float(unit_conversion_factor(unit, wanted))
                    )
                except ValueError as error:
                    raise ValueError(
                        f"member {i} gives '{name}' in '{unit}', member 0 in "
                        f"'{wanted}': {error}"
                    ) from error
            factors.append(factor)
        stacked = stack_members([m.module for m in loaded]) if stack else None
        super().__init__(loaded, averaged, factors, stacked)
        self.info = _Info(loaded)

    @torch.jit.unused
    def capabilities(self) -> ModelCapabilities:
        """Shared outputs (mean) plus ``energy_ensemble`` and ``energy_uncertainty``.

        Per atom where every member gives the output per atom, per system
        otherwise; atomic types common to all members, the largest interaction
        range, the devices every member supports.
        """
        members = self.info.members
        reference = members[0].outputs
        outputs: Dict[str, ModelOutput] = {}
        for name in self.averaged:
            output = reference[name]
            kind = (
                "atom" if all(per_atom(m.outputs[name]) for m in members) else "system"
            )
            outputs[name] = ModelOutput(
                unit=output.unit,
                sample_kind=kind,
                description=(
                    f"mean over {self.n_members} ensemble members. "
                    + output.description
                ).strip(),
            )
            if is_energy(name):
                outputs[derived_name(name, "ensemble")] = ModelOutput(
                    unit=output.unit,
                    sample_kind=kind,
                    description=f"'{name}' of every ensemble member",
                )
                outputs[derived_name(name, "uncertainty")] = ModelOutput(
                    unit=output.unit,
                    sample_kind=kind,
                    description=(
                        f"standard deviation of '{name}' over the ensemble members "
                        "(N - 1 normalisation)"
                    ),
                )
        devices = [
            device
            for device in members[0].capabilities.supported_devices
            if all(device in m.capabilities.supported_devices for m in members[1:])
        ]
        first = members[0].capabilities
        return ModelCapabilities(
            outputs=outputs,
            atomic_types=common_types(members),
            interaction_range=max(m.interaction_range for m in members),
            length_unit=first.length_unit,
            supported_devices=devices,
            dtype=first.dtype,
        )

    @torch.jit.unused
    def metadata(self) -> ModelMetadata:
        """The first member's metadata, with the ensemble in the name; the
        authors and references of all members."""
        members = [member.metadata for member in self.info.members]
        return wrapped_metadata(
            members,
            f"ensemble of {self.n_members} x {members[0].name or 'model'}",
            f"Mean of {self.n_members} models, with the spread over members as "
            "energy_uncertainty.",
            ENSEMBLE_REFERENCE,
        )

    @torch.jit.unused
    def export(self, metadata: Optional[ModelMetadata] = None) -> AtomisticModel:
        """This ensemble as an ``AtomisticModel`` (a copy in eval mode, so that
        the members given to :class:`Ensemble` stay trainable)."""
        return AtomisticModel(
            copy.deepcopy(self).eval(),
            metadata if metadata is not None else self.metadata(),
            self.capabilities(),
        )

    @staticmethod
    def wrap(models: Sequence[ModelLike], stack: bool = True) -> AtomisticModel:
        """Build and export in one step, like
        ``metatomic.torch.o3.SymmetrizedModel.wrap(model) -> AtomisticModel``.
        """
        return Ensemble(models, stack=stack).export()


def common_types(members: List[Backbone]) -> List[int]:
    """The atomic types every member knows, sorted."""
    types = set(members[0].capabilities.atomic_types)
    for member in members[1:]:
        types &= set(member.capabilities.atomic_types)
    return sorted(types)


class _Info:
    """Python-only description of an :class:`Ensemble` (not scripted)."""

    def __init__(self, members: List[Backbone]):
        self.members = members
