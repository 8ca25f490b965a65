"""Low-rank adapters (LoRA) on the ``torch.nn.Linear`` layers of a model.

An adapted layer computes ``x @ (W + (alpha / rank) B A).T + b``: the pretrained
``W`` (``[out, in]``) and ``b`` stay frozen, only ``A`` (``[rank, in]``) and ``B``
(``[out, rank]``) train. ``B`` starts at zero, so adding adapters changes no
prediction. The adapter is a weight *parametrization*
(``torch.nn.utils.parametrize``): the layer stays the same ``Linear`` object and
its ``weight`` attribute gives the adapted matrix, so code that reads
``layer.weight`` directly (the fused attention projection) sees the adapted weight
too. The pretrained matrix is kept, not copied, as
``<layer>.parametrizations.weight.original``.

Parametrized modules cannot be compiled by TorchScript: :func:`merged_state_dict`
folds the adapters into plain ``weight`` entries, which is what exported models
are built from.
"""

import math
from typing import Dict, List, Optional, Sequence

import torch
from torch.nn.utils import parametrize

ALIASES = {"input_linear": "qkv", "output_linear": "out"}
"""metatrain's ``pet`` names of the attention projections -> pet_mta's."""

DEFAULT_TARGETS = ["qkv", "out"]
"""Linear layers adapted by default: every attention's input (query, key, value)
and output projections, as in metatrain's ``pet``."""

_PREFIX = ".parametrizations.weight."


class LowRankAdapter(torch.nn.Module):
    """Weight parametrization ``W -> W + scaling * lora_B @ lora_A``.

    :param out_features: rows of the adapted weight
    :param in_features: columns of the adapted weight
    :param rank: rank of the update
    :param scaling: ``alpha / rank``; a buffer, so a state dict describes it
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        rank: int,
        scaling: float,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ):
        super().__init__()
        self.lora_A = torch.nn.Parameter(
            torch.empty(rank, in_features, dtype=dtype, device=device)
        )
        # the initialisation of torch.nn.Linear, so the update is O(1) once B moves
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.nn.Parameter(
            torch.zeros(out_features, rank, dtype=dtype, device=device)
        )
        self.register_buffer(
            "scaling", torch.tensor(float(scaling), dtype=dtype, device=device)
        )

    @property
    def rank(self) -> int:
        return self.lora_A.shape[0]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scaling * (self.lora_B @ self.lora_A)


def _new_adapter(weight: torch.Tensor, rank: int, scaling: float) -> LowRankAdapter:
    """An adapter for a layer of weight ``weight`` (same dtype and device)."""
    if weight.dim() != 2:
        raise ValueError(
            f"LoRA adapts [out, in] weights of one model, not shape "
            f"{tuple(weight.shape)} (a stack of models)"
        )
    return LowRankAdapter(
        weight.shape[0],
        weight.shape[1],
        rank,
        scaling,
        dtype=weight.dtype,
        device=weight.device,
    )


def _adapter(layer: torch.nn.Module):
    """The adapter of ``layer``, or ``None``."""
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for parametrization in layer.parametrizations.weight:
        if isinstance(parametrization, LowRankAdapter):
            return parametrization
    return None


def adapted_layers(module: torch.nn.Module) -> Dict[str, LowRankAdapter]:
    """``{layer name: adapter}`` for every adapted layer inside ``module``."""
    result = {}
    for name, layer in module.named_modules():
        adapter = _adapter(layer)
        if adapter is not None:
            result[name] = adapter
    return result


def resolve_targets(target_modules: Sequence[str]) -> List[str]:
    """pet_mta's attribute names for ``target_modules`` (metatrain's aliases
    translated)."""
    return [ALIASES.get(name, name) for name in target_modules]


def add_adapters(
    module: torch.nn.Module, target_modules: Sequence[str], rank: int, alpha: float
) -> List[str]:
    """Adapt every ``Linear`` held as an attribute named in ``target_modules`` by a
    module inside ``module`` (already adapted layers are left alone).

    :param rank: rank of the updates (positive)
    :param alpha: the update is multiplied by ``alpha / rank``
    :return: names of the newly adapted layers
    :raises ValueError: when no layer matches ``target_modules``
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"LoRA 'rank' must be a positive integer, got {rank!r}")
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"LoRA 'alpha' must be a positive number, got {alpha!r}")
    names = resolve_targets(target_modules)
    found = []
    for parent_name, parent in module.named_modules():
        for attribute in names:
            layer = getattr(parent, attribute, None)
            if isinstance(layer, torch.nn.Linear) and _adapter(layer) is None:
                found.append((f"{parent_name}.{attribute}".lstrip("."), layer))
    if not found:
        raise ValueError(
            f"LoRA 'target_modules' {list(target_modules)} match no linear layer of "
            f"the model (pet_mta names: {sorted(_linear_attributes(module))})"
        )
    for _, layer in found:
        adapter = _new_adapter(layer.weight, rank, alpha / rank)
        parametrize.register_parametrization(layer, "weight", adapter)
    return [name for name, _ in found]


def _linear_attributes(module: torch.nn.Module) -> set:
    """Attribute names under which ``Linear`` layers are held in ``module``."""
    return {
        name.rsplit(".", 1)[-1]
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear)
    }


def restore_adapters(module: torch.nn.Module, state: Dict[str, torch.Tensor]) -> int:
    """Add the adapters that a state dict of ``module`` holds (to load it into a
    freshly built ``module``); ranks and scalings are read from ``state``.

    :return: number of adapters added
    """
    added = 0
    for key, lora_a in state.items():
        if not key.endswith(_PREFIX + "0.lora_A"):
            continue
        name = key[: -len(_PREFIX + "0.lora_A")]
        layer = module.get_submodule(name)
        if _adapter(layer) is not None:
            continue
        scaling = float(state[name + _PREFIX + "0.scaling"])
        adapter = _new_adapter(layer.weight, lora_a.shape[0], scaling)
        parametrize.register_parametrization(layer, "weight", adapter)
        added += 1
    return added


def merged_state_dict(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The state dict of ``module`` with every adapter folded into its layer's
    ``weight`` (``W + scaling B A``): the state dict of the same model without
    adapters."""
    state = module.state_dict()
    for name, _ in adapted_layers(module).items():
        prefix = f"{name}." if name else ""
        for key in [k for k in state if k.startswith(prefix + "parametrizations.")]:
            del state[key]
        with torch.no_grad():
            state[prefix + "weight"] = module.get_submodule(name).weight.detach()
    return state
