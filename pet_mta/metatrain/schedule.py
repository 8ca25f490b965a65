"""Learning-rate schedule: linear warm-up from zero, then cosine decay to zero."""

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Multiply the base learning rate by ``step / n_warmup`` during the first
    ``warmup_fraction * total_steps`` steps, then by a half cosine going from 1 to 0
    at ``total_steps``. Step once per optimisation step.
    """
    total = max(int(total_steps), 1)
    warmup = int(warmup_fraction * total)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
