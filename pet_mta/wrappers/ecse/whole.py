"""ECSE whole mode: frames of all atoms pooled per structure, each rotating the
whole structure (the original method; cheap for molecules, O(N^2) frames in bulk)."""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput, NeighborListOptions, System

from .averages import Averages, Selection
from .frames import FrameHypers, frames_per_group
from .systems import rotate_back, rotated_copy


class WholeMode(torch.nn.Module):
    """Whole-structure averaging, a part of
    :class:`~pet_mta.wrappers.ecse.model.SymmetrizedModule` (which sets the
    attributes used here)."""

    backbone_lists: List[NeighborListOptions]

    def _whole(
        self,
        systems: List[System],
        kinds: Dict[str, str],
        selected_atoms: Optional[Labels],
        selection: Selection,
        averages: Averages,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Add every frame's back-rotated predictions to ``averages`` (one row per
        system, or per selected atom for per-atom outputs).

        :param kinds: sample kind of every output to compute
        :return: ``[n_systems]`` total frame weight and auxiliary weight per system
        """
        hypers: FrameHypers = self.hypers
        device = selection.first_atom.device
        n_systems = len(systems)
        center_list: List[torch.Tensor] = []
        vector_list: List[torch.Tensor] = []
        group_list: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.frame_list)
            center_list.append(
                nl.samples.column("first_atom").to(torch.long) + selection.first_atom[s]
            )
            vector_list.append(nl.values.reshape(-1, 3))
            group_list.append(
                torch.full((len(system),), s, dtype=torch.long, device=device)
            )
        frames, weights, groups, aux = frames_per_group(
            torch.cat(center_list),
            torch.cat(vector_list).to(torch.float64),
            int(selection.first_atom[-1]) + len(systems[-1]),
            torch.cat(group_list),
            n_systems,
            hypers,
            self.inversion,
        )
        outputs: Dict[str, ModelOutput] = {}
        for name, kind in kinds.items():
            outputs[name] = ModelOutput(sample_kind=kind)

        n_frames = frames.shape[0]
        batch_size: int = self.batch_size
        for start in range(0, n_frames, batch_size):
            stop = min(start + batch_size, n_frames)
            copies: List[System] = []
            selected: List[torch.Tensor] = []
            for k in range(start, stop):
                g = int(groups[k])
                copies.append(rotated_copy(systems[g], frames[k], self.backbone_lists))
                if selected_atoms is not None:
                    atoms = selected_atoms.values[selection.system == g][:, 1]
                    selected.append(
                        torch.stack([torch.full_like(atoms, k - start), atoms], dim=1)
                    )
            copy_selection: Optional[Labels] = None
            if selected_atoms is not None:
                copy_selection = Labels(["system", "atom"], torch.cat(selected))
            predictions = self.backbone(copies, outputs, copy_selection)
            for name, kind in kinds.items():
                rotated = rotate_back(
                    predictions[name], frames[start:stop], self.wigner
                )
                if name not in averages.templates:
                    averages.templates[name] = rotated
                for b, block in enumerate(rotated.blocks()):
                    copy = block.samples.column("system").to(torch.long) + start
                    group = groups[copy]
                    if kind == "atom":
                        atom = block.samples.column("atom").to(torch.long)
                        rows = selection.atom_row[selection.first_atom[group] + atom]
                        n_rows = selection.n_selected
                    else:
                        rows = group
                        n_rows = n_systems
                    averages.add(name, b, block.values, weights[copy], rows, n_rows)

        denominator = torch.zeros(n_systems, dtype=weights.dtype, device=device)
        return denominator.index_add(0, groups, weights), aux
