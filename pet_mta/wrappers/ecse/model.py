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

This module only dispatches: the modes live in :mod:`.whole` and :mod:`.local`,
the low-memory gradients in :mod:`.low_memory`, the auxiliary blending in
:mod:`.auxiliary` and the weighted sums in :mod:`.averages`.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from ..loading import Backbone, WrapperModule
from .auxiliary import AuxiliaryBlend
from .averages import Averages, Selection, source_name
from .frames import FrameHypers
from .local import LocalMode
from .spherical import WignerMatrices
from .systems import cluster_reach
from .whole import WholeMode


class SymmetrizedModule(WholeMode, LocalMode, AuxiliaryBlend, WrapperModule):
    """The TorchScript-able ECSE module (see :class:`pet_mta.Symmetrized`).

    :param backbone: bare ``ModelInterface`` module
    :param backbone_lists: the neighbour lists the backbone reads
    :param auxiliary: exactly invariant ``ModelInterface`` module for degenerate
        environments, or ``None`` (they fade to zero)
    :param auxiliary_outputs: the (scalar) outputs taken from ``auxiliary``
    :param mode: ``"whole"``, ``"local"`` or ``"auto"`` (per call: whole mode if
        every system is non-periodic with at most ``whole_max_atoms`` atoms,
        local mode otherwise)
    :param inversion: add mirrored frames: exact O(3) instead of SO(3)
    :param hypers: frame hyper-parameters
    :param cut_out_radius: radius of the receptive field (local mode)
    :param batch_size: rotated copies per backbone call
    :param low_memory: local mode: free every batch's backbone graph at once,
        keeping first derivatives only; ``"always"`` (an error for outputs that
        are not single scalars), ``"scalar"`` (when every requested output is a
        single scalar, such as energies; otherwise the graphs are kept) or
        ``"never"`` (second derivatives available)
    :param whole_max_atoms: largest non-periodic system the ``"auto"`` mode
        symmetrizes in whole mode
    :param engine_models: the wrapped models evaluated on the engine's systems
        (the backbone in whole mode, the auxiliary model): the engine computes
        their neighbour lists and inputs (see
        :class:`~pet_mta.wrappers.loading.WrapperModule`)
    """

    auxiliary_outputs: List[str]
    backbone_lists: List[NeighborListOptions]
    engine_lists: List[NeighborListOptions]
    engine_inputs: Dict[str, ModelOutput]

    def __init__(
        self,
        backbone: torch.nn.Module,
        backbone_lists: List[NeighborListOptions],
        auxiliary: Optional[torch.nn.Module],
        auxiliary_outputs: List[str],
        mode: str,
        inversion: bool,
        hypers: FrameHypers,
        cut_out_radius: float,
        batch_size: int,
        low_memory: str = "never",
        whole_max_atoms: int = 0,
        engine_models: Optional[List[Backbone]] = None,
    ):
        super().__init__(engine_models if engine_models is not None else [])
        self.low_memory = low_memory
        self.whole_max_atoms = int(whole_max_atoms)
        self.backbone = backbone
        self.auxiliary = auxiliary
        self.auxiliary_outputs = auxiliary_outputs
        self.backbone_lists = backbone_lists
        self.mode = mode
        self.inversion = inversion
        self.hypers = hypers
        self.batch_size = int(batch_size)
        # Wigner matrices of the frames, for spherical outputs (see .spherical)
        self.wigner = WignerMatrices()
        self.frame_list = NeighborListOptions(
            cutoff=hypers.outer_cutoff, full_list=True, strict=True, requestor="ecse"
        )
        self.cut_out_list = NeighborListOptions(
            cutoff=max(cut_out_radius, 1e-3),
            full_list=True,
            strict=True,
            requestor="ecse local mode",
        )
        # pairs that cannot reach the centre leave the clusters (PET only)
        self.cluster_reach = cluster_reach(
            backbone, backbone_lists, self.cut_out_list.cutoff
        )

    def own_neighbor_lists(self) -> List[NeighborListOptions]:
        """Frame environments (``outer_cutoff``) and receptive fields (local
        mode)."""
        own = [self.frame_list]
        if self.mode != "whole":
            own.append(self.cut_out_list)
        return own

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Symmetrized ``outputs``; ``ecse::variance::<name>`` gives the weighted
        variance of the back-rotated predictions over frames (component-averaged).
        """
        kinds: Dict[str, str] = {}
        for name, output in outputs.items():
            source, _ = source_name(name)
            if source in kinds:
                if kinds[source] != output.sample_kind:
                    raise ValueError(
                        "'" + source + "' requested both per atom and per system"
                    )
            else:
                kinds[source] = output.sample_kind
        empty: Dict[str, TensorMap] = {}
        if len(kinds) == 0 or len(systems) == 0:
            return empty

        # frames, weights and averages are computed in float64 whatever the
        # backbone dtype: float32 round-off there would be amplified by the steep
        # frame weights (see docs/src/ecse.rst); outputs come back in `dtype`
        dtype = systems[0].positions.dtype
        selection = Selection(systems, selected_atoms)
        averages = Averages()
        local = self.use_local_mode(systems)
        if local:
            names: List[str] = list(kinds.keys())
            frame_total, aux = self._local(systems, names, selection, averages)
            for name in names:
                kinds[name] = "atom"
            self._add_auxiliary(
                systems,
                kinds,
                selection.labels(),
                aux,
                selection,
                averages,
                per_atom_rows=True,
            )
        else:
            frame_total, aux = self._whole(
                systems, kinds, selected_atoms, selection, averages
            )
            self._add_auxiliary(
                systems,
                kinds,
                selected_atoms,
                aux,
                selection,
                averages,
                per_atom_rows=False,
            )
        return averages.outputs(outputs, frame_total + aux, selection, local, dtype)

    def use_local_mode(self, systems: List[System]) -> bool:
        """Whether a call on ``systems`` runs in local mode (see ``mode``)."""
        if self.mode != "auto":
            return self.mode == "local"
        for system in systems:
            if bool(torch.any(system.pbc)) or len(system) > self.whole_max_atoms:
                return True
        return False
