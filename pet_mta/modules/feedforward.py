"""The feed-forward block of PET's transformers (SiLU or SwiGLU)."""

import torch

from .members import Linear, linear


class FeedForward(torch.nn.Module):
    """``d -> d_feedforward -> d`` with SiLU or SwiGLU activation.

    :param n_members: leading member axis of the weights (see :mod:`.members`)
    """

    def __init__(self, width: int, hidden: int, activation: str, n_members: int = 0):
        super().__init__()
        if activation not in ("SiLU", "SwiGLU"):
            raise ValueError(f"unknown activation '{activation}'")
        self.gated = activation == "SwiGLU"
        self.hidden = hidden
        self.expand = Linear(
            width, 2 * hidden if self.gated else hidden, n_members=n_members
        )
        self.contract = Linear(hidden, width, n_members=n_members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[(M,) n, d] -> [(M,) n, d]``."""
        if self.gated:
            # gate and value rows of `expand` as two products: no split of the
            # [n, 2 * hidden] output, and no concatenation of its gradient
            weight = self.expand.weight
            bias = self.expand.bias
            assert bias is not None
            hidden = self.hidden
            gate = linear(x, weight.narrow(-2, 0, hidden), bias.narrow(-1, 0, hidden))
            value = linear(
                x, weight.narrow(-2, hidden, hidden), bias.narrow(-1, hidden, hidden)
            )
            h = torch.nn.functional.silu(gate) * value
        else:
            h = torch.nn.functional.silu(self.expand(x))
        return self.contract(h)
