"""ECSE local mode: every atomic contribution symmetrized with the frames of its own
environment, the backbone seeing the atom's cut-out receptive field (cost linear
in N)."""

from typing import Dict, List, Tuple

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from .averages import Averages, Selection
from .frames import FrameHypers, frames_per_group
from .low_memory import release_graph, release_graphs
from .systems import (
    Cluster,
    by_copy,
    cut_out,
    rotate_back,
    rotated_copies,
)


def receptive_fields(
    systems: List[System],
    options: NeighborListOptions,
    rows: List[int],
    selection: Selection,
    backbone_lists: List[NeighborListOptions],
    reach: float,
) -> Dict[int, Cluster]:
    """Cut-out clusters of the selected atoms ``rows`` (rows of ``selection``).

    :param options: the neighbour list reaching the backbone's interaction range
    :param backbone_lists: the lists the clusters must carry for the backbone
    :param reach: pairs with both atoms this far from the centre or farther are
        left out (:func:`.cluster_reach`)
    """
    types = torch.cat([s.types for s in systems])
    centers_list: List[torch.Tensor] = []
    neighbors_list: List[torch.Tensor] = []
    vectors_list: List[torch.Tensor] = []
    for s, system in enumerate(systems):
        cut = system.get_neighbor_list(options)
        first = selection.first_atom[s]
        center_rows = selection.atom_row[
            cut.samples.column("first_atom").to(torch.long) + first
        ]
        keep = center_rows >= 0
        centers_list.append(center_rows[keep])
        neighbors_list.append(
            cut.samples.column("second_atom").to(torch.long)[keep] + first
        )
        vectors_list.append(cut.values.reshape(-1, 3)[keep])
    centers = torch.cat(centers_list)
    order = torch.argsort(centers, stable=True)
    centers = centers[order]
    neighbors = torch.cat(neighbors_list)[order]
    vectors = torch.cat(vectors_list)[order]
    counts = torch.bincount(centers, minlength=selection.n_selected)
    starts = torch.cumsum(counts, 0) - counts
    clusters: Dict[int, Cluster] = {}
    for row in rows:
        begin = int(starts[row])
        end = begin + int(counts[row])
        center = selection.first_atom[selection.system[row]] + selection.atom[row]
        clusters[row] = cut_out(
            types[center],
            types[neighbors[begin:end]],
            vectors[begin:end],
            backbone_lists,
            reach,
        )
    return clusters


class LocalMode(torch.nn.Module):
    """Per-atom averaging, a part of
    :class:`~pet_mta.wrappers.ecse.model.SymmetrizedModule` (which sets the
    attributes used here)."""

    backbone_lists: List[NeighborListOptions]
    cluster_reach: float

    def _local(
        self,
        systems: List[System],
        names: List[str],
        selection: Selection,
        averages: Averages,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Add every atom's back-rotated, per-frame contributions to ``averages``
        (one row per selected atom).

        :param names: the outputs to compute (per atom)
        :return: ``[n_selected]`` total frame weight and auxiliary weight per atom
        """
        hypers: FrameHypers = self.hypers
        device = selection.first_atom.device
        n_sel = selection.n_selected
        center_list: List[torch.Tensor] = []
        vector_list: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.frame_list)
            rows = selection.atom_row[
                nl.samples.column("first_atom").to(torch.long) + selection.first_atom[s]
            ]
            keep = rows >= 0
            center_list.append(rows[keep])
            vector_list.append(nl.values.reshape(-1, 3)[keep])
        # condensed phases: only pairs nearly as well spread as the best (in
        # molecules this rule makes the weights steep, docs/src/ecse.rst)
        periodic = False
        for system in systems:
            periodic = periodic or bool(torch.any(system.pbc))
        frames, weights, groups, aux = frames_per_group(
            torch.cat(center_list),
            torch.cat(vector_list).to(torch.float64),
            n_sel,
            torch.arange(n_sel, device=device),
            n_sel,
            hypers,
            self.inversion,
            spread_margin=periodic,
        )
        has_frames = torch.zeros(n_sel, dtype=torch.bool, device=device)
        has_frames[groups] = True
        rows_with_frames: List[int] = torch.nonzero(has_frames).flatten().tolist()
        clusters = receptive_fields(
            systems,
            self.cut_out_list,
            rows_with_frames,
            selection,
            self.backbone_lists,
            self.cluster_reach,
        )

        outputs: Dict[str, ModelOutput] = {}
        for name in names:
            outputs[name] = ModelOutput(sample_kind="atom")
        frame_total = torch.zeros(n_sel, dtype=aux.dtype, device=device)
        frame_total = frame_total.index_add(0, groups, weights)
        denominator = frame_total + aux
        # low-memory mode: d e_i / d y_k = w_k / (sum_k w_k + w_aux), known now
        coefficients = (weights / denominator[groups]).detach()
        linear: Dict[str, torch.Tensor] = {}
        n_frames = frames.shape[0]
        batch_size: int = self.batch_size
        for start in range(0, n_frames, batch_size):
            stop = min(start + batch_size, n_frames)
            batch_frames = frames[start:stop]
            predictions = self._copies(
                clusters,
                groups[start:stop],
                batch_frames,
                outputs,
                coefficients[start:stop],
                linear,
                n_sel,
            )
            for name in names:
                rotated = rotate_back(predictions[name], batch_frames, self.wigner)
                if name not in averages.templates:
                    averages.templates[name] = rotated
                for b, block in enumerate(rotated.blocks()):
                    copy = block.samples.column("system").to(torch.long) + start
                    averages.add(
                        name, b, block.values, weights[copy], groups[copy], n_sel
                    )
        for name, terms in linear.items():
            # zero in value; its gradient is the backbone's part of d e_i / d x
            averages.add_linear_term(name, terms, denominator.detach())
        return frame_total, aux

    def _copies(
        self,
        clusters: Dict[int, Cluster],
        rows: torch.Tensor,
        frames: torch.Tensor,
        outputs: Dict[str, ModelOutput],
        coefficients: torch.Tensor,
        linear: Dict[str, torch.Tensor],
        n_rows: int,
    ) -> Dict[str, TensorMap]:
        """The backbone's per-atom ``outputs`` on one batch of rotated copies (copy
        ``c``: cluster ``rows[c]`` in ``frames[c]``), one system per copy; in
        low-memory mode detached, their gradients added to ``linear`` (see
        :func:`.low_memory.release_graph`). Nothing of the batch's graph outlives
        this call then.
        """
        copies, centres = rotated_copies(clusters, rows, frames, self.backbone_lists)
        selected = Labels(
            ["system", "atom"],
            torch.stack([torch.zeros_like(centres), centres], dim=1).to(torch.int32),
        )
        merged = self.backbone([copies], outputs, selected)
        predictions: Dict[str, TensorMap] = {}
        for name in outputs.keys():
            predictions[name] = by_copy(merged[name], centres)
        if release_graphs(self.low_memory, predictions):
            predictions = release_graph(
                predictions, frames, clusters, rows, coefficients, linear, n_rows
            )
        return predictions
