"""The metatrain face of :class:`pet_mta.PET`: hypers, checkpoints, restart, export.

``PETModel`` holds one core :class:`pet_mta.PET` as ``self.pet``; everything the
network computes happens there, and :meth:`PETModel.export` exports exactly that
module, so models trained with ``mtt train`` are ordinary pet_mta models.
"""

import logging
from typing import Any, Dict, List, Literal, Optional

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)
from metatrain.utils.abc import ModelInterface
from metatrain.utils.data import DatasetInfo
from metatrain.utils.hypers import raise_if_hypers_mismatch
from metatrain.utils.metadata import merge_metadata

from ..export import default_metadata
from ..export import export as export_pet
from ..hypers import DEFAULT_MODEL_HYPERS
from ..model import PET
from ..modules import lora
from ..species import load_extended_state
from . import checkpoints
from .documentation import ModelHypers
from .targets import targets_from_infos

ARCHITECTURE_NAME = "pet_mta"


def core_hypers(hypers: Dict[str, Any]) -> Dict[str, Any]:
    """The model hypers as :class:`pet_mta.PET` keyword arguments.

    :raises ValueError: for a name the core model does not know
    """
    unknown = sorted(set(hypers) - set(DEFAULT_MODEL_HYPERS))
    if unknown:
        raise ValueError(f"unknown pet_mta model hyper-parameters: {unknown}")
    return dict(hypers)


class PETModel(ModelInterface[ModelHypers]):
    """metatrain ``ModelInterface`` around a core :class:`pet_mta.PET`.

    :param hypers: model hypers (see :class:`.documentation.ModelHypers`)
    :param dataset_info: atomic types, length unit and targets
    :param metadata: metadata of exported models (defaults to pet_mta's)
    """

    __checkpoint_version__ = 7
    __supported_devices__ = ["cuda", "cpu"]
    __supported_dtypes__ = [torch.float32, torch.float64]
    __default_metadata__ = default_metadata()

    def __init__(
        self,
        hypers: ModelHypers,
        dataset_info: DatasetInfo,
        metadata: Optional[ModelMetadata] = None,
    ) -> None:
        super().__init__(
            hypers,
            dataset_info,
            metadata if metadata is not None else self.__default_metadata__,
        )
        self.atomic_types: List[int] = sorted(dataset_info.atomic_types)
        self.pet = self._build_pet(dataset_info)
        self.outputs: Dict[str, ModelOutput] = self.pet.output_capabilities()
        """Every target and the core model's other outputs (``feature``, last-layer
        features), all per-atom capable: PET predicts atomic contributions and
        per-system values are their sums, so wrappers built on these capabilities
        (metatrain's ``llpr``) can be asked for per-atom values."""
        self.has_new_targets = False
        """Whether :meth:`restart` added targets (new, untrained heads)."""
        self.untrained_targets: List[str] = list(dataset_info.targets)
        """Targets whose baseline and scale the trainer still has to fit."""
        self.new_atomic_types: List[int] = []
        """Atomic types added by :meth:`restart`, whose baselines the trainer still
        has to fit for the trained targets."""
        self._describe_last_layer()

    def _describe_last_layer(self) -> None:
        """What metatrain's ``llpr`` wrapper reads from the model it wraps.

        ``core_outputs``: the outputs the network computes;
        ``last_layer_feature_size``: width of ``mtt::aux::<target>_last_layer_features``
        (``2 * d_head`` per read-out layer: node hidden, cutoff-weighted edge sum);
        ``last_layer_parameter_names[target]``: the state-dict names of the weights
        mapping those features to the target, in the features' order.
        """
        self.core_outputs: List[str] = list(self.pet.output_capabilities())
        n_readout = len(next(iter(self.pet.readouts.values())).node_heads)
        self.last_layer_feature_size = 2 * int(self.hypers["d_head"]) * n_readout
        self.last_layer_parameter_names: Dict[str, List[str]] = {}
        for name in self.pet.readouts.keys():
            prefix = f"pet.readouts.{name}."
            self.last_layer_parameter_names[name] = [
                prefix + f"{kind}_heads.{i}.last.weight"
                for i in range(n_readout)
                for kind in ("node", "edge")
            ]

    def _build_pet(self, dataset_info: DatasetInfo) -> PET:
        return PET(
            atomic_types=self.atomic_types,
            targets=targets_from_infos(dataset_info.targets),
            length_unit=dataset_info.length_unit,
            **core_hypers(dict(self.hypers)),
        )

    # ------------------------------------------------------------- evaluation
    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Same as :meth:`pet_mta.PET.forward`, for the outputs the network has.

        Wrapper architectures (metatrain's ``llpr``) pass on requests for the
        outputs they add themselves (``energy_uncertainty``, ...): those are left
        out here, as metatrain's own models do.
        """
        known: Dict[str, ModelOutput] = {}
        for name, output in outputs.items():
            if name in self.core_outputs:
                known[name] = output
        return self.pet(systems, known, selected_atoms)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """The core model's neighbour list (full, at the cutoff)."""
        return self.pet.requested_neighbor_lists()

    def supported_outputs(self) -> Dict[str, ModelOutput]:
        return self.outputs

    # ------------------------------------------------------------- restart
    def restart(
        self,
        dataset_info: DatasetInfo,
        model_hypers: Optional[Dict[str, Any]] = None,
    ) -> "PETModel":
        """Continue training, possibly on new data or with new targets.

        New targets get new (randomly initialised) heads; new atomic types get new
        embedding rows (see :mod:`pet_mta.species`: structures of the old types
        are predicted as before). Every existing weight is kept; model hypers
        cannot change.
        """
        if model_hypers:
            from metatrain.utils.architectures import get_default_hypers

            raise_if_hypers_mismatch(
                self.hypers,
                model_hypers,
                default_hypers=get_default_hypers(ARCHITECTURE_NAME)["model"],
            )
        new_types = sorted(set(dataset_info.atomic_types) - set(self.atomic_types))
        for name, info in dataset_info.targets.items():
            old = self.dataset_info.targets.get(name)
            if old is not None and not old.is_compatible_with(info):
                raise ValueError(
                    f"target '{name}' of the new dataset is incompatible with the "
                    "target of the same name in the model"
                )
        merged = self.dataset_info.union(dataset_info)
        added = [name for name in merged.targets if name not in self.outputs]
        old_types = self.atomic_types
        self.atomic_types = sorted(set(old_types) | set(new_types))
        merged.atomic_types = self.atomic_types
        if added:
            logging.info(f"adding new targets to the model: {added}")
            self.has_new_targets = True
            self.untrained_targets = list(self.untrained_targets) + added
        if new_types:
            logging.info(f"adding atomic types to the model: {new_types}")
            self.new_atomic_types = sorted(set(self.new_atomic_types) | set(new_types))
        if added or new_types:
            self._rebuild_pet(merged, old_types)
        self.dataset_info = merged
        self.outputs = self.pet.output_capabilities()
        self._describe_last_layer()
        return self

    def _rebuild_pet(self, dataset_info: DatasetInfo, old_types: List[int]) -> None:
        """A core model for ``dataset_info`` holding the current weights (and LoRA
        adapters); the heads of new targets and the rows of new types are new."""
        state = self.pet.state_dict()
        parameter = next(self.pet.parameters())
        pet = self._build_pet(dataset_info).to(parameter.device, parameter.dtype)
        lora.restore_adapters(pet, state)
        missing = load_extended_state(pet, state, old_types)
        assert all(key.startswith("readouts.") for key in missing), missing
        self.pet = pet

    def _plain_pet(self) -> PET:
        """The core model with its LoRA adapters (if any) folded into the weights."""
        if not lora.adapted_layers(self.pet):
            return self.pet
        parameter = next(self.pet.parameters())
        pet = self._build_pet(self.dataset_info).to(parameter.device, parameter.dtype)
        pet.load_state_dict(lora.merged_state_dict(self.pet))
        return pet

    # ------------------------------------------------------------- checkpoints
    def get_checkpoint(self) -> Dict[str, Any]:
        """Everything needed to rebuild this model (no trainer state)."""
        return {
            "architecture_name": ARCHITECTURE_NAME,
            "model_ckpt_version": self.__checkpoint_version__,
            "metadata": self.metadata,
            "model_data": {
                "model_hypers": dict(self.hypers),
                "dataset_info": self.dataset_info,
            },
            "model_state_dict": self.state_dict(),
            "best_model_state_dict": None,
            "epoch": None,
            "best_epoch": None,
        }

    @classmethod
    def load_checkpoint(
        cls,
        checkpoint: Dict[str, Any],
        context: Literal["restart", "finetune", "export"],
    ) -> "PETModel":
        """Rebuild the model: the latest weights to restart, the best ones (by
        validation metric) to fine-tune or export. LoRA adapters are kept to
        restart, folded into the weights to fine-tune or export."""
        if context == "restart":
            logging.info(f"Using latest model from epoch {checkpoint['epoch']}")
            state = checkpoint["model_state_dict"]
        elif context in ("finetune", "export"):
            logging.info(f"Using best model from epoch {checkpoint['best_epoch']}")
            state = checkpoint["best_model_state_dict"]
            if state is None:
                state = checkpoint["model_state_dict"]
        else:
            raise ValueError(f"unknown checkpoint context '{context}'")
        data = checkpoint["model_data"]
        model = cls(
            data["model_hypers"], data["dataset_info"], checkpoint.get("metadata")
        )
        dtype = next(v for v in state.values() if v.is_floating_point()).dtype
        model.to(dtype)
        lora.restore_adapters(model, state)
        model.load_state_dict(state)
        if context != "restart":
            model.pet = model._plain_pet()
        model.untrained_targets = []
        return model

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: Dict[str, Any]) -> Dict[str, Any]:
        return checkpoints.upgrade(
            checkpoint, "model", cls.__checkpoint_version__, checkpoints.MODEL_UPGRADES
        )

    # ------------------------------------------------------------- export
    def export(self, metadata: Optional[ModelMetadata] = None) -> AtomisticModel:
        """Export the core :class:`pet_mta.PET` (baseline and scale included) with
        :func:`pet_mta.export.export`, the one builder of its capabilities. LoRA
        adapters are folded into the weights of the exported copy."""
        return export_pet(self._plain_pet(), merge_metadata(self.metadata, metadata))
