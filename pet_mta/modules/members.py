"""Dense building blocks whose weights optionally carry a leading member axis.

Every PET layer is built from these, so the same code runs one model or ``M``
models of one architecture at once (:mod:`pet_mta.stacked`). With ``n_members = 0``
a weight has its usual shape (``Linear``: ``[out, in]``) and activations are
``[rows, width]``; with ``n_members = M`` weights are ``[M, out, in]`` and
activations ``[M, rows, width]``, and every dense layer is one batched matrix
product. Rows are always dimension ``-2``, widths dimension ``-1``. The state-dict
names are those of the ``torch.nn`` layers they replace (``weight``, ``bias``).
"""

from typing import List, Optional

import torch


def member_shape(n_members: int) -> List[int]:
    """``[]`` for one model, ``[n_members]`` for a stack of models."""
    if n_members < 0:
        raise ValueError(f"n_members must be >= 0, got {n_members}")
    return [n_members] if n_members > 0 else []


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
) -> torch.Tensor:
    """``x W^T + b``: ``[n, in] -> [n, out]`` with ``weight`` ``[out, in]``, or
    ``[M, n, in] -> [M, n, out]`` with ``weight`` ``[M, out, in]`` and ``bias``
    ``[M, out]``."""
    if weight.dim() == 2:
        return torch.nn.functional.linear(x, weight, bias)
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` (a subclass: same initialisation, state-dict names and
    ``isinstance``), optionally with a leading member axis on ``weight`` and
    ``bias``."""

    def __init__(
        self, d_in: int, d_out: int, bias: bool = True, n_members: int = 0
    ) -> None:
        super().__init__(d_in, d_out, bias=bias)
        if n_members == 0:
            return
        shape = member_shape(n_members)
        self.weight = torch.nn.Parameter(torch.empty(shape + [d_out, d_in]))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(shape + [d_out]))
        for m in range(n_members):
            layer = torch.nn.Linear(d_in, d_out, bias=bias)
            with torch.no_grad():
                self.weight[m].copy_(layer.weight)
                if layer.bias is not None:
                    self.bias[m].copy_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class Embedding(torch.nn.Module):
    """``torch.nn.Embedding`` (standard normal rows), optionally one table per
    member: ``weight`` ``[(M,) n, d]``, ``forward(index [k]) -> [(M,) k, d]``."""

    def __init__(self, n_rows: int, width: int, n_members: int = 0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(
            torch.empty(member_shape(n_members) + [n_rows, width])
        )
        torch.nn.init.normal_(self.weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.weight.index_select(-2, index)


class Norm(torch.nn.Module):
    """``RMSNorm`` (``weight``, eps of the dtype) or ``LayerNorm`` (``weight`` and
    ``bias``, eps 1e-5) over the last dimension, as ``torch.nn``'s, with optional
    per-member weights ``[(M,) d]``."""

    def __init__(self, kind: str, width: int, n_members: int = 0) -> None:
        super().__init__()
        if kind not in ("RMSNorm", "LayerNorm"):
            raise ValueError(f"unknown normalization '{kind}'")
        self.rms = kind == "RMSNorm"
        self.width = width
        self.eps = 1e-5  # LayerNorm's; RMSNorm uses the dtype's (torch's default)
        shape = member_shape(n_members) + [width]
        self.weight = torch.nn.Parameter(torch.ones(shape))
        if self.rms:
            self.register_parameter("bias", None)
        else:
            self.bias = torch.nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [self.width]
        if self.weight.dim() == 1:  # one model: the fused kernels
            if self.rms:
                return torch.nn.functional.rms_norm(x, shape, self.weight, None)
            return torch.nn.functional.layer_norm(
                x, shape, self.weight, self.bias, self.eps
            )
        weight = self.weight.unsqueeze(-2)
        if self.rms:
            return torch.nn.functional.rms_norm(x, shape, None, None) * weight
        normalized = torch.nn.functional.layer_norm(x, shape, None, None, self.eps)
        bias = self.bias
        assert bias is not None
        return normalized * weight + bias.unsqueeze(-2)


def zero_rows(like: torch.Tensor, n_rows: int, width: int) -> torch.Tensor:
    """``[(M,) n_rows, width]`` zeros with the member axis (if any), dtype and device
    of ``like`` (``[(M,) rows, ...]``)."""
    shape: List[int] = list(like.shape[:-2])
    shape.append(n_rows)
    shape.append(width)
    return torch.zeros(shape, dtype=like.dtype, device=like.device)
