"""One batch through the model during training: predictions (forces and stress by
autograd), per-atom averaging, the loss on targets divided by their scales, and the
metrics in physical units; and one pass over a loader without training
(:func:`validate`).

Per-system targets enter the loss per atom unless listed in
``per_structure_targets``; direct forces and stresses trained with the energy are
divided by the energy's scale, like the conservative ones, and direct stresses
enter the loss multiplied by the cell volume (virials).
"""

from typing import Any, Dict, List

import torch
import torch.distributed
from metatensor.torch import TensorBlock, TensorMap
from metatrain.utils.data import unpack_batch
from metatrain.utils.evaluate_model import evaluate_model
from metatrain.utils.metrics import MAEAccumulator, RMSEAccumulator
from metatrain.utils.per_atom import average_by_num_atoms
from metatrain.utils.transfer import batch_to

from ..targets import DIRECT_OUTPUTS
from .model import PETModel


def map_values(tensor: TensorMap, function) -> TensorMap:
    """Apply ``function`` to the values of every block and gradient of ``tensor``."""
    blocks = []
    for block in tensor.blocks():
        new = TensorBlock(
            values=function(block.values),
            samples=block.samples,
            components=block.components,
            properties=block.properties,
        )
        for parameter, gradient in block.gradients():
            new.add_gradient(
                parameter,
                TensorBlock(
                    values=function(gradient.values),
                    samples=gradient.samples,
                    components=gradient.components,
                    properties=gradient.properties,
                ),
            )
        blocks.append(new)
    return TensorMap(tensor.keys, blocks)


def normalised(
    tensors: Dict[str, TensorMap], scales: Dict[str, float]
) -> Dict[str, TensorMap]:
    """Every tensor divided by the scale of its target (gradients included)."""
    return {
        name: map_values(t, lambda v, s=scales[name]: v / s)
        for name, t in tensors.items()
    }


def loss_scales(model: PETModel, names: List[str]) -> Dict[str, float]:
    """What every target is divided by in the loss: its scale, except direct forces
    and stresses trained with the energy, which use the energy's scale like the
    conservative forces and virials they replace (so both get the same weight)."""
    scales = {name: float(model.pet.readouts[name].scale[0]) for name in names}
    if "energy" in scales:
        for name in names:
            if name in DIRECT_OUTPUTS:
                scales[name] = scales["energy"]
    return scales


def stress_times_volume(
    tensors: Dict[str, TensorMap], systems: list, names: List[str]
) -> Dict[str, TensorMap]:
    """Per-system direct stresses (``names``) multiplied by the cell volume.

    After the per-atom averaging this is the virial per atom, the quantity whose
    RMS is the stress target's scale, so the normalised stress loss is O(1).
    """
    volumes = torch.stack([torch.abs(torch.det(s.cell)) for s in systems])
    result = dict(tensors)
    for name in names:
        if name in result and "atom" not in result[name].block().samples.names:
            result[name] = map_values(
                result[name],
                lambda v: v * volumes.to(v).reshape((-1,) + (1,) * (v.dim() - 1)),
            )
    return result


class Metrics:
    """RMSE (and MAE) accumulators of one pass over a data set."""

    def __init__(self, hypers: Dict[str, Any]):
        separate = hypers["log_separate_blocks"]
        self.accumulators = [RMSEAccumulator(separate)]
        if hypers["log_mae"]:
            self.accumulators.append(MAEAccumulator(separate))
        self.not_per_atom = ["positions_gradients"] + hypers["per_structure_targets"]

    def update(self, predictions, targets, extra_data) -> None:
        for accumulator in self.accumulators:
            accumulator.update(predictions, targets, extra_data)

    def finalize(self, loss: float, distributed: bool, device) -> Dict[str, float]:
        result = {"loss": loss}
        for accumulator in self.accumulators:
            result.update(
                accumulator.finalize(
                    not_per_atom=self.not_per_atom,
                    is_distributed=distributed,
                    device=device,
                )
            )
        return result


class Step:
    """Evaluate one batch: predictions, per-atom averaging, normalised loss."""

    def __init__(
        self, network, targets, loss_fn, scales, hypers, dtype, device, distributed
    ):
        self.network = network
        self.targets = targets
        self.loss_fn = loss_fn
        self.scales = scales
        self.per_structure = list(hypers["per_structure_targets"])
        self.dtype = dtype
        self.device = device
        self.distributed = distributed
        self.needs_gradients = any(len(t.gradients) > 0 for t in targets.values())
        pet = getattr(network, "module", network).pet
        self.stresses = list(pet.stress_targets)

    def __call__(self, batch, training: bool):
        systems, targets, extra = unpack_batch(batch)
        systems, targets, extra = batch_to(
            systems, targets, extra, dtype=self.dtype, device=self.device
        )
        predictions = evaluate_model(
            self.network,
            systems,
            {name: self.targets[name] for name in targets},
            is_training=training,
        )
        predictions = average_by_num_atoms(predictions, systems, self.per_structure)
        targets = average_by_num_atoms(targets, systems, self.per_structure)
        loss = self.loss_fn(
            normalised(
                stress_times_volume(predictions, systems, self.stresses), self.scales
            ),
            normalised(
                stress_times_volume(targets, systems, self.stresses), self.scales
            ),
            extra,
        )
        if training and self.distributed:
            # every parameter must take part in the graph for DDP
            loss = loss + 0.0 * sum(
                p.sum() for p in self.network.parameters() if p.requires_grad
            )
        detached = {
            name: map_values(t, torch.Tensor.detach) for name, t in predictions.items()
        }
        return loss, detached, targets, extra


def complete_loss_config(loss: Any, targets: Dict[str, Any]) -> Dict[str, Any]:
    """Loss settings of every target and gradient, filling metatrain's defaults
    (``mse``, weight 1, mean) where ``loss`` (a type name, or the per-target
    dictionary that ``mtt train`` expands) says nothing."""

    def term(spec: Any) -> Dict[str, Any]:
        result = {"type": "mse", "weight": 1.0, "reduction": "mean"}
        if isinstance(spec, str):
            result["type"] = spec
        elif spec:
            result.update({k: v for k, v in dict(spec).items() if k != "gradients"})
        return result

    config = {}
    for name, info in targets.items():
        spec = loss if isinstance(loss, str) else dict(loss).get(name, {})
        entry = term(spec)
        given = {} if isinstance(spec, str) else dict(spec or {}).get("gradients", {})
        default = spec if isinstance(spec, str) else entry["type"]
        entry["gradients"] = {
            gradient: term(given.get(gradient, default)) for gradient in info.gradients
        }
        config[name] = entry
    return config


def validate(step, loader, hypers, distributed: bool, device) -> Dict[str, float]:
    """Loss and metrics of one pass over the validation set."""
    metrics = Metrics(hypers)
    total = 0.0
    with torch.set_grad_enabled(step.needs_gradients):
        for batch in loader:
            loss, predictions, batch_targets, extra = step(batch, training=False)
            total += reduced(loss, distributed)
            metrics.update(predictions, batch_targets, extra)
    return metrics.finalize(total, distributed, device)


def reduced(loss: torch.Tensor, distributed: bool) -> float:
    """The loss of this batch summed over processes, as a number."""
    value = loss.detach().clone()
    if distributed:
        torch.distributed.all_reduce(value)
    return float(value)
