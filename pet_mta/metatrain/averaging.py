"""Exponential moving average of the trained weights (trainer hyper-parameter
``ema_decay``).

The average follows the weights after every optimisation step,
``average <- average + (1 - d_t) (weights - average)``, with
``d_t = min(decay, (1 + t) / (10 + t))`` after ``t`` steps so that the first steps
do not drag the random initial weights along. Validation, the best-model rule and
export see the averaged weights; the optimiser keeps stepping the live ones.
"""

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

import torch


def check_decay(decay: Optional[float]) -> Optional[float]:
    """``None`` (no averaging) or a number in [0, 1); raises ``ValueError``."""
    if decay is None:
        return None
    if isinstance(decay, bool) or not isinstance(decay, (int, float)):
        raise ValueError(f"ema_decay must be null or a number, got {decay!r}")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay}")
    return float(decay)


class WeightAverage:
    """Moving average of the trainable parameters of ``model``.

    :param model: the trained module (its parameters that require gradients are
        averaged; buffers such as baselines and scales are left alone)
    :param decay: weight of the old average per step, in [0, 1)
    :param state: a saved :meth:`state_dict` to continue from (restart)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        decay: float,
        state: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.decay = decay
        self.parameters = {
            name: p for name, p in model.named_parameters() if p.requires_grad
        }
        self.steps = 0
        self.average = {name: p.detach().clone() for name, p in self.parameters.items()}
        if state is not None:
            self.load_state_dict(state)

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (after an optimiser step)."""
        decay = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        for name, parameter in self.parameters.items():
            self.average[name].lerp_(parameter.detach(), 1.0 - decay)
        self.steps += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; the live ones are
        put back afterwards, also on errors."""
        live = {name: p.detach().clone() for name, p in self.parameters.items()}
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(live[name])

    def state_dict(self) -> Dict[str, Any]:
        """``{"steps": int, "weights": {parameter name: averaged tensor}}``; the
        names are those of ``model.state_dict()``."""
        weights = {name: value.clone() for name, value in self.average.items()}
        return {"steps": self.steps, "weights": weights}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        missing = sorted(set(self.average) - set(state["weights"]))
        if missing:
            raise ValueError(
                f"the saved weight average lacks the parameters {missing}: it belongs "
                "to another model"
            )
        with torch.no_grad():
            for name, value in self.average.items():
                value.copy_(state["weights"][name])
        self.steps = int(state["steps"])
