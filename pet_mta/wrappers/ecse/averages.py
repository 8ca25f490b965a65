"""Weighted sums of back-rotated predictions, and the averaged outputs made of them.

Both modes accumulate ``sum_k w_k y_k`` and ``sum_k w_k y_k^2`` per output and per
block into rows (systems, or selected atoms), then divide by the frame weights plus
the auxiliary weight (:meth:`Averages.outputs`). Everything is TorchScript-able.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

VARIANCE_PREFIX = "ecse::variance::"


def source_name(name: str) -> Tuple[str, bool]:
    """``(output, is_variance)`` of a requested name."""
    prefix = "ecse::variance::"
    if name.startswith(prefix):
        return name[len(prefix) :], True
    return name, False


class Selection:
    """The atoms the outputs are for, and the row of each in per-atom sums.

    ``first_atom [n_systems]``: index of every system's first atom in the
    concatenated atoms; ``atom_row [n_total]``: row of every atom (-1 if not
    selected); ``system``, ``atom``, ``types`` ``[n_selected]``: the selected
    atoms and their atomic types.
    """

    def __init__(self, systems: List[System], selected_atoms: Optional[Labels]):
        device = systems[0].positions.device
        sizes = torch.tensor([len(s) for s in systems], dtype=torch.long, device=device)
        self.n_systems = len(systems)
        self.first_atom = torch.cumsum(sizes, 0) - sizes
        n_total = int(torch.sum(sizes))
        if selected_atoms is None:
            system = torch.repeat_interleave(
                torch.arange(len(systems), device=device), sizes
            )
            atom = torch.arange(n_total, device=device) - self.first_atom[system]
        else:
            system = selected_atoms.column("system").to(torch.long).to(device)
            atom = selected_atoms.column("atom").to(torch.long).to(device)
        self.system = system
        self.atom = atom
        all_types = torch.cat([s.types for s in systems]).to(device)
        self.types = all_types[self.first_atom[system] + atom]
        self.n_selected = int(self.system.shape[0])
        self.atom_row = torch.full((n_total,), -1, dtype=torch.long, device=device)
        self.atom_row[self.first_atom[self.system] + self.atom] = torch.arange(
            self.n_selected, device=device
        )

    def labels(self) -> Labels:
        """``system, atom`` labels of the selected atoms."""
        return Labels(
            ["system", "atom"],
            torch.stack([self.system, self.atom], dim=1).to(torch.int32),
        )

    def of_type(self, keys: Labels, block: int) -> torch.Tensor:
        """``[n_selected]`` mask of the atoms a per-atom ``block`` holds: all, or
        those of its ``atom_type`` key (an output in an atomic basis)."""
        if "atom_type" not in keys.names:
            return torch.ones_like(self.types, dtype=torch.bool)
        return self.types == keys.column("atom_type")[block].to(self.types.dtype)


class Averages:
    """``sum w y`` and ``sum w y^2`` per output name and block (float64).

    ``templates`` keeps the first prediction of every output for its metadata
    (keys, components, properties).
    """

    def __init__(self):
        self.sums: Dict[str, List[torch.Tensor]] = {}
        self.squares: Dict[str, List[torch.Tensor]] = {}
        self.templates: Dict[str, TensorMap] = {}

    def add(
        self,
        name: str,
        block: int,
        values: torch.Tensor,
        weights: torch.Tensor,
        rows: torch.Tensor,
        n_rows: int,
    ):
        """``sums[name][block][rows] += w values`` (and ``w values^2``).

        :param values: ``[n, ...]`` predictions; ``weights``, ``rows``: ``[n]``
        :param n_rows: number of rows, if the sum is new
        """
        shape: List[int] = [-1]
        for _ in range(values.dim() - 1):
            shape.append(1)
        values = values.to(weights.dtype)
        weighted = weights.reshape(shape) * values
        if name not in self.sums:
            new_sums: List[torch.Tensor] = []
            new_squares: List[torch.Tensor] = []
            self.sums[name] = new_sums
            self.squares[name] = new_squares
        if len(self.sums[name]) <= block:
            size: List[int] = [n_rows]
            for d in values.shape[1:]:
                size.append(d)
            zeros = torch.zeros(size, dtype=weights.dtype, device=values.device)
            self.sums[name].append(zeros)
            self.squares[name].append(zeros)
        self.sums[name][block] = self.sums[name][block].index_add(0, rows, weighted)
        self.squares[name][block] = self.squares[name][block].index_add(
            0, rows, weighted * values
        )

    def add_linear_term(self, name: str, terms: torch.Tensor, scale: torch.Tensor):
        """Add ``terms * scale`` (``[n_rows]`` each) to the first property of
        ``name``'s first block (zero-valued gradient carriers, low-memory mode)."""
        self.sums[name][0] = self.sums[name][0] + (terms * scale)[:, None]

    def outputs(
        self,
        outputs: Dict[str, ModelOutput],
        denominator: torch.Tensor,
        selection: Selection,
        per_atom_rows: bool,
        dtype: torch.dtype,
    ) -> Dict[str, TensorMap]:
        """The averaged (or variance) ``outputs``, in ``dtype``.

        :param denominator: ``[n_rows]`` total weight of every row
        :param per_atom_rows: rows are selected atoms (local mode) even for
            per-system outputs (then summed per system); otherwise per-system
            outputs have one row per system
        """
        device = denominator.device
        results: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            source, variance = source_name(name)
            template = self.templates[source]
            per_atom = output.sample_kind == "atom"
            blocks: List[TensorBlock] = []
            for b, block in enumerate(template.blocks()):
                if per_atom and not per_atom_rows:
                    norm = denominator[selection.system]
                else:
                    norm = denominator
                shape: List[int] = [-1]
                for _ in range(block.values.dim() - 1):
                    shape.append(1)
                norm = norm.reshape(shape)
                mean = self.sums[source][b] / norm
                if variance:
                    values = torch.clamp(
                        self.squares[source][b] / norm - mean * mean, 0.0
                    )
                    for _ in range(len(block.components)):
                        values = torch.mean(values, dim=1)
                    components: List[Labels] = []
                else:
                    values = mean
                    components = block.components
                if per_atom:
                    # atomic basis: only the atoms of the block's type
                    keep = selection.of_type(template.keys, b)
                    values = values[keep]
                    samples = Labels(
                        ["system", "atom"], selection.labels().values[keep]
                    )
                else:
                    if per_atom_rows:
                        size: List[int] = [selection.n_systems]
                        for d in values.shape[1:]:
                            size.append(d)
                        summed = torch.zeros(size, dtype=values.dtype, device=device)
                        values = summed.index_add(0, selection.system, values)
                    samples = Labels(
                        ["system"],
                        torch.arange(selection.n_systems, device=device)
                        .reshape(-1, 1)
                        .to(torch.int32),
                    )
                blocks.append(
                    TensorBlock(values.to(dtype), samples, components, block.properties)
                )
            results[name] = TensorMap(template.keys, blocks)
        return results
