"""Auxiliary blending: ``w_aux y_aux`` for degenerate environments (no good frame)."""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput, System

from .averages import Averages, Selection


class AuxiliaryBlend(torch.nn.Module):
    """Adds the auxiliary predictions, a part of
    :class:`~pet_mta.wrappers.ecse.model.SymmetrizedModule` (which sets
    ``auxiliary``, a ``ModelInterface`` module or ``None``, and
    ``auxiliary_outputs``). Without an auxiliary model, degenerate environments
    fade to zero."""

    auxiliary_outputs: List[str]

    def _add_auxiliary(
        self,
        systems: List[System],
        kinds: Dict[str, str],
        selected_atoms: Optional[Labels],
        aux: torch.Tensor,
        selection: Selection,
        averages: Averages,
        per_atom_rows: bool,
    ):
        """Add ``w_aux y_aux`` for the scalar outputs the auxiliary model gives.

        Without any frame at all, an output's metadata comes from the auxiliary
        model; outputs it cannot give are then an error.

        :param aux: auxiliary weight per row (per selected atom if
            ``per_atom_rows``, per system otherwise)
        :param per_atom_rows: local mode: rows are selected atoms, and the
            auxiliary model is asked only for the atoms with ``aux > 0``
        """
        wanted: Dict[str, ModelOutput] = {}
        for name, kind in kinds.items():
            if name in self.auxiliary_outputs:
                wanted[name] = ModelOutput(sample_kind=kind)
        if self.auxiliary is not None and len(wanted) > 0 and bool(torch.any(aux > 0)):
            if per_atom_rows and selected_atoms is not None:
                # only the atoms that need it (it can be costly)
                selected_atoms = Labels(
                    selected_atoms.names, selected_atoms.values[aux > 0]
                )
            predictions = self.auxiliary(systems, wanted, selected_atoms)
            for name in wanted.keys():
                tensor = predictions[name]
                if name not in averages.templates:
                    averages.templates[name] = tensor
                for b, block in enumerate(tensor.blocks()):
                    system = block.samples.column("system").to(torch.long)
                    if kinds[name] == "atom":
                        atom = block.samples.column("atom").to(torch.long)
                        rows = selection.atom_row[selection.first_atom[system] + atom]
                        n_rows = selection.n_selected
                    else:
                        rows = system
                        n_rows = len(systems)
                    if per_atom_rows or kinds[name] != "atom":
                        weight = aux[rows]
                    else:
                        weight = aux[system]
                    averages.add(name, b, block.values, weight, rows, n_rows)
        for name in kinds.keys():
            if name not in averages.templates:
                raise ValueError(
                    "no frame and no auxiliary prediction for '"
                    + name
                    + "': this structure is degenerate (isolated atoms or collinear "
                    + "environments only); give an auxiliary model that predicts it"
                )
