"""Edge tokens: geometry of ``r_ij`` combined with the message arriving on the edge."""

import torch


class EdgeTokenizer(torch.nn.Module):
    """``token_ij = MLP([W_geo (x, y, z, |r|), m_ij])`` of width ``d``.

    The Cartesian components are used as they are: PET is not rotationally
    invariant by construction, it learns the symmetry from augmented data.

    With ``distance_only`` the tokens see ``|r|`` alone, which makes the whole model
    exactly rotation-invariant.

    :param width: token width ``d_pet``
    :param cutoff: lengths are divided by it so inputs are of order one
    :param distance_only: drop the Cartesian components
    """

    def __init__(self, width: int, cutoff: float, distance_only: bool = False):
        super().__init__()
        self.inverse_cutoff = 1.0 / cutoff
        self.distance_only = distance_only
        self.geometry = torch.nn.Linear(1 if distance_only else 4, width)
        self.compress = torch.nn.Sequential(
            torch.nn.Linear(2 * width, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
        )

    def forward(
        self, vectors: torch.Tensor, distances: torch.Tensor, messages: torch.Tensor
    ) -> torch.Tensor:
        """
        :param vectors: ``[E, 3]`` edge vectors
        :param distances: ``[E]`` edge lengths
        :param messages: ``[E, d]`` incoming message of every edge
        :return: ``[E, d]`` edge tokens
        """
        if self.distance_only:
            geometry = distances[:, None] * self.inverse_cutoff
        else:
            geometry = torch.cat([vectors, distances[:, None]], dim=1)
            geometry = geometry * self.inverse_cutoff
        return self.compress(torch.cat([self.geometry(geometry), messages], dim=1))
