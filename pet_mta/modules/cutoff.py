"""Smooth switching functions that weigh neighbours near the cutoff."""

import math

import torch


class SmoothCutoff(torch.nn.Module):
    """Switch ``f(r)`` going from 1 at ``r <= cutoff - width`` to 0 at ``r >= cutoff``.

    ``Bump`` is ``(1 + tanh(cot(pi s))) / 2`` with ``s = (r - cutoff + width) / width``:
    infinitely differentiable, with every derivative vanishing at both ends.
    ``Cosine`` is ``(1 + cos(pi s)) / 2``: continuous first derivative only.

    :param cutoff: outer radius (length unit of the model)
    :param width: width of the switching region (same unit)
    :param kind: ``"Bump"`` or ``"Cosine"``
    """

    def __init__(self, cutoff: float, width: float, kind: str = "Bump"):
        super().__init__()
        if kind not in ("Bump", "Cosine"):
            raise ValueError(f"unknown cutoff function '{kind}'")
        self.cutoff = float(cutoff)
        self.width = float(width)
        self.bump = kind == "Bump"

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """:param r: distances, any shape. :return: weights in [0, 1], same shape."""
        s = (r - (self.cutoff - self.width)) / self.width
        inside = s <= 0.0
        outside = s >= 1.0
        # keep s strictly inside (0, 1) so that no inf/nan reaches the gradients of
        # the branches that torch.where discards
        eps = 1e-6
        s_safe = torch.where(inside | outside, torch.full_like(s, 0.5), s)
        s_safe = s_safe.clamp(eps, 1.0 - eps)
        if self.bump:
            x = math.pi * s_safe
            switch = 0.5 * (1.0 + torch.tanh(torch.cos(x) / torch.sin(x)))
        else:
            switch = 0.5 * (1.0 + torch.cos(math.pi * s_safe))
        one = torch.ones_like(s)
        zero = torch.zeros_like(s)
        return torch.where(inside, one, torch.where(outside, zero, switch))
