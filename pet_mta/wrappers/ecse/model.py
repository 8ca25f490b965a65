"""``Symmetrized``: exact rotational symmetrization (ECSE) of any metatomic model.

Equivariant Coordinate System Ensemble (Pozdnyakov & Ceriotti, NeurIPS 2023): the
backbone is evaluated on the structure expressed in a smooth, weighted set of local
frames built from pairs of neighbours; every prediction is rotated back and
averaged, ``y = (sum_k w_k F_k . y(x F_k) + w_aux y_aux(x)) / (sum_k w_k + w_aux)``.
Frames follow the atoms, so the average is exactly O(3)/SO(3) equivariant for any
backbone, and smooth because frames enter and leave with zero weight.

Two modes:

- ``"whole"``: frames of every atom are pooled, each frame rotates the whole
  structure (as in the original method; cheap for molecules, O(N^2) in bulk);
- ``"local"``: every atomic contribution is symmetrized with the frames of its own
  environment, the backbone seeing only the atom's receptive field (atoms within
  the backbone's ``interaction_range``, cut out as a non-periodic cluster), and only
  the centre's output kept (``selected_atoms``); the cost is linear in N.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from .frames import FrameHypers, frames_per_group
from .systems import (
    Cluster,
    cut_out,
    rotated_cluster,
    rotated_copy,
    transform_tensormap,
)

VARIANCE_PREFIX = "ecse::variance::"


class NoAuxiliary(torch.nn.Module):
    """Placeholder auxiliary model: degenerate environments fade to zero."""

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        result: Dict[str, TensorMap] = {}
        return result


class SymmetrizedModule(torch.nn.Module):
    """The TorchScript-able ECSE module (see :class:`pet_mta.Symmetrized`).

    :param backbone: bare ``ModelInterface`` module
    :param backbone_lists: the neighbour lists the backbone reads
    :param auxiliary: exactly invariant ``ModelInterface`` module for degenerate
        environments, or :class:`NoAuxiliary`
    :param auxiliary_outputs: the (scalar) outputs taken from ``auxiliary``
    :param local: per-atom (local) mode instead of whole-structure mode
    :param inversion: add mirrored frames: exact O(3) instead of SO(3)
    :param hypers: frame hyper-parameters
    :param cut_out_radius: radius of the receptive field (local mode)
    :param batch_size: rotated copies per backbone call
    :param low_memory: (local mode, scalar outputs) free every batch's backbone
        graph at once, keeping first derivatives only
    :param engine_lists: the neighbour lists the engine must compute for the
        wrapped models (the backbone in whole mode, the auxiliary model), besides
        the wrapper's own: metatomic does not find those of a model loaded from a
        file in its module
    :param engine_inputs: the custom inputs the wrapped models read
    """

    auxiliary_outputs: List[str]
    backbone_lists: List[NeighborListOptions]
    engine_lists: List[NeighborListOptions]
    engine_inputs: Dict[str, ModelOutput]

    def __init__(
        self,
        backbone: torch.nn.Module,
        backbone_lists: List[NeighborListOptions],
        auxiliary: torch.nn.Module,
        auxiliary_outputs: List[str],
        local: bool,
        inversion: bool,
        hypers: FrameHypers,
        cut_out_radius: float,
        batch_size: int,
        low_memory: bool = False,
        engine_lists: Optional[List[NeighborListOptions]] = None,
        engine_inputs: Optional[Dict[str, ModelOutput]] = None,
    ):
        super().__init__()
        self.low_memory = bool(low_memory)
        self.backbone = backbone
        self.auxiliary = auxiliary
        self.auxiliary_outputs = auxiliary_outputs
        self.backbone_lists = backbone_lists
        self.local = local
        self.inversion = inversion
        self.hypers = hypers
        self.batch_size = int(batch_size)
        self.frame_list = NeighborListOptions(
            cutoff=hypers.outer_cutoff, full_list=True, strict=True, requestor="ecse"
        )
        self.cut_out_list = NeighborListOptions(
            cutoff=max(cut_out_radius, 1e-3),
            full_list=True,
            strict=True,
            requestor="ecse local mode",
        )
        self.engine_lists = list(engine_lists) if engine_lists is not None else []
        self.engine_inputs = dict(engine_inputs) if engine_inputs is not None else {}

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """Frame environments (``outer_cutoff``), receptive fields (local mode),
        and the lists of the wrapped models (``engine_lists``)."""
        own = [self.frame_list]
        if self.local:
            own.append(self.cut_out_list)
        return own + self.engine_lists

    def requested_inputs(self) -> Dict[str, ModelOutput]:
        """The custom inputs of the wrapped models."""
        return self.engine_inputs

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Symmetrized ``outputs``; ``ecse::variance::<name>`` gives the weighted
        variance of the back-rotated predictions over frames (component-averaged).
        """
        base: Dict[str, str] = {}
        for name, output in outputs.items():
            source, _ = _source_name(name)
            if source in base:
                if base[source] != output.sample_kind:
                    raise ValueError(
                        "'" + source + "' requested both per atom and per system"
                    )
            else:
                base[source] = output.sample_kind
        empty: Dict[str, TensorMap] = {}
        if len(base) == 0 or len(systems) == 0:
            return empty

        device = systems[0].positions.device
        # frames, weights and averages are computed in float64 whatever the
        # backbone dtype: float32 round-off there would be amplified by the steep
        # frame weights (see docs/src/ecse.rst); outputs come back in `dtype`
        dtype = systems[0].positions.dtype
        sizes = torch.tensor([len(s) for s in systems], dtype=torch.long, device=device)
        first_atom = torch.cumsum(sizes, 0) - sizes
        n_total = int(torch.sum(sizes))
        if selected_atoms is None:
            sel_system = torch.repeat_interleave(
                torch.arange(len(systems), device=device), sizes
            )
            sel_atom = torch.arange(n_total, device=device) - first_atom[sel_system]
        else:
            sel_system = selected_atoms.column("system").to(torch.long).to(device)
            sel_atom = selected_atoms.column("atom").to(torch.long).to(device)
        n_sel = sel_system.shape[0]
        atom_row = torch.full((n_total,), -1, dtype=torch.long, device=device)
        atom_row[first_atom[sel_system] + sel_atom] = torch.arange(n_sel, device=device)

        if self.local:
            kinds: Dict[str, str] = {}
            for name in base.keys():
                kinds[name] = "atom"
            sums, squares, templates, denominator = self._local(
                systems, kinds, first_atom, atom_row, sel_system, sel_atom
            )
            row_group = torch.arange(n_sel, device=device)
        else:
            sums, squares, templates, denominator = self._whole(
                systems, base, selected_atoms, first_atom, atom_row, sel_system
            )
            row_group = sel_system

        results: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            source, variance = _source_name(name)
            template = templates[source]
            per_atom = output.sample_kind == "atom"
            blocks: List[TensorBlock] = []
            for b, block in enumerate(template.blocks()):
                if self.local or per_atom:
                    norm = denominator[row_group]
                else:
                    norm = denominator
                shape: List[int] = [-1]
                for _ in range(block.values.dim() - 1):
                    shape.append(1)
                norm = norm.reshape(shape)
                mean = sums[source][b] / norm
                if variance:
                    values = torch.clamp(squares[source][b] / norm - mean * mean, 0.0)
                    for _ in range(len(block.components)):
                        values = torch.mean(values, dim=1)
                    components: List[Labels] = []
                else:
                    values = mean
                    components = block.components
                if per_atom:
                    samples = Labels(
                        ["system", "atom"],
                        torch.stack([sel_system, sel_atom], dim=1).to(torch.int32),
                    )
                else:
                    if self.local:
                        size: List[int] = [len(systems)]
                        for d in values.shape[1:]:
                            size.append(d)
                        summed = torch.zeros(size, dtype=values.dtype, device=device)
                        values = summed.index_add(0, sel_system, values)
                    samples = Labels(
                        ["system"],
                        torch.arange(len(systems), device=device)
                        .reshape(-1, 1)
                        .to(torch.int32),
                    )
                blocks.append(
                    TensorBlock(values.to(dtype), samples, components, block.properties)
                )
            results[name] = TensorMap(template.keys, blocks)
        return results

    # ----------------------------------------------------------------- whole mode
    def _whole(
        self,
        systems: List[System],
        kinds: Dict[str, str],
        selected_atoms: Optional[Labels],
        first_atom: torch.Tensor,
        atom_row: torch.Tensor,
        sel_system: torch.Tensor,
    ) -> Tuple[
        Dict[str, List[torch.Tensor]],
        Dict[str, List[torch.Tensor]],
        Dict[str, TensorMap],
        torch.Tensor,
    ]:
        device = first_atom.device
        n_systems = len(systems)
        center_list: List[torch.Tensor] = []
        vector_list: List[torch.Tensor] = []
        group_list: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.frame_list)
            center_list.append(
                nl.samples.column("first_atom").to(torch.long) + first_atom[s]
            )
            vector_list.append(nl.values.reshape(-1, 3))
            group_list.append(
                torch.full((len(system),), s, dtype=torch.long, device=device)
            )
        frames, weights, groups, aux = frames_per_group(
            torch.cat(center_list),
            torch.cat(vector_list).to(torch.float64),
            int(first_atom[-1]) + len(systems[-1]),
            torch.cat(group_list),
            n_systems,
            self.hypers,
            self.inversion,
        )
        outputs: Dict[str, ModelOutput] = {}
        for name, kind in kinds.items():
            outputs[name] = ModelOutput(sample_kind=kind)

        sums: Dict[str, List[torch.Tensor]] = {}
        squares: Dict[str, List[torch.Tensor]] = {}
        templates: Dict[str, TensorMap] = {}
        n_frames = frames.shape[0]
        for start in range(0, n_frames, self.batch_size):
            stop = min(start + self.batch_size, n_frames)
            copies: List[System] = []
            selected: List[torch.Tensor] = []
            for k in range(start, stop):
                g = int(groups[k])
                copies.append(rotated_copy(systems[g], frames[k], self.backbone_lists))
                if selected_atoms is not None:
                    atoms = selected_atoms.values[sel_system == g][:, 1]
                    selected.append(
                        torch.stack([torch.full_like(atoms, k - start), atoms], dim=1)
                    )
            copy_selection: Optional[Labels] = None
            if selected_atoms is not None:
                copy_selection = Labels(["system", "atom"], torch.cat(selected))
            predictions = self.backbone(copies, outputs, copy_selection)
            for name, kind in kinds.items():
                rotated = transform_tensormap(
                    predictions[name].to(dtype=torch.float64), frames[start:stop]
                )
                if name not in templates:
                    templates[name] = rotated
                for b, block in enumerate(rotated.blocks()):
                    copy = block.samples.column("system").to(torch.long) + start
                    group = groups[copy]
                    if kind == "atom":
                        atom = block.samples.column("atom").to(torch.long)
                        rows = atom_row[first_atom[group] + atom]
                        n_rows = int(sel_system.shape[0])
                    else:
                        rows = group
                        n_rows = n_systems
                    _accumulate(
                        sums,
                        squares,
                        name,
                        b,
                        block.values,
                        weights[copy],
                        rows,
                        n_rows,
                    )

        denominator = torch.zeros(n_systems, dtype=weights.dtype, device=device)
        denominator = denominator.index_add(0, groups, weights) + aux
        self._add_auxiliary(
            systems,
            kinds,
            selected_atoms,
            aux,
            first_atom,
            atom_row,
            sel_system,
            sums,
            squares,
            templates,
            False,
        )
        return sums, squares, templates, denominator

    # ----------------------------------------------------------------- local mode
    def _local(
        self,
        systems: List[System],
        kinds: Dict[str, str],
        first_atom: torch.Tensor,
        atom_row: torch.Tensor,
        sel_system: torch.Tensor,
        sel_atom: torch.Tensor,
    ) -> Tuple[
        Dict[str, List[torch.Tensor]],
        Dict[str, List[torch.Tensor]],
        Dict[str, TensorMap],
        torch.Tensor,
    ]:
        device = first_atom.device
        n_sel = sel_system.shape[0]
        center_list: List[torch.Tensor] = []
        vector_list: List[torch.Tensor] = []
        cut_centers: List[torch.Tensor] = []
        cut_neighbors: List[torch.Tensor] = []
        cut_vectors: List[torch.Tensor] = []
        types = torch.cat([s.types for s in systems])
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.frame_list)
            rows = atom_row[
                nl.samples.column("first_atom").to(torch.long) + first_atom[s]
            ]
            keep = rows >= 0
            center_list.append(rows[keep])
            vector_list.append(nl.values.reshape(-1, 3)[keep])
            cut = system.get_neighbor_list(self.cut_out_list)
            rows = atom_row[
                cut.samples.column("first_atom").to(torch.long) + first_atom[s]
            ]
            keep = rows >= 0
            cut_centers.append(rows[keep])
            cut_neighbors.append(
                cut.samples.column("second_atom").to(torch.long)[keep] + first_atom[s]
            )
            cut_vectors.append(cut.values.reshape(-1, 3)[keep])
        frames, weights, groups, aux = frames_per_group(
            torch.cat(center_list),
            torch.cat(vector_list).to(torch.float64),
            n_sel,
            torch.arange(n_sel, device=device),
            n_sel,
            self.hypers,
            self.inversion,
        )

        # receptive fields of the atoms that have frames
        centers = torch.cat(cut_centers)
        order = torch.argsort(centers, stable=True)
        centers = centers[order]
        neighbors = torch.cat(cut_neighbors)[order]
        vectors = torch.cat(cut_vectors)[order]
        counts = torch.bincount(centers, minlength=n_sel)
        starts = torch.cumsum(counts, 0) - counts
        has_frames = torch.zeros(n_sel, dtype=torch.bool, device=device)
        has_frames[groups] = True
        clusters: Dict[int, Cluster] = {}
        rows_with_frames: List[int] = torch.nonzero(has_frames).flatten().tolist()
        for row in rows_with_frames:
            begin = int(starts[row])
            end = begin + int(counts[row])
            clusters[row] = cut_out(
                types,
                types[first_atom[sel_system[row]] + sel_atom[row]],
                types[neighbors[begin:end]],
                vectors[begin:end],
                self.backbone_lists,
            )

        outputs: Dict[str, ModelOutput] = {}
        for name in kinds.keys():
            outputs[name] = ModelOutput(sample_kind="atom")
        sums: Dict[str, List[torch.Tensor]] = {}
        squares: Dict[str, List[torch.Tensor]] = {}
        templates: Dict[str, TensorMap] = {}
        denominator = torch.zeros(n_sel, dtype=aux.dtype, device=device)
        denominator = denominator.index_add(0, groups, weights) + aux
        # low-memory mode: d e_i / d y_k = w_k / (sum_k w_k + w_aux), known now
        coefficients = (weights / denominator[groups]).detach()
        linear: Dict[str, torch.Tensor] = {}
        n_frames = frames.shape[0]
        for start in range(0, n_frames, self.batch_size):
            stop = min(start + self.batch_size, n_frames)
            batch_frames = frames[start:stop]
            copies: List[System] = []
            for k in range(start, stop):
                copies.append(
                    rotated_cluster(
                        clusters[int(groups[k])],
                        batch_frames[k - start],
                        self.backbone_lists,
                    )
                )
            index = torch.arange(stop - start, device=device)
            selection = Labels(
                ["system", "atom"],
                torch.stack([index, torch.zeros_like(index)], dim=1).to(torch.int32),
            )
            predictions = self.backbone(copies, outputs, selection)
            if self.low_memory:
                predictions = self._release_graph(
                    predictions,
                    batch_frames,
                    clusters,
                    groups[start:stop],
                    coefficients[start:stop],
                    linear,
                    n_sel,
                )
            for name in kinds.keys():
                rotated = transform_tensormap(
                    predictions[name].to(dtype=torch.float64), batch_frames
                )
                if name not in templates:
                    templates[name] = rotated
                for b, block in enumerate(rotated.blocks()):
                    copy = block.samples.column("system").to(torch.long) + start
                    _accumulate(
                        sums,
                        squares,
                        name,
                        b,
                        block.values,
                        weights[copy],
                        groups[copy],
                        n_sel,
                    )
        for name, terms in linear.items():
            # zero in value; its gradient is the backbone's part of d e_i / d x
            sums[name][0] = sums[name][0] + (terms * denominator.detach())[:, None]

        selection = Labels(
            ["system", "atom"],
            torch.stack([sel_system, sel_atom], dim=1).to(torch.int32),
        )
        self._add_auxiliary(
            systems,
            kinds,
            selection,
            aux,
            first_atom,
            atom_row,
            sel_system,
            sums,
            squares,
            templates,
            True,
        )
        return sums, squares, templates, denominator

    def _release_graph(
        self,
        predictions: Dict[str, TensorMap],
        batch_frames: torch.Tensor,
        clusters: Dict[int, Cluster],
        batch_groups: torch.Tensor,
        coefficients: torch.Tensor,
        linear: Dict[str, torch.Tensor],
        n_rows: int,
    ) -> Dict[str, TensorMap]:
        """Low-memory mode: free this batch's backbone graph now.

        The gradient of ``sum_k c_k y_k`` (``c_k`` the known weight of frame ``k``
        in its atom's average) is taken with respect to this batch's inputs (frames
        and cut-out positions) and kept as a term ``g . (x - x.detach())`` per atom
        (``linear``): zero in value, with the right first derivatives. The
        predictions come back detached. Second derivatives are lost.
        """
        inputs: List[torch.Tensor] = [batch_frames]
        rows: List[int] = torch.unique(batch_groups).tolist()
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
                    "low_memory supports single-property outputs only, not '"
                    + name
                    + "'"
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
                terms = torch.zeros(
                    n_rows, dtype=torch.float64, device=objective.device
                )
                grad = grads[0]
                if grad is not None:
                    per_copy = torch.sum(
                        grad.to(torch.float64)
                        * (batch_frames - batch_frames.detach()).to(torch.float64),
                        dim=(1, 2),
                    )
                    terms = terms.index_add(0, batch_groups, per_copy)
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

    # ------------------------------------------------------------------ auxiliary
    def _add_auxiliary(
        self,
        systems: List[System],
        kinds: Dict[str, str],
        selected_atoms: Optional[Labels],
        aux: torch.Tensor,
        first_atom: torch.Tensor,
        atom_row: torch.Tensor,
        sel_system: torch.Tensor,
        sums: Dict[str, List[torch.Tensor]],
        squares: Dict[str, List[torch.Tensor]],
        templates: Dict[str, TensorMap],
        local: bool,
    ):
        """Add ``w_aux y_aux`` for degenerate environments (scalar outputs only).

        Without any frame at all, the output's metadata comes from the auxiliary
        model; outputs it cannot give are then an error.
        """
        wanted: Dict[str, ModelOutput] = {}
        for name, kind in kinds.items():
            if name in self.auxiliary_outputs:
                wanted[name] = ModelOutput(sample_kind=kind)
        if len(wanted) > 0 and bool(torch.any(aux > 0)):
            if local and selected_atoms is not None:
                # only the atoms that need it (it can be costly)
                selected_atoms = Labels(
                    selected_atoms.names, selected_atoms.values[aux > 0]
                )
            predictions = self.auxiliary(systems, wanted, selected_atoms)
            for name in wanted.keys():
                tensor = predictions[name]
                if name not in templates:
                    templates[name] = tensor
                for b, block in enumerate(tensor.blocks()):
                    system = block.samples.column("system").to(torch.long)
                    if kinds[name] == "atom":
                        atom = block.samples.column("atom").to(torch.long)
                        rows = atom_row[first_atom[system] + atom]
                        n_rows = int(sel_system.shape[0])
                    else:
                        rows = system
                        n_rows = len(systems)
                    if local:
                        weight = aux[rows]
                    elif kinds[name] == "atom":
                        weight = aux[system]
                    else:
                        weight = aux[rows]
                    _accumulate(
                        sums, squares, name, b, block.values, weight, rows, n_rows
                    )
        for name in kinds.keys():
            if name not in templates:
                raise ValueError(
                    "no frame and no auxiliary prediction for '"
                    + name
                    + "': this structure is degenerate (isolated atoms or collinear "
                    + "environments only); give an auxiliary model that predicts it"
                )


def _source_name(name: str) -> Tuple[str, bool]:
    """``(output, is_variance)`` of a requested name."""
    prefix = "ecse::variance::"
    if name.startswith(prefix):
        return name[len(prefix) :], True
    return name, False


def _accumulate(
    sums: Dict[str, List[torch.Tensor]],
    squares: Dict[str, List[torch.Tensor]],
    name: str,
    block: int,
    values: torch.Tensor,
    weights: torch.Tensor,
    rows: torch.Tensor,
    n_rows: int,
):
    """``sums[name][block][rows] += w values`` (and ``w values^2``)."""
    shape: List[int] = [-1]
    for _ in range(values.dim() - 1):
        shape.append(1)
    values = values.to(weights.dtype)
    weighted = weights.reshape(shape) * values
    if name not in sums:
        new_sums: List[torch.Tensor] = []
        new_squares: List[torch.Tensor] = []
        sums[name] = new_sums
        squares[name] = new_squares
    if len(sums[name]) <= block:
        size: List[int] = [n_rows]
        for d in values.shape[1:]:
            size.append(d)
        sums[name].append(torch.zeros(size, dtype=weights.dtype, device=values.device))
        squares[name].append(
            torch.zeros(size, dtype=weights.dtype, device=values.device)
        )
    sums[name][block] = sums[name][block].index_add(0, rows, weighted)
    squares[name][block] = squares[name][block].index_add(0, rows, weighted * values)
