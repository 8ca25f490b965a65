"""Fine-tuning strategies: ``full`` (train everything) and ``heads`` (train only
the read-out heads), plus copying heads between targets (``inherit_heads``)."""

import logging
from typing import Any, Dict

import torch

from ..model import PET


def inherit_heads(pet: PET, mapping: Dict[str, str]) -> None:
    """Copy the read-out weights of ``mapping[new]`` into ``new`` (same shapes)."""
    for new, old in mapping.items():
        if new not in pet.readouts or old not in pet.readouts:
            raise ValueError(
                f"inherit_heads: '{new}' and '{old}' must both be targets of the "
                f"model (targets: {list(pet.readouts.keys())})"
            )
        source = pet.readouts[old].state_dict()
        pet.readouts[new].load_state_dict(source)
        logging.info(f"heads of '{new}' start from a copy of the heads of '{old}'")


def apply_finetune(pet: PET, config: Dict[str, Any], fresh_start: bool) -> None:
    """Prepare ``pet`` for fine-tuning according to the ``finetune`` hypers.

    :param fresh_start: copy heads only when fine-tuning starts, not when a
        fine-tuning run is restarted
    """
    method = config.get("method", "full")
    if method not in ("full", "heads"):
        raise ValueError(
            f"fine-tuning method '{method}' is not available in pet_mta; use "
            "'full' or 'heads'"
        )
    if fresh_start and config.get("inherit_heads"):
        inherit_heads(pet, dict(config["inherit_heads"]))
    for name, parameter in pet.named_parameters():
        parameter.requires_grad_(method == "full" or name.startswith("readouts."))
    trainable = sum(p.numel() for p in pet.parameters() if p.requires_grad)
    total = sum(p.numel() for p in pet.parameters())
    logging.info(f"fine-tuning ({method}): {trainable} of {total} weights trainable")


def trainable_parameters(module: torch.nn.Module):
    """The parameters that the optimiser updates."""
    return [p for p in module.parameters() if p.requires_grad]
