"""A wide per-atom feature stream running beside every transformer block.

With ``central_stream`` on, each atom carries a ``[d_node]`` state ``s_i`` instead
of a ``[d_pet]`` central token. Before a transformer block the state is contracted
to the token that takes part in the attention; after the block the centre's output
token is expanded back and added to the state, which then passes its own
feed-forward block:

``s_i <- s_i + W_up t_i``, ``s_i <- s_i + FF(norm(s_i))`` with ``t_i`` the centre's
output token of the block fed ``W_down s_i``.

This costs work per atom, not per edge, and gives every atom ``O(d_node^2)``
parameters per block of its own (the edge tokens stay ``d_pet`` wide).
"""

import torch

from .feedforward import FeedForward
from .members import Linear, Norm


class CentralStream(torch.nn.Module):
    """The per-atom state's side of one transformer block.

    :param width: state width ``d_node``
    :param token_width: token width ``d_pet``
    :param normalization: ``"RMSNorm"`` or ``"LayerNorm"``
    :param activation: ``"SiLU"`` or ``"SwiGLU"``; the feed-forward block is
        ``width -> 2 width -> width``
    :param n_members: leading member axis of the weights (see :mod:`.members`)
    """

    def __init__(
        self,
        width: int,
        token_width: int,
        normalization: str,
        activation: str,
        n_members: int = 0,
    ):
        super().__init__()
        self.down = Linear(width, token_width, n_members=n_members)
        self.up = Linear(token_width, width, n_members=n_members)
        self.norm = Norm(normalization, width, n_members)
        self.feedforward = FeedForward(width, 2 * width, activation, n_members)

    def token(self, state: torch.Tensor) -> torch.Tensor:
        """Central token ``[(M,) n, d_pet]`` of the state ``[(M,) n, d_node]``."""
        return self.down(state)

    def forward(self, state: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Updated state ``[(M,) n, d_node]`` from the state and the centre's output
        token ``[(M,) n, d_pet]`` of the block."""
        state = state + self.up(token)
        return state + self.feedforward(self.norm(state))
