"""Versions of pet_mta checkpoints and how to upgrade old ones.

A checkpoint records ``model_ckpt_version`` and ``trainer_ckpt_version``. When a
change makes old checkpoints unreadable, bump the version in the class and add a
function ``checkpoint -> None`` (editing it in place) to the matching list below:
``MODEL_UPGRADES[v]`` upgrades a model checkpoint from version ``v + 1`` to
``v + 2`` (the first entry upgrades version 1 to 2), and likewise for the trainer.

Version history
---------------
- model 1, trainer 1: first release.
- model 2: edge tokens see lengths in Å instead of lengths divided by the cutoff;
  the upgrade divides the geometry embedding weights by the cutoff, so upgraded
  models predict exactly what they predicted before.
- model 3: the neighbour's species enters the tokens of every layer, not only the
  first (``layer_species``); the upgrade adds these embeddings as zeros, so
  upgraded models predict exactly what they predicted before.
- model 4: the ``edge_embedding`` hyper-parameter; the upgrade sets it to
  ``cartesian``, what every earlier model used.
- model 5: the ``central_stream`` hyper-parameter; the upgrade sets it to
  ``False``, what every earlier model used.
- model 6: the ``radial_basis`` hyper-parameter (Gaussians of the edge lengths in
  the edge tokens); the upgrade sets it to 0, what every earlier model used.
- model 7: the ``edge_stream`` hyper-parameter (edge tokens see their own output of
  the layer before); the upgrade sets it to ``False``, what every earlier model
  used (and still the default).
- trainer 2: the validation errors of the best and of the last epoch are stored
  (``best_validation``, ``last_validation``) to report the best-model choice; the
  upgrade sets them to ``None`` (nothing to compare with).
"""

import glob
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..hypers import legacy_value

Checkpoint = Dict[str, Any]


def _model_v1_to_v2(checkpoint: Checkpoint) -> None:
    """Fold the old ``1 / cutoff`` input factor into the geometry weights."""
    cutoff = float(checkpoint["model_data"]["model_hypers"]["cutoff"])
    for key in ("model_state_dict", "best_model_state_dict"):
        state = checkpoint.get(key)
        if state is None:
            continue
        for name in list(state):
            if name.endswith("tokenizer.geometry.weight"):
                state[name] = state[name] / cutoff


def _model_v2_to_v3(checkpoint: Checkpoint) -> None:
    """Add the per-layer neighbour species embeddings, as zeros."""
    for key in ("model_state_dict", "best_model_state_dict"):
        state = checkpoint.get(key)
        if state is None:
            continue
        names = [n for n in state if n.endswith("neighbor_embedding.weight")]
        for name in names:
            table = state[name]
            layers = sum(
                1
                for n in state
                if n.startswith(name[: -len("neighbor_embedding.weight")])
                and n.endswith("tokenizer.geometry.weight")
            )
            prefix = name[: -len("neighbor_embedding.weight")]
            state[prefix + "layer_species.weight"] = table.new_zeros(
                (layers - 1) * table.shape[0], table.shape[1]
            )


def _model_v3_to_v4(checkpoint: Checkpoint) -> None:
    """Earlier models all embedded Cartesian edge vectors."""
    checkpoint["model_data"]["model_hypers"].setdefault(
        "edge_embedding", legacy_value("edge_embedding")
    )


def _model_v4_to_v5(checkpoint: Checkpoint) -> None:
    """Earlier models had no central stream."""
    checkpoint["model_data"]["model_hypers"].setdefault(
        "central_stream", legacy_value("central_stream")
    )


def _model_v5_to_v6(checkpoint: Checkpoint) -> None:
    """Earlier models had no radial basis in their edge tokens."""
    checkpoint["model_data"]["model_hypers"].setdefault(
        "radial_basis", legacy_value("radial_basis")
    )


def _model_v6_to_v7(checkpoint: Checkpoint) -> None:
    """Earlier models had no edge stream."""
    checkpoint["model_data"]["model_hypers"].setdefault(
        "edge_stream", legacy_value("edge_stream")
    )


MODEL_UPGRADES: List[Callable[[Checkpoint], None]] = [
    _model_v1_to_v2,
    _model_v2_to_v3,
    _model_v3_to_v4,
    _model_v4_to_v5,
    _model_v5_to_v6,
    _model_v6_to_v7,
]


def _trainer_v1_to_v2(checkpoint: Checkpoint) -> None:
    """No validation errors were stored before version 2."""
    checkpoint.setdefault("best_validation", None)
    checkpoint.setdefault("last_validation", None)


def _trainer_v2_to_v3(checkpoint: Checkpoint) -> None:
    """Trainings before version 3 did not refit the per-species offsets after every
    epoch: a restarted one goes on without (``refit_baseline: false``)."""
    hypers = checkpoint.get("train_hypers")
    if isinstance(hypers, dict):
        hypers.setdefault("refit_baseline", False)


def _trainer_v3_to_v4(checkpoint: Checkpoint) -> None:
    """Trainings before version 4 did not average the weights (``ema_decay``)."""
    checkpoint.setdefault("ema_state_dict", None)
    hypers = checkpoint.get("train_hypers")
    if isinstance(hypers, dict):
        hypers.setdefault("ema_decay", None)


TRAINER_UPGRADES: List[Callable[[Checkpoint], None]] = [
    _trainer_v1_to_v2,
    _trainer_v2_to_v3,
    _trainer_v3_to_v4,
]


def upgrade(
    checkpoint: Checkpoint,
    kind: str,
    current: int,
    steps: List[Callable[[Checkpoint], None]],
) -> Checkpoint:
    """Bring ``checkpoint[f"{kind}_ckpt_version"]`` up to ``current``.

    :param kind: ``"model"`` or ``"trainer"``
    :param steps: upgrade functions, ``steps[v - 1]`` goes from ``v`` to ``v + 1``
    :raises RuntimeError: for a version with no upgrade path (newer than
        ``current``, or unknown)
    """
    key = f"{kind}_ckpt_version"
    version = checkpoint[key]
    while isinstance(version, int) and 1 <= version < current:
        if version - 1 >= len(steps):
            break
        steps[version - 1](checkpoint)
        version += 1
        checkpoint[key] = version
    if version != current:
        raise RuntimeError(
            f"Unable to upgrade the checkpoint: the checkpoint is using {kind} "
            f"version {version}, while the current {kind} version is {current}."
        )
    return checkpoint


def newest_loadable(directory: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest pet_mta checkpoint in ``directory`` that loads, to restart from.

    Looks where ``mtt train`` writes them (``outputs/<date>/<time>/*.ckpt``) and in
    ``directory`` itself, newest first by modification time, and skips files that
    do not load (truncated by a crash or a full disk) or are not pet_mta's.

    :return: the path (``None`` if none loads) and ``(path, reason)`` of every
        newer file that was skipped
    """
    import torch

    pattern = [
        os.path.join(directory, "outputs", "*", "*", "*.ckpt"),
        os.path.join(directory, "*.ckpt"),
    ]
    paths = sorted(
        {path for p in pattern for path in glob.glob(p)},
        key=os.path.getmtime,
        reverse=True,
    )
    skipped: List[Tuple[str, str]] = []
    for path in paths:
        try:
            checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as error:  # any unreadable file is skipped, with its reason
            reason = str(error).strip().splitlines()
            skipped.append((path, reason[0] if reason else type(error).__name__))
            continue
        if not isinstance(checkpoint, dict):
            skipped.append((path, "not a checkpoint"))
        elif checkpoint.get("architecture_name") != "pet_mta":
            skipped.append((path, "not a pet_mta checkpoint"))
        else:
            return path, skipped
    return None, skipped
