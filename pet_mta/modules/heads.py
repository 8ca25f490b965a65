"""Read-out heads: per-atom features -> per-atom predictions."""

import torch


class Head(torch.nn.Module):
    """``d_in -> d_head -> d_head`` (SiLU) then a linear map to ``n_out`` values.

    :meth:`hidden` gives the last-layer features (``[n, d_head]``); the prediction is
    a *linear* function of them, as needed by last-layer uncertainty methods (LLPR).
    """

    def __init__(self, d_in: int, d_head: int, n_out: int, bias: bool = True):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(d_in, d_head),
            torch.nn.SiLU(),
            torch.nn.Linear(d_head, d_head),
            torch.nn.SiLU(),
        )
        self.last = torch.nn.Linear(d_head, n_out, bias=bias)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.mlp(x))
