"""Edge tokens: geometry of ``r_ij`` combined with the message arriving on the edge."""

import torch


class EdgeTokenizer(torch.nn.Module):
    """``token_ij = MLP([W_geo (x, y, z, |r|), m_ij])`` of width ``d``.

    The Cartesian components are used as they are: PET is not rotationally
    invariant by construction, it learns the symmetry from augmented data.

    With ``distance_only`` the tokens see ``|r|`` alone, which makes the whole model
    exactly rotation-invariant.

    Lengths enter in their own unit (Å), not divided by the cutoff: Adam moves the
    embedding weights by about the learning rate per step, so the geometry is
    learned at a speed proportional to the size of its inputs. With inputs divided
    by the cutoff (all below one) the forces of a high-force data set stayed on
    their initial plateau for many epochs (``bench/accuracy.py``).

    :param width: token width ``d_pet``
    :param distance_only: drop the Cartesian components
    """

    def __init__(self, width: int, distance_only: bool = False):
        super().__init__()
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
        return self.tokens(vectors, distances, self.project_messages(messages))

    def project_messages(self, messages: torch.Tensor) -> torch.Tensor:
        """Message part of the first ``compress`` layer, with all the biases.

        ``[..., d] -> [..., d]``; linear, so it can also be applied to a table of
        messages (e.g. one per species) and gathered afterwards.
        """
        first = self.compress[0]
        width = self.geometry.weight.shape[0]
        bias = first.bias + torch.mv(first.weight[:, :width], self.geometry.bias)
        return torch.nn.functional.linear(messages, first.weight[:, width:], bias)

    def tokens(
        self, vectors: torch.Tensor, distances: torch.Tensor, projected: torch.Tensor
    ) -> torch.Tensor:
        """Edge tokens from the geometry and :meth:`project_messages` ``[E, d]``.

        Same as ``compress(cat([geometry(g), m]))`` with the geometry embedding
        folded into the first ``compress`` layer (one small ``[d, 4]`` product per
        call instead of an ``[E, d] x [d, d]`` one).
        """
        first = self.compress[0]
        width = self.geometry.weight.shape[0]
        folded = torch.mm(first.weight[:, :width], self.geometry.weight)
        if self.distance_only:
            geometry = distances[:, None]
        else:
            geometry = torch.cat([vectors, distances[:, None]], dim=1)
        hidden = torch.addmm(projected, geometry, folded.t())
        return self.compress[2](torch.nn.functional.silu(hidden))
