"""What ECSE refuses up front: frame hyper-parameters out of range, and backbones or
auxiliary models it cannot symmetrize correctly.

Every refusal is a one-line ``ValueError`` naming the argument (or the output) and
the reason, raised while :class:`~pet_mta.Symmetrized` is built, so that no
wrapper that would fail or be wrong at evaluation time is ever saved.
"""

import math
from typing import Any, Dict, List

from ...checks import finite_number, non_negative_int, per_atom, positive_number
from ..loading import Backbone
from .frames import FrameHypers

MODES = ("auto", "whole", "local")


def frame_hypers(outer_cutoff: Any, options: Dict[str, Any]) -> FrameHypers:
    """Checked :class:`~pet_mta.wrappers.ecse.frames.FrameHypers`.

    :param outer_cutoff: frame radius (length unit of the backbone), finite, > 0
    :param options: every other hyper-parameter of ``FrameHypers`` by name
    """
    outer = positive_number("outer_cutoff", outer_cutoff)
    values: Dict[str, Any] = {}
    for name, value in options.items():
        if name == "n_prunings":
            values[name] = non_negative_int(name, value)
        elif name in ("weight_beta", "spread_penalty"):
            values[name] = finite_number(name, value)
            if values[name] < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        else:
            # widths, thresholds and beta: all strictly positive
            values[name] = positive_number(name, value)
    if values["cutoff_width"] >= outer:
        raise ValueError(
            f"cutoff_width ({values['cutoff_width']}) must be smaller than "
            f"outer_cutoff ({outer})"
        )
    if not values["spread_width"] < values["spread_start"] < 1.0:
        raise ValueError(
            "spread_start must lie between spread_width and 1 (sin^2 of an angle), "
            f"got spread_start={values['spread_start']}, "
            f"spread_width={values['spread_width']}"
        )
    low = values["spread_start"] - values["spread_width"]
    if not low < values["spread_penalty_end"] <= 1.0:
        raise ValueError(
            "spread_penalty_end must lie above spread_start - spread_width and at "
            f"most at 1 (sin^2 of an angle), got {values['spread_penalty_end']}"
        )
    if values["prune_threshold"] + values["prune_width"] > 1.0 + 1e-12:
        raise ValueError(
            "prune_threshold + prune_width must be at most 1 (the best frame must "
            f"survive pruning), got {values['prune_threshold']} + "
            f"{values['prune_width']}"
        )
    return FrameHypers(outer_cutoff=outer, **values)


def check_backbone(backbone: Backbone, mode: str) -> None:
    """Refuse a backbone the ``mode`` cannot symmetrize correctly.

    The local mode evaluates the backbone on cut-out clusters and keeps the
    centre's *per-atom* output, so it needs: a finite ``interaction_range``, no
    neighbour list reaching beyond it, every output computable per atom (a
    per-system output would count the whole cluster for every atom), and no custom
    inputs (the clusters carry none).
    """
    if mode != "local":
        return
    interaction_range = backbone.interaction_range
    if not math.isfinite(interaction_range):
        raise ValueError(
            "mode='local' needs a backbone with a finite interaction_range "
            "(use mode='whole')"
        )
    for name, output in backbone.outputs.items():
        if not per_atom(output):
            raise ValueError(
                f"mode='local' needs per-atom outputs, but the backbone's '{name}' is "
                f"'{output.sample_kind}' only (use mode='whole')"
            )
    if backbone.largest_cutoff > interaction_range:
        raise ValueError(
            f"mode='local' cuts out the backbone's interaction_range "
            f"({interaction_range}), but it requests a neighbour list up to "
            f"{backbone.largest_cutoff} (use mode='whole')"
        )
    if len(backbone.inputs) > 0:
        raise ValueError(
            "mode='local' cannot pass custom inputs to the backbone "
            f"({', '.join(backbone.inputs)}); use mode='whole'"
        )


def auxiliary_outputs(auxiliary: Backbone, backbone: Backbone, mode: str) -> List[str]:
    """The outputs an explicit auxiliary model provides; refuse one that cannot
    stand in for ``backbone`` everywhere.

    It must share the length unit and dtype, know every atomic type of the
    backbone, predict at least one backbone output, in the backbone's unit, and give
    those outputs per atom wherever the wrapper may ask (always in local mode,
    where the backbone declares them per atom in whole mode).
    """
    if auxiliary.capabilities.length_unit != backbone.capabilities.length_unit:
        raise ValueError(
            "auxiliary must use the backbone's length unit "
            f"('{backbone.capabilities.length_unit}'), got "
            f"'{auxiliary.capabilities.length_unit}'"
        )
    if auxiliary.dtype != backbone.dtype:
        raise ValueError(
            f"auxiliary must use the backbone's dtype ({backbone.capabilities.dtype}), "
            f"got {auxiliary.capabilities.dtype}"
        )
    missing = sorted(
        set(backbone.capabilities.atomic_types)
        - set(auxiliary.capabilities.atomic_types)
    )
    if missing:
        raise ValueError(
            f"auxiliary does not know the atomic types {missing} of the backbone"
        )
    outputs = backbone.outputs
    shared = [name for name in auxiliary.outputs if name in outputs]
    for name in shared:
        unit, wanted = auxiliary.outputs[name].unit, outputs[name].unit
        if unit != wanted:
            raise ValueError(
                f"auxiliary gives '{name}' in '{unit}', the backbone in '{wanted}'"
            )
    if len(shared) == 0:
        raise ValueError(
            f"auxiliary predicts none of the backbone's outputs ({', '.join(outputs)})"
        )
    for name in shared:
        needed = mode == "local" or per_atom(outputs[name])
        if needed and not per_atom(auxiliary.outputs[name]):
            raise ValueError(
                f"auxiliary gives '{name}' per system only, but the {mode} mode "
                "asks for it per atom"
            )
    return shared
