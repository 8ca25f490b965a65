"""Edge tokens: geometry of ``r_ij`` combined with the message arriving on the edge."""

import torch

from .members import Linear, linear


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

    With ``radial_basis = K > 0`` the geometry also holds ``K`` Gaussians of
    ``|r|``, ``exp(-((|r| - mu_k) / sigma)^2)``, centres ``mu_k`` evenly spaced from 0
    to the cutoff and ``sigma`` their spacing: a smooth, distance-resolved input the
    first layer can combine without spending its non-linearity on it.

    :param width: token width ``d_pet``
    :param cutoff: radius the centres span (length unit)
    :param distance_only: drop the Cartesian components
    :param radial_basis: number ``K`` of Gaussians of ``|r|`` (0: none)
    :param n_members: leading member axis of the weights (see :mod:`.members`)
    """

    def __init__(
        self,
        width: int,
        cutoff: float,
        distance_only: bool = False,
        radial_basis: int = 0,
        n_members: int = 0,
    ):
        super().__init__()
        self.distance_only = distance_only
        self.width = width
        self.radial_basis = radial_basis
        self.spacing = cutoff / max(radial_basis - 1, 1)
        n_inputs = (1 if distance_only else 4) + radial_basis
        self.geometry = Linear(n_inputs, width, n_members=n_members)
        self.compress = torch.nn.Sequential(
            Linear(2 * width, width, n_members=n_members),
            torch.nn.SiLU(),
            Linear(width, width, n_members=n_members),
        )

    def forward(
        self, vectors: torch.Tensor, distances: torch.Tensor, messages: torch.Tensor
    ) -> torch.Tensor:
        """
        :param vectors: ``[E, 3]`` edge vectors
        :param distances: ``[E]`` edge lengths
        :param messages: ``[(M,) E, d]`` incoming message of every edge
        :return: ``[(M,) E, d]`` edge tokens
        """
        return self.tokens(vectors, distances, self.project_messages(messages))

    def project_messages(self, messages: torch.Tensor) -> torch.Tensor:
        """Message part of the first ``compress`` layer, with all the biases.

        ``[(M,) n, d] -> [(M,) n, d]``; linear, so it can also be applied to a table
        of messages (e.g. one per species) and gathered afterwards.
        """
        first = self.compress[0]
        geometry_part = first.weight.narrow(-1, 0, self.width)
        bias = first.bias + torch.matmul(
            geometry_part, self.geometry.bias.unsqueeze(-1)
        ).squeeze(-1)
        return linear(messages, first.weight.narrow(-1, self.width, self.width), bias)

    def tokens(
        self, vectors: torch.Tensor, distances: torch.Tensor, projected: torch.Tensor
    ) -> torch.Tensor:
        """Edge tokens ``[(M,) E, d]`` from the geometry and :meth:`project_messages`.

        Same as ``compress(cat([geometry(g), m]))`` with the geometry embedding
        folded into the first ``compress`` layer (one small ``[d, 4 + K]`` product per
        call instead of an ``[E, d] x [d, d]`` one).
        """
        first = self.compress[0]
        folded = torch.matmul(
            first.weight.narrow(-1, 0, self.width), self.geometry.weight
        )  # [(M,) d, 4 + K]
        if self.distance_only:
            geometry = distances[:, None]
        else:
            geometry = torch.cat([vectors, distances[:, None]], dim=1)
        if self.radial_basis > 0:
            centers = self.spacing * torch.arange(
                self.radial_basis, dtype=distances.dtype, device=distances.device
            )
            scaled = (distances[:, None] - centers) / self.spacing
            geometry = torch.cat([geometry, torch.exp(-scaled * scaled)], dim=1)
        if folded.dim() == 2:
            hidden = torch.addmm(projected, geometry, folded.t())
        else:  # the same geometry for every member
            hidden = projected + torch.matmul(geometry, folded.transpose(1, 2))
        return self.compress[2](torch.nn.functional.silu(hidden))
