"""Fine-tuning strategies: ``full`` (train everything), ``heads`` (train only the
read-out heads) and ``lora`` (train only low-rank adapters of the attention
layers), copying heads between targets (``inherit_heads``), and the baselines of
atomic types that a fine-tuning data set adds."""

import logging
import math
from typing import Any, Dict, List, Union

import torch

from ..model import PET
from ..modules import lora

METHODS = ("full", "heads", "lora")

LORA_DEFAULTS: Dict[str, Any] = {
    "rank": 4,
    "alpha": 8.0,
    "target_modules": list(lora.DEFAULT_TARGETS),
}
"""``finetune.config`` of ``method: lora`` (metatrain's ``pet`` names and
defaults; its ``input_linear``/``output_linear`` are accepted for ``qkv``/``out``)."""


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


def lora_config(config: Any) -> Dict[str, Any]:
    """``finetune.config`` completed with :data:`LORA_DEFAULTS`.

    :raises ValueError: for a key that LoRA does not know
    """
    given = dict(config or {})
    unknown = sorted(set(given) - set(LORA_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown LoRA option(s) {unknown} in finetune.config; known: "
            f"{sorted(LORA_DEFAULTS)}"
        )
    return {**LORA_DEFAULTS, **given}


def add_lora(pet: PET, config: Dict[str, Any]) -> None:
    """Adapt ``pet``'s layers as ``config`` says, or check that the adapters it
    already has (a restarted LoRA run) have the configured rank and alpha."""
    existing = lora.adapted_layers(pet)
    rank = config["rank"]
    scaling = float(config["alpha"]) / rank
    if existing:
        for name, adapter in existing.items():
            # the scaling is stored in the model's dtype
            stored = float(adapter.scaling)
            if adapter.rank != rank or not math.isclose(stored, scaling, rel_tol=1e-6):
                raise ValueError(
                    f"the model's LoRA adapter of '{name}' has rank {adapter.rank} "
                    f"and alpha {stored * adapter.rank:.6g}, not the "
                    f"configured rank {rank} and alpha {config['alpha']}"
                )
        return
    names = lora.add_adapters(pet, config["target_modules"], rank, config["alpha"])
    logging.info(f"LoRA adapters (rank {rank}) on {len(names)} layers")


def apply_finetune(
    pet: PET,
    config: Dict[str, Any],
    fresh_start: bool,
    untrained_heads: List[str],
    new_types: List[int],
) -> None:
    """Prepare ``pet`` for fine-tuning according to the ``finetune`` hypers.

    :param fresh_start: copy heads only when fine-tuning starts, not when a
        fine-tuning run is restarted
    :param untrained_heads: targets whose heads are randomly initialised
    :param new_types: atomic types that the fine-tuning data set adds
    """
    method = config.get("method", "full")
    if method not in METHODS:
        raise ValueError(
            f"fine-tuning method '{method}' is not available in pet_mta; use one "
            f"of {list(METHODS)}"
        )
    if new_types and method != "full":
        raise ValueError(
            f"the data set adds atomic types {new_types}: fine-tune with method "
            f"'full' ('{method}' keeps the species embeddings frozen)"
        )
    inherited = dict(config.get("inherit_heads") or {})
    if fresh_start and inherited:
        inherit_heads(pet, inherited)
    if method == "lora":
        random_heads = [t for t in untrained_heads if t not in inherited]
        if random_heads:
            raise ValueError(
                f"method 'lora' trains only the adapters, so the new targets "
                f"{random_heads} would keep random heads: name a source for them "
                "in 'inherit_heads', or fine-tune with 'heads' or 'full'"
            )
        add_lora(pet, lora_config(config.get("config")))
    for name, parameter in pet.named_parameters():
        if method == "full":
            trainable = True
        elif method == "heads":
            trainable = name.startswith("readouts.")
        else:
            trainable = "lora_" in name
        parameter.requires_grad_(trainable)
    trainable = sum(p.numel() for p in pet.parameters() if p.requires_grad)
    total = sum(p.numel() for p in pet.parameters())
    logging.info(f"fine-tuning ({method}): {trainable} of {total} weights trainable")


def trainable_parameters(module: torch.nn.Module):
    """The parameters that the optimiser updates."""
    return [p for p in module.parameters() if p.requires_grad]


def fit_new_type_baselines(
    pet: PET,
    targets: Dict[str, Any],
    new_types: List[int],
    atomic_baseline: Union[dict, str],
    train_datasets: list,
) -> None:
    """Fit the baseline of the atomic types ``new_types`` only, for trained scalar
    ``targets`` (``{name: TargetInfo}``), keeping the baselines of the other types.

    Least squares of the residual after the old baselines on the counts of the
    new types (per structure, or per atom for per-atom targets), with the small
    ridge of :func:`pet_mta.baseline.fit_composition`; values fixed in
    ``atomic_baseline`` (``{target: value}`` or ``{target: {Z: value}}``) are used
    instead.
    """
    if isinstance(atomic_baseline, str):
        raise ValueError(
            "atomic_baseline: a composition checkpoint cannot give baselines for the "
            f"atomic types {new_types} that fine-tuning adds; give them as "
            "{target: {Z: value}} or leave them to be fitted"
        )
    columns = torch.tensor([pet.atomic_types.index(t) for t in new_types])
    for name, info in targets.items():
        readout = pet.readouts[name]
        if not readout.has_baseline:
            continue
        fixed = atomic_baseline.get(name)
        if fixed is not None:
            for i, t in zip(columns.tolist(), new_types):
                value = fixed if isinstance(fixed, (int, float)) else fixed.get(t)
                if value is None:
                    raise ValueError(f"atomic_baseline['{name}'] lacks type {t}")
                readout.baseline[i] = float(value)
            continue
        n_values = readout.baseline.shape[1]
        gram = torch.zeros(len(new_types), len(new_types), dtype=torch.float64)
        projected = torch.zeros(len(new_types), n_values, dtype=torch.float64)
        samples = _residuals(pet, name, info.per_atom, columns, train_datasets)
        for counts, residual in samples:
            gram += counts.T @ counts
            projected += counts.T @ residual
        ridge = 1e-8 * max(float(torch.trace(gram)) / len(new_types), 1.0)
        weights = torch.linalg.solve(
            gram + ridge * torch.eye(len(new_types), dtype=torch.float64), projected
        )
        readout.baseline[columns] = weights.to(readout.baseline)
        logging.info(f"baseline of '{name}' for new types: {pet.get_baseline(name)}")


def _residuals(
    pet: PET, name: str, per_atom: bool, columns: torch.Tensor, train_datasets: list
):
    """``(counts, residual)`` of every labelled structure with target ``name``:
    counts of the species ``columns`` (``[rows, len(columns)]``; rows = atoms for
    per-atom targets, else 1) and the values minus the baseline of the other
    species (``[rows, n_values]``, float64)."""
    baseline = pet.readouts[name].baseline.detach().to(torch.float64)
    n_species = baseline.shape[0]
    for dataset in train_datasets:
        for i in range(len(dataset)):
            sample = dataset[i]._asdict()
            if name not in sample:
                continue
            values = sample[name].block().values.detach().to(torch.float64)
            values = values.reshape(values.shape[0], -1)
            if torch.isnan(values).any():
                continue
            types = sample["system"].types.to(torch.long)
            species = pet.type_to_index[types]
            one_hot = torch.nn.functional.one_hot(species, n_species).to(values)
            counts = one_hot if per_atom else one_hot.sum(0, keepdim=True)
            new = counts[:, columns]
            counts[:, columns] = 0.0
            yield new, values - counts @ baseline
