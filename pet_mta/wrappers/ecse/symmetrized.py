"""The public ECSE wrapper: :class:`Symmetrized` (module) and its export."""

import math
import os
import warnings
from typing import Any, Dict, List, Optional, Union

import torch
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
)

from ...checks import flag, non_negative_int, positive_int
from ..loading import Backbone, ModelLike, load_model, wrapped_metadata
from .averages import VARIANCE_PREFIX
from .checks import MODES, auxiliary_outputs, check_backbone
from .checks import frame_hypers as checked_hypers
from .frames import FrameHypers
from .model import SymmetrizedModule
from .rotation_average import RotationAverage

ECSE_REFERENCE = (
    "Pozdnyakov, S. N. & Ceriotti, M. Smooth, exact rotational symmetrization for "
    "deep learning on point clouds. NeurIPS 2023, arXiv:2305.19302"
)

ROTATION_AVERAGE = "rotation-average"
"""Default ``auxiliary`` of :class:`Symmetrized`: the backbone's own energies
averaged over a Lebedev grid of rotations (see :mod:`.rotation_average`)."""

FRAME_DEFAULTS: Dict[str, Any] = {
    # 0.3 A (the published method: 0.15), with spread_penalty below: NVE on a
    # trained water model drifts as the plain model does (0.15: 2x)
    "cutoff_width": 0.3,
    "beta": 5.0,
    "spread_start": 0.2,
    "spread_width": 0.15,
    "weight_beta": 1.0,
    "aux_threshold": 0.5,
    "aux_width": 0.5,
    "prune_threshold": 0.9,
    "prune_width": 0.1,
    "n_prunings": 0,
    "prune_on": 0.5,
    "prune_on_width": 0.25,
    # pet_mta's optional frame rule for periodic systems in local mode (not in
    # the published method): a pair's frames fade out as better spread pairs
    # come inside r_in (e.g. 0.02: fcc and rattled alloys 24 frames per atom, not
    # 120; 5-7x cheaper). Off by default (1.0): MD drifts 1.0-1.07x the plain
    # model on a trained HEA cell, 0.96-2.13x on a trained water cluster (the
    # published rule 0.95-1.64x there; docs/src/bench/ecse_cost.md)
    "spread_margin": 1.0,
    "spread_margin_width": 0.2,
    # pet_mta's inner cutoff (the published method: spread_penalty=0): a poorly
    # spread pair counts as if it were 0.5 A farther away, so the inner cutoff
    # follows the spreads with a bounded slope (the published rule makes a
    # trained water model drift 26x the plain model in NVE, docs/src/ecse.rst)
    "spread_penalty": 0.5,
    "spread_penalty_end": 0.5,
}

PUBLISHED_INNER_CUTOFF: Dict[str, Any] = {"spread_penalty": 0.0, "cutoff_width": 0.15}
"""Overrides of :data:`FRAME_DEFAULTS` that give the published method's adaptive
inner cutoff (a gate on the weights of poorly spread pairs, 0.15 A switches)."""


class Symmetrized(SymmetrizedModule):
    """Exactly rotation-equivariant (ECSE) version of any metatomic model.

    The result is itself a metatomic ``ModelInterface`` module: call it like the
    backbone, export it with :meth:`export`, or build an exported model in one step
    with :meth:`wrap`. Scalar outputs are averaged over frames, Cartesian outputs
    (components ``xyz``, ``xyz_1``/``xyz_2``, ...) are rotated back with the frame
    (``F v``, ``F T F^T``) before averaging. Every output ``<name>`` also exists as
    ``ecse::variance::<name>``: the weighted variance of the back-rotated backbone
    predictions over frames, averaged over components (a measure of how far the
    backbone is from equivariance on this structure; the symmetrized prediction
    itself is exact).

    :param backbone: model to symmetrize: a module (e.g. :class:`pet_mta.PET`), an
        ``AtomisticModel`` or the path of a saved one
    :param auxiliary: the prediction used, smoothly, where no good frame exists
        (isolated atoms, atoms with one neighbour in reach, collinear
        environments). An exactly invariant model, e.g. a distance-only PET
        (:func:`pet_mta.distance_only.distance_only_auxiliary`), keeps the
        result exact everywhere; it provides the *scalar* outputs it declares.
        The default, ``"rotation-average"``, is the backbone itself averaged over
        a Lebedev grid of rotations of order ``aux_grid`` (the grid of metatomic's
        ``SymmetrizedModel``) for its energy outputs: close to invariant
        (relative spread ~5e-7 at order 7 on a small PET), not exact, evaluated
        only for the atoms (local mode) or structures (whole mode) that need it.
        ``None``: such environments fade to zero (exact, but their energy is
        missing). Cartesian outputs always fade to zero there.
    :param mode: ``"whole"`` (frames pooled over the structure, each rotates the
        whole structure; for molecules: few frames, but their number grows with
        N, so cost and memory grow as N^2), ``"local"`` (each atom's contribution
        symmetrized with its own frames on its cut-out receptive field; cost and
        memory linear in N; outputs are sums of atomic contributions) or
        ``"auto"`` (the default: decided at every call, whole mode when every
        system is non-periodic with at most ``whole_max_atoms`` atoms, local mode
        otherwise; a backbone that cannot run in local mode, see
        :func:`~pet_mta.wrappers.ecse.checks.check_backbone`, always runs in
        whole mode, with a warning)
    :param inversion: add mirrored frames for exact O(3) (doubles the cost); without
        it the result is exactly SO(3)-equivariant
    :param outer_cutoff: neighbours defining frames lie within this radius (default:
        the largest cutoff of the backbone's neighbour lists, at most 10)
    :param batch_size: rotated copies evaluated in one backbone call
    :param low_memory: local mode: take the gradient of every batch of frames
        as soon as it is evaluated and free its autograd graph, instead of keeping
        the graphs of all frames of all atoms until the engine asks for forces.
        Forces, stress and per-atom energies keep their exact first derivatives;
        **second derivatives** (Hessians, training through the wrapper) **are not
        available**. Memory then stays at one batch. ``None`` (default): on in
        local mode whenever every requested output is a single scalar (energies),
        off otherwise; ``True``: always (local mode only; other outputs are an
        error); ``False``: never (for training through ECSE: memory grows with
        frames x atoms, about 3 MB per atom-frame for a small PET)
    :param whole_max_atoms: largest non-periodic system that ``mode="auto"``
        symmetrizes in whole mode
    :param aux_grid: order of the Lebedev grid of the ``"rotation-average"``
        auxiliary (7: 208 rotations)
    :param frame_hypers: overrides of :data:`FRAME_DEFAULTS` (see
        :class:`~pet_mta.wrappers.ecse.frames.FrameHypers`)
    :raises ValueError: (one line, naming the argument, output or file) a bad
        argument, a model file that does not load, a backbone the mode would get
        wrong (local mode: per-system-only outputs, custom inputs, neighbour lists
        beyond the interaction range) or an auxiliary model that cannot stand in
        for the backbone (see :mod:`pet_mta.wrappers.ecse.checks`)
    """

    __jit_ignored_attributes__ = ["info"]

    def __init__(
        self,
        backbone: ModelLike,
        auxiliary: Union[ModelLike, str, None] = ROTATION_AVERAGE,
        mode: str = "auto",
        inversion: bool = False,
        outer_cutoff: Optional[float] = None,
        batch_size: int = 32,
        aux_grid: int = 7,
        low_memory: Optional[bool] = None,
        whole_max_atoms: int = 32,
        **frame_hypers: Any,
    ):
        # every argument is checked before anything is loaded or built
        if mode not in MODES:
            raise ValueError(f"mode must be 'auto', 'whole' or 'local', got {mode!r}")
        inversion = flag("inversion", inversion)
        if low_memory is None:
            policy = "scalar"
        else:
            policy = "always" if flag("low_memory", low_memory) else "never"
        if low_memory and mode == "whole":
            raise ValueError("low_memory is available in the local and auto modes")
        whole_max_atoms = non_negative_int("whole_max_atoms", whole_max_atoms)
        batch_size = positive_int("batch_size", batch_size)
        aux_grid = positive_int("aux_grid", aux_grid)
        unknown = set(frame_hypers) - set(FRAME_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown ECSE hyper-parameters {sorted(unknown)}; known ones are "
                f"{sorted(FRAME_DEFAULTS)} and outer_cutoff"
            )
        options = dict(FRAME_DEFAULTS, **frame_hypers)
        if outer_cutoff is not None:
            checked_hypers(outer_cutoff, options)
        if isinstance(auxiliary, str) and auxiliary != ROTATION_AVERAGE:
            if not os.path.exists(auxiliary):
                raise ValueError(
                    f"auxiliary must be a model, a model file, None or "
                    f"'{ROTATION_AVERAGE}', got '{auxiliary}'"
                )

        loaded = load_model(backbone, name="backbone")
        if mode == "auto":
            try:
                check_backbone(loaded, "local")
            except ValueError as error:
                warnings.warn(
                    f"mode='auto' runs in whole mode only: {error}", stacklevel=2
                )
                mode = "whole"
        check_backbone(loaded, mode)
        if outer_cutoff is None:
            outer_cutoff = min(loaded.largest_cutoff or 10.0, 10.0)
        hypers = checked_hypers(outer_cutoff, options)

        # the wrapped models evaluated on the engine's systems: the engine computes
        # their lists and inputs (see WrapperModule)
        engine_models: List[Backbone] = [] if mode == "local" else [loaded]
        aux_loaded = None
        if auxiliary is None:
            aux_module: Optional[torch.nn.Module] = None
            aux_outputs: List[str] = []
            aux_range = 0.0
        elif isinstance(auxiliary, str) and auxiliary == ROTATION_AVERAGE:
            aux_module = RotationAverage(
                loaded.module, loaded.neighbor_lists, aux_grid, batch_size
            )
            aux_outputs = [
                name
                for name in loaded.outputs
                if name == "energy" or name.startswith("energy/")
            ]
            aux_range = loaded.interaction_range
            # the backbone itself, on whole rotated structures
            engine_models.append(loaded)
        else:
            aux_loaded = load_model(auxiliary, name="auxiliary")
            aux_module = aux_loaded.module
            aux_outputs = auxiliary_outputs(
                aux_loaded, loaded, "whole" if mode == "whole" else "local"
            )
            aux_range = aux_loaded.interaction_range
            engine_models.append(aux_loaded)

        super().__init__(
            backbone=loaded.module,
            backbone_lists=loaded.neighbor_lists,
            auxiliary=aux_module,
            auxiliary_outputs=aux_outputs,
            mode=mode,
            inversion=inversion,
            hypers=hypers,
            cut_out_radius=0.0 if mode == "whole" else loaded.interaction_range,
            batch_size=batch_size,
            low_memory=policy,
            whole_max_atoms=whole_max_atoms,
            engine_models=engine_models,
        )
        self.info = _Info(loaded, aux_loaded, mode, hypers, aux_range)
        for name, output in loaded.outputs.items():
            if output.sample_kind not in ("system", "atom"):
                warnings.warn(
                    f"output '{name}' has sample kind '{output.sample_kind}', which "
                    "ECSE cannot symmetrize; do not request it",
                    stacklevel=2,
                )

    @torch.jit.unused
    def capabilities(self) -> ModelCapabilities:
        """The backbone's capabilities, plus ``ecse::variance::<name>`` outputs.

        ``interaction_range`` is infinite in whole and auto modes (frames come
        from every atom); in local mode it is the largest of the backbone's
        range, the frame cutoff and the auxiliary model's range.
        """
        info = self.info
        outputs: Dict[str, ModelOutput] = {}
        for name, output in info.backbone.outputs.items():
            outputs[name] = ModelOutput(
                unit=output.unit,
                sample_kind=output.sample_kind,
                description=("ECSE-symmetrized. " + output.description).strip(),
            )
        for name, output in info.backbone.outputs.items():
            unit = "(" + output.unit + ")^2" if output.unit != "" else ""
            outputs[VARIANCE_PREFIX + name] = ModelOutput(
                unit=unit,
                sample_kind=output.sample_kind,
                description=(
                    f"weighted variance over ECSE frames of the back-rotated '{name}' "
                    "predictions of the backbone, averaged over components"
                ),
            )
        if info.mode != "local":
            interaction_range = math.inf
        else:
            interaction_range = max(
                info.backbone.interaction_range,
                info.hypers.outer_cutoff,
                info.aux_range,
            )
        original = info.backbone.capabilities
        return ModelCapabilities(
            outputs=outputs,
            atomic_types=list(original.atomic_types),
            interaction_range=interaction_range,
            length_unit=original.length_unit,
            supported_devices=list(original.supported_devices),
            dtype=original.dtype,
        )

    @torch.jit.unused
    def metadata(self) -> ModelMetadata:
        """The backbone's metadata, with ECSE in the name and references."""
        original = self.info.backbone.metadata
        return wrapped_metadata(
            [original],
            f"ECSE-symmetrized {original.name or 'model'} ({self.info.mode} mode)",
            "Exactly rotation-equivariant (Equivariant Coordinate System Ensemble) "
            "wrapper.",
            ECSE_REFERENCE,
        )

    @torch.jit.unused
    def export(self, metadata: Optional[ModelMetadata] = None) -> AtomisticModel:
        """This wrapper as an ``AtomisticModel`` (TorchScript-able, in eval mode)."""
        model = AtomisticModel(
            self.eval(),
            metadata if metadata is not None else self.metadata(),
            self.capabilities(),
        )
        return model

    @staticmethod
    def wrap(model: ModelLike, **options: Any) -> AtomisticModel:
        """Symmetrize and export in one step, like
        ``metatomic.torch.o3.SymmetrizedModel.wrap(model) -> AtomisticModel``.

        :param options: arguments of :class:`Symmetrized`
        """
        return Symmetrized(model, **options).export()


class _Info:
    """Python-only description of a :class:`Symmetrized` (not scripted)."""

    def __init__(
        self,
        backbone: Backbone,
        auxiliary: Optional[Backbone],
        mode: str,
        hypers: FrameHypers,
        aux_range: float,
    ):
        self.backbone = backbone
        self.auxiliary = auxiliary
        self.mode = mode
        self.hypers = hypers
        self.aux_range = aux_range
