"""One loading path for every wrapper: a metatomic model in any form -> a backbone.

Wrappers (ECSE symmetrization, ensembles, ...) accept

- a ``torch.nn.Module`` following ``metatomic.torch.ModelInterface`` that can export
  itself (``module.export() -> AtomisticModel``, e.g. :class:`pet_mta.PET`), or any
  such module together with its ``ModelCapabilities``;
- an exported ``metatomic.torch.AtomisticModel`` (Python or TorchScript);
- the path of a saved ``AtomisticModel`` (``.pt``).

:func:`load_model` turns all of them into a :class:`Backbone`: the bare
``ModelInterface`` module to call from a wrapper's ``forward`` (uniform signature
``module(systems, outputs, selected_atoms)``, model units, no unit conversion), plus
its capabilities, metadata, requested neighbour lists and inputs, and dtype.
:class:`WrapperModule`, the base of the wrapper modules, hands the neighbour lists
and inputs of the wrapped models to the engine.
"""

import os
from typing import Dict, List, Optional, Union

import torch
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    load_atomistic_model,
)

from ..neighbors import merge_neighbor_lists, requested_neighbor_lists

ModelLike = Union[str, "os.PathLike[str]", AtomisticModel, torch.nn.Module]


def wrapped_metadata(
    originals: List[ModelMetadata], name: str, description: str, reference: str
) -> ModelMetadata:
    """Metadata of a wrapper model: its ``name``, its ``description`` before the
    first wrapped model's, the authors and references of every wrapped model (each
    once) and the wrapper's own ``reference`` among the architecture references."""
    references: Dict[str, List[str]] = {
        key: [] for key in ("implementation", "architecture", "model")
    }
    authors: List[str] = []
    for original in originals:
        for key, known in references.items():
            known += [r for r in original.references.get(key, []) if r not in known]
        authors += [a for a in original.authors if a not in authors]
    if reference not in references["architecture"]:
        references["architecture"].append(reference)
    return ModelMetadata(
        name=name,
        description=(description + " " + originals[0].description).strip(),
        authors=authors,
        references=references,
    )


class Backbone:
    """A model ready to be wrapped (plain Python object, not a module).

    :ivar module: the ``ModelInterface`` module (call it as
        ``module(systems, outputs, selected_atoms)``); the wrapper registers it as a
        sub-module so that its neighbour-list requests and parameters follow
    :ivar capabilities: outputs, atomic types, interaction range, length unit, dtype
    :ivar metadata: name, authors, references
    :ivar neighbor_lists: every neighbour list the module requests
    :ivar inputs: the custom system data the module requests (may be empty)
    :ivar dtype: dtype the module computes in
    """

    def __init__(
        self,
        module: torch.nn.Module,
        capabilities: ModelCapabilities,
        metadata: ModelMetadata,
        neighbor_lists: List[NeighborListOptions],
        inputs: Dict[str, ModelOutput],
    ):
        self.module = module
        self.capabilities = capabilities
        self.metadata = metadata
        self.neighbor_lists = neighbor_lists
        self.inputs = inputs
        self.output_names = list(capabilities.outputs.keys())
        self.dtype = torch.float64 if capabilities.dtype == "float64" else torch.float32

    @property
    def outputs(self) -> Dict[str, ModelOutput]:
        """The outputs the model declares, by name (without deprecated aliases)."""
        return {
            name: output
            for name, output in self.capabilities.outputs.items()
            if name in self.output_names
        }

    @property
    def interaction_range(self) -> float:
        """How far an atom's outputs see (length unit of the model)."""
        return float(self.capabilities.interaction_range)

    @property
    def largest_cutoff(self) -> float:
        """The largest cutoff of the requested neighbour lists (0 if none)."""
        return max([float(o.cutoff) for o in self.neighbor_lists], default=0.0)


class WrapperModule(torch.nn.Module):
    """Base of the TorchScript-able wrapper modules (ECSE, ensemble).

    The engine computes the neighbour lists and custom inputs of every model the
    wrapper evaluates on the engine's systems (metatomic does not find those of a
    model loaded from a file inside its module), besides the wrapper's own lists
    (:meth:`own_neighbor_lists`). A subclass re-declares the class annotations
    ``engine_lists`` and ``engine_inputs`` (TorchScript reads the annotations of
    one class only).

    :param engine_models: the wrapped models evaluated on the engine's systems
    """

    engine_lists: List[NeighborListOptions]
    engine_inputs: Dict[str, ModelOutput]

    def __init__(self, engine_models: List["Backbone"]):
        super().__init__()
        self.engine_lists = merge_neighbor_lists(
            *[model.neighbor_lists for model in engine_models]
        )
        self.engine_inputs = merge_inputs(*[model.inputs for model in engine_models])

    def own_neighbor_lists(self) -> List[NeighborListOptions]:
        """The lists the wrapper itself reads (none here)."""
        lists: List[NeighborListOptions] = []
        return lists

    @torch.jit.export
    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """The wrapper's own lists, then those of the wrapped models."""
        return self.own_neighbor_lists() + self.engine_lists

    @torch.jit.export
    def requested_inputs(self) -> Dict[str, ModelOutput]:
        """The custom inputs of the wrapped models."""
        return self.engine_inputs


def load_model(
    model: ModelLike,
    capabilities: Optional[ModelCapabilities] = None,
    metadata: Optional[ModelMetadata] = None,
    extensions_directory: Optional[str] = None,
    name: str = "model",
) -> Backbone:
    """Bring ``model`` into the :class:`Backbone` form wrappers work with.

    Anything that is not a model, or a file that does not load, is a one-line
    ``ValueError`` (naming ``name`` or the file).

    :param model: module, ``AtomisticModel`` or path of a saved ``AtomisticModel``
    :param capabilities: required for a module that cannot ``export()`` itself;
        overrides the exported ones otherwise
    :param metadata: overrides the model's metadata
    :param extensions_directory: TorchScript extensions of a saved model
    :param name: what ``model`` is to the caller (``backbone``, ``auxiliary``, ...),
        for error messages
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_file(str(model), extensions_directory)

    if _is_atomistic(model):
        module = model.module
        exported = model
    elif isinstance(model, torch.nn.Module):
        module = model
        exported = None
        if hasattr(model, "export") and capabilities is None:
            exported = model.export()
        elif capabilities is None and hasattr(model, "capabilities"):
            capabilities = model.capabilities()
        if exported is None and capabilities is None:
            raise ValueError(
                f"{name}: give the capabilities of a module that cannot export itself"
            )
    else:
        raise ValueError(
            f"{name} must be a metatomic module, an AtomisticModel or the path of a "
            f"saved one, got {type(model).__name__}"
        )

    if exported is not None:
        if capabilities is None:
            capabilities = exported.capabilities()
        if metadata is None:
            metadata = exported.metadata()
        neighbor_lists = list(exported.requested_neighbor_lists())
        inputs = dict(exported.requested_inputs(use_new_names=True))
    else:
        neighbor_lists = requested_neighbor_lists(module)
        inputs = _collect_inputs(module)
    if metadata is None:
        metadata = ModelMetadata()
    backbone = Backbone(module, capabilities, metadata, neighbor_lists, inputs)
    # the names as declared, without the deprecation aliases metatomic adds
    declared = getattr(exported, "_model_capabilities_outputs_names", None)
    if declared is not None:
        backbone.output_names = list(declared)
    return backbone


def load_file(path: str, extensions_directory: Optional[str] = None) -> AtomisticModel:
    """Load a saved ``AtomisticModel``; any failure is a one-line ``ValueError``
    naming the file (``cannot load model 'path': reason``)."""
    if not os.path.isfile(path):
        reason = "no such file" if not os.path.exists(path) else "not a file"
        raise ValueError(f"cannot load model '{path}': {reason}")
    try:
        return load_atomistic_model(path, extensions_directory)
    except Exception as error:  # noqa: BLE001 (torch, metatomic: many kinds)
        raise ValueError(f"cannot load model '{path}': {first_line(error)}") from error


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type), cut to
    its first sentence when long (torch appends paragraphs of advice)."""
    for line in str(error).splitlines():
        line = line.strip()
        if len(line) > 120 and ". " in line:
            line = line[: line.index(". ") + 1]
        if line:
            return line
    return type(error).__name__


def merge_inputs(*groups: Dict[str, ModelOutput]) -> Dict[str, ModelOutput]:
    """Every custom input of ``groups``, each once; an input requested with two
    units or sample kinds is a ``ValueError`` naming it."""
    merged: Dict[str, ModelOutput] = {}
    for group in groups:
        for name, request in group.items():
            known = merged.get(name)
            if known is not None and (
                known.unit != request.unit or known.sample_kind != request.sample_kind
            ):
                raise ValueError(
                    f"the wrapped models request the input '{name}' with different "
                    "units or sample kinds"
                )
            merged[name] = request
    return merged


def _is_atomistic(model) -> bool:
    if isinstance(model, AtomisticModel):
        return True
    # TorchScript AtomisticModel (loaded from a file)
    return (
        isinstance(model, torch.jit.ScriptModule)
        and hasattr(model, "capabilities")
        and hasattr(model, "module")
    )


def _collect_inputs(module: torch.nn.Module) -> Dict[str, ModelOutput]:
    return merge_inputs(
        *[
            sub.requested_inputs()
            for sub in module.modules()
            if hasattr(sub, "requested_inputs")
        ]
    )
