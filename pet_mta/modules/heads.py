"""Read-out heads: per-atom features -> per-atom predictions."""

import torch

from .members import Linear


class Head(torch.nn.Module):
    """``d_in -> d_head -> d_head`` (SiLU) then a linear map to ``n_out`` values.

    :meth:`hidden` gives the last-layer features (``[(M,) n, d_head]``); the
    prediction is a *linear* function of them, as needed by last-layer uncertainty
    methods (LLPR).

    :param n_members: leading member axis of the weights (see :mod:`.members`)
    """

    def __init__(
        self, d_in: int, d_head: int, n_out: int, bias: bool = True, n_members: int = 0
    ):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            Linear(d_in, d_head, n_members=n_members),
            torch.nn.SiLU(),
            Linear(d_head, d_head, n_members=n_members),
            torch.nn.SiLU(),
        )
        self.last = Linear(d_head, n_out, bias=bias, n_members=n_members)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.mlp(x))
