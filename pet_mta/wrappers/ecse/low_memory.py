"""Low-memory gradients (local mode): free every batch's backbone graph at once.

The energy of atom ``i`` is ``e_i = sum_k c_k y_k + ...`` where ``c_k`` (the weight
of frame ``k`` over its atom's total weight) is known before the backbone runs. The
gradient of ``sum_k c_k y_k`` with respect to a batch's inputs (its frames and
cut-out positions) is taken as soon as the batch is evaluated and kept as a term
``g . (x - x.detach())`` per atom: zero in value, with the right first derivatives.
The backbone's graph is then freed; second derivatives are lost.
"""

from typing import Dict, List

import torch
from metatensor.torch import TensorBlock, TensorMap

from .systems import Cluster


def release_graphs(policy: str, predictions: Dict[str, TensorMap]) -> bool:
    """Whether to free this batch's graph under ``policy`` (``"always"``,
    ``"scalar"``: only if every output is a single scalar, ``"never"``)."""
    if policy == "never":
        return False
    if policy == "always":
        return True
    for tensor in predictions.values():
        block = tensor.block_by_id(0)
        single = len(tensor) == 1 and len(block.components) == 0
        if not single or block.values.shape[1] != 1:
            return False
    return True


def release_graph(
    predictions: Dict[str, TensorMap],
    frames: torch.Tensor,
    clusters: Dict[int, Cluster],
    groups: torch.Tensor,
    coefficients: torch.Tensor,
    linear: Dict[str, torch.Tensor],
    n_rows: int,
) -> Dict[str, TensorMap]:
    """Detached ``predictions`` of one batch; their gradients go to ``linear``.

    :param predictions: scalar, single-property per-atom outputs of the batch (copy
        ``c`` = system label ``c``)
    :param frames: ``[n_copies, 3, 3]`` the batch's frames
    :param clusters: the cut-out receptive fields, by row (selected atom)
    :param groups: ``[n_copies]`` row of every copy
    :param coefficients: ``[n_copies]`` ``c_k`` of every copy (detached)
    :param linear: per output, ``[n_rows]`` gradient carriers, updated in place
    :raises ValueError: for an output that is not a single scalar
    """
    inputs: List[torch.Tensor] = [frames]
    rows: List[int] = torch.unique(groups).tolist()
    for row in rows:
        inputs.append(clusters[row].positions)
    names: List[str] = list(predictions.keys())
    result: Dict[str, TensorMap] = {}
    for i, name in enumerate(names):
        tensor = predictions[name]
        block = tensor.block_by_id(0)
        if len(tensor) != 1 or len(block.components) != 0:
            raise ValueError(
                "low_memory supports scalar outputs only (such as energies), not '"
                + name
                + "'"
            )
        if block.values.shape[1] != 1:
            raise ValueError(
                "low_memory supports single-property outputs only, not '" + name + "'"
            )
        if block.values.requires_grad:
            copy = block.samples.column("system").to(torch.long)
            objective = torch.sum(
                coefficients[copy].to(block.values.dtype) * block.values[:, 0]
            )
            grads = torch.autograd.grad(
                [objective],
                inputs,
                retain_graph=i < len(names) - 1,
                allow_unused=True,
            )
            terms = torch.zeros(n_rows, dtype=torch.float64, device=objective.device)
            grad = grads[0]
            if grad is not None:
                per_copy = torch.sum(
                    grad.to(torch.float64)
                    * (frames - frames.detach()).to(torch.float64),
                    dim=(1, 2),
                )
                terms = terms.index_add(0, groups, per_copy)
            for j, row in enumerate(rows):
                grad = grads[j + 1]
                if grad is not None:
                    positions = clusters[row].positions
                    change = (grad * (positions - positions.detach())).sum()
                    terms[row] = terms[row] + change.to(torch.float64)
            if name in linear:
                linear[name] = linear[name] + terms
            else:
                linear[name] = terms
        result[name] = TensorMap(
            tensor.keys,
            [
                TensorBlock(
                    block.values.detach(),
                    block.samples,
                    block.components,
                    block.properties,
                )
            ],
        )
    return result
