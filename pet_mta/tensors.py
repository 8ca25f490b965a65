"""Symmetric Cartesian 3x3 tensors <-> spherical components ``o3_lambda = 0, 2``.

A polarizability, a shielding or a quadrupole is a symmetric 3x3 tensor ``T``; as a
spherical target it is the invariant ``(o3_lambda=0, o3_sigma=1)`` block (one
component) and the ``(2, 1)`` block (five components, ``o3_mu = -2 .. 2``). The
convention is metatomic's and metatrain's (real spherical harmonics, ``o3_mu = -1, 0,
1`` of a vector are ``y, z, x``), with orthonormal components, so the Frobenius
norm of ``T`` is the norm of its spherical components:

- ``l0 = (T_xx + T_yy + T_zz) / sqrt(3)``
- ``l2 = (sqrt(2) T_xy, sqrt(2) T_yz, (2 T_zz - T_xx - T_yy) / sqrt(6),
  sqrt(2) T_xz, (T_xx - T_yy) / sqrt(2))``

Units are those of ``T``.
"""

import math
from typing import Tuple

import torch


def symmetric_to_spherical(tensor: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[..., 3, 3]`` symmetric tensors -> ``l0 [..., 1]`` and ``l2 [..., 5]``.

    :raises ValueError: if ``tensor`` is not ``[..., 3, 3]`` or not symmetric
    """
    if tensor.shape[-2:] != (3, 3):
        raise ValueError(f"tensor must be [..., 3, 3], got {list(tensor.shape)}")
    if tensor.numel() > 0:
        asymmetry = float((tensor - tensor.transpose(-1, -2)).abs().max())
        if asymmetry > 1e-10 * max(float(tensor.abs().max()), 1.0):
            raise ValueError("tensor must be symmetric (T = T^T)")
    t = tensor
    l0 = (t[..., 0, 0] + t[..., 1, 1] + t[..., 2, 2]) / math.sqrt(3.0)
    s2 = math.sqrt(2.0)
    l2 = torch.stack(
        [
            s2 * t[..., 0, 1],
            s2 * t[..., 1, 2],
            (2.0 * t[..., 2, 2] - t[..., 0, 0] - t[..., 1, 1]) / math.sqrt(6.0),
            s2 * t[..., 0, 2],
            (t[..., 0, 0] - t[..., 1, 1]) / s2,
        ],
        dim=-1,
    )
    return l0.unsqueeze(-1), l2


def spherical_to_symmetric(l0: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symmetric_to_spherical`: ``[..., 1]`` and ``[..., 5]`` ->
    ``[..., 3, 3]``."""
    if l0.shape[-1] != 1 or l2.shape[-1] != 5:
        raise ValueError(
            f"l0 must be [..., 1] and l2 [..., 5], got {list(l0.shape)} and "
            f"{list(l2.shape)}"
        )
    iso = l0[..., 0] / math.sqrt(3.0)
    s2 = math.sqrt(2.0)
    xy, yz, z2, xz, x2y2 = l2.unbind(-1)
    zz = iso + 2.0 * z2 / math.sqrt(6.0)
    xx = iso - z2 / math.sqrt(6.0) + x2y2 / s2
    yy = iso - z2 / math.sqrt(6.0) - x2y2 / s2
    rows = [
        torch.stack([xx, xy / s2, xz / s2], dim=-1),
        torch.stack([xy / s2, yy, yz / s2], dim=-1),
        torch.stack([xz / s2, yz / s2, zz], dim=-1),
    ]
    return torch.stack(rows, dim=-2)
