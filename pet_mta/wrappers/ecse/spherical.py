"""Real Wigner D matrices of the ECSE frames, for spherical (``o3_mu``) outputs.

The frames depend on the positions, so their Wigner matrices are computed inside the
(TorchScript) forward pass, differentiably: ``D^1 = C_1^T R C_1`` and
``D^l = C_l^T (D^(l-1) kron D^1) C_l``, where the intertwiners ``C_l`` (the
``l`` component of ``(l - 1) x 1``, orthonormal columns) are found once, at
construction, as the null space of ``A C = C B`` over a few random rotations, with
``A``, ``B`` metatomic's Wigner matrices (``metatomic.torch.o3``). The result is
therefore in metatomic's (and metatrain's) real spherical-harmonics convention by
construction, to round-off.
"""

import functools
from typing import List, Tuple

import torch
from metatensor.torch import TensorMap
from metatomic.torch.o3 import random_transformations

# TorchScript helper of metatomic's O3 kernels (see .systems): the largest
# o3_lambda of any o3_mu axis, -1 without one
from metatomic.torch.o3._transformations import max_o3_lambda_in_tensor

#: largest o3_lambda of a spherical output the ECSE wrapper rotates back
MAX_LAMBDA = 8


def _intertwiner(
    product: List[torch.Tensor], target: List[torch.Tensor]
) -> torch.Tensor:
    """``C`` with ``A_k C = C B_k`` for every pair, ``C^T C = 1``.

    :param product: ``[m, m]`` matrices ``A_k`` of the reducible representation
    :param target: ``[d, d]`` matrices ``B_k`` of the irreducible one
    :return: ``[m, d]``
    """
    m = product[0].shape[0]
    d = target[0].shape[0]
    identity_m = torch.eye(m, dtype=torch.float64)
    identity_d = torch.eye(d, dtype=torch.float64)
    # row-major vec(C): vec(A C) = (A kron 1) vec(C), vec(C B) = (1 kron B^T) vec(C);
    # the null space of the stacked equations = the kernel of their normal matrix
    normal = torch.zeros((m * d, m * d), dtype=torch.float64)
    for a, b in zip(product, target):
        equations = torch.kron(a, identity_d) - torch.kron(identity_m, b.T.contiguous())
        normal += equations.T @ equations
    eigenvalues, eigenvectors = torch.linalg.eigh(normal)
    if not (eigenvalues[0] < 1e-10 and eigenvalues[1] > 1e-3):
        raise RuntimeError("could not find the Wigner intertwiner (bad rotations?)")
    c = eigenvectors[:, 0].reshape(m, d)
    return c / torch.sqrt((c * c).sum() / d)


def _kron_batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n, p, p] x [n, q, q] -> [n, p q, p q]`` batched Kronecker product."""
    n, p, _ = a.shape
    q = b.shape[1]
    return (a[:, :, None, :, None] * b[:, None, :, None, :]).reshape(n, p * q, p * q)


@functools.cache
def _packed_intertwiners(max_lambda: int) -> Tuple[torch.Tensor, List[List[int]]]:
    """``C_1 .. C_max_lambda`` flattened and concatenated, and their shapes."""
    generator = torch.Generator().manual_seed(0)
    rotations = random_transformations(
        2,
        max_lambda,
        device=torch.device("cpu"),
        dtype=torch.float64,
        generator=generator,
    )
    matrices = list(rotations.matrices.unbind(0))
    d1 = list(rotations.wigner_D_matrices(1).unbind(0))
    packed = [_intertwiner(matrices, d1)]
    previous = d1
    for ell in range(2, max_lambda + 1):
        current = list(rotations.wigner_D_matrices(ell).unbind(0))
        product = [torch.kron(p, d) for p, d in zip(previous, d1)]
        packed.append(_intertwiner(product, current))
        previous = current
    shapes = [list(c.shape) for c in packed]
    return torch.cat([c.reshape(-1) for c in packed]), shapes


class WignerMatrices(torch.nn.Module):
    """Real Wigner D matrices of a batch of proper rotations.

    :param max_lambda: largest ``o3_lambda`` supported
    """

    def __init__(self, max_lambda: int = MAX_LAMBDA):
        super().__init__()
        if max_lambda < 1:
            raise ValueError(f"max_lambda must be >= 1, got {max_lambda}")
        self.max_lambda = max_lambda
        packed, shapes = _packed_intertwiners(max_lambda)
        self.shapes: List[List[int]] = shapes
        # not a buffer, which casting the wrapper to float32 would round; and in
        # two float32-exact halves, as TorchScript's torch.tensor(List[float])
        # rounds through float32
        high = packed.to(torch.float32).to(torch.float64)
        self.high: List[float] = high.tolist()
        self.low: List[float] = (packed - high).to(torch.float32).tolist()

    def forward(self, matrices: torch.Tensor, max_lambda: int) -> List[torch.Tensor]:
        """
        :param matrices: ``[n, 3, 3]`` proper rotations, ``v -> R v``
        :param max_lambda: largest ``o3_lambda`` wanted (at most ``self.max_lambda``)
        :return: for ``l = 0 .. max_lambda``, ``[n, 2 l + 1, 2 l + 1]`` matrices
            acting on ``o3_mu = -l .. l`` as ``x -> D x``
        """
        if max_lambda > self.max_lambda:
            raise ValueError(
                "spherical output with o3_lambda = "
                + str(max_lambda)
                + ": the ECSE wrapper rotates back o3_lambda <= "
                + str(self.max_lambda)
            )
        n = matrices.shape[0]
        c = torch.tensor(self.high, dtype=torch.float64, device=matrices.device)
        c = c + torch.tensor(self.low, dtype=torch.float64, device=matrices.device)
        c = c.to(matrices.dtype)
        result = [torch.ones((n, 1, 1), dtype=matrices.dtype, device=matrices.device)]
        offset = 0
        d1 = matrices
        for ell in range(1, max_lambda + 1):
            rows = self.shapes[ell - 1][0]
            cols = self.shapes[ell - 1][1]
            intertwiner = c[offset : offset + rows * cols].reshape(rows, cols)
            offset += rows * cols
            if ell == 1:
                source = matrices
            else:
                source = _kron_batched(result[ell - 1], d1)
            d = intertwiner.T @ source @ intertwiner
            if ell == 1:
                d1 = d
            result.append(d)
        return result


def wigner_for(
    tensor: TensorMap, matrices: torch.Tensor, wigner: WignerMatrices
) -> List[torch.Tensor]:
    """The Wigner matrices ``metatomic``'s transformation kernel needs for the
    ``o3_mu`` axes of ``tensor`` under ``matrices`` (``[n, 3, 3]``, orthogonal,
    possibly improper): those of the proper parts ``det(M) M``, ``l = 0 ..`` the
    largest ``o3_lambda`` of ``tensor`` (the kernel applies the parity
    ``o3_sigma (-1)^o3_lambda`` of improper ones); empty without ``o3_mu`` axes."""
    max_lambda = max_o3_lambda_in_tensor(tensor)
    if max_lambda < 0:
        return []
    sign = torch.where(torch.linalg.det(matrices.detach()) < 0, -1.0, 1.0)
    return wigner.forward(matrices * sign.to(matrices.dtype)[:, None, None], max_lambda)
