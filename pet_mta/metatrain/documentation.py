"""
pet_mta
=======

The Point Edge Transformer of :mod:`pet_mta` trained through metatrain's ``mtt``
command line. Hyper-parameter names and defaults are those of metatrain's ``pet``
architecture, so an options file written for ``name: pet`` trains after changing the
name to ``pet_mta``. The exported model is a plain :class:`pet_mta.PET` (energy with
forces and stress through autograd, extra scalar and Cartesian-vector targets, per
atom or per system, the ``feature`` output and last-layer features).

Features of metatrain's PET that pet_mta does not implement (``zbl``,
``long_range``, ``system_conditioning``, adaptive cutoffs, LoRA fine-tuning) are
accepted at their default value only; asking for them is an error, never silently
ignored. Baselines and target scales are stored inside the exported model; a target
scale is one number per target (no per-species scales).

{{SECTION_INSTALLATION}}

{{SECTION_DEFAULT_HYPERS}}
"""

import types
from typing import Any, Dict, List, Literal, Optional, Tuple

from metatrain.composition.documentation import FixedCompositionWeights
from metatrain.scaler.documentation import FixedScalerWeights
from metatrain.utils.hypers import init_with_defaults
from metatrain.utils.long_range import LongRangeHypers
from metatrain.utils.loss import LossSpecification
from pydantic import Field
from typing_extensions import Annotated, NotRequired, TypedDict

from ..hypers import MODEL_HYPERS, Hyper

#: metatrain's form (type, default) of the keys kept for ``pet`` options files where
#: it differs from the table: ``long_range`` is a ``LongRangeHypers`` dict there, which
#: pet_mta accepts while ``enable`` is false (the table's ``null`` means the same)
METATRAIN_FORMS: Dict[str, Tuple[Any, Any]] = {
    "long_range": (LongRangeHypers, init_with_defaults(LongRangeHypers)),
}


def field_type(hyper: Hyper) -> Any:
    """The annotation of ``hyper`` in :class:`ModelHypers`: its type, a ``Literal``
    of the choices for strings, or its :data:`METATRAIN_FORMS` type."""
    if hyper.name in METATRAIN_FORMS:
        return METATRAIN_FORMS[hyper.name][0]
    if hyper.type is str and hyper.choices:
        return Literal[hyper.choices]
    return hyper.type


def field_default(hyper: Hyper) -> Any:
    """The default of ``hyper`` in :class:`ModelHypers`."""
    if hyper.name in METATRAIN_FORMS:
        return METATRAIN_FORMS[hyper.name][1]
    return hyper.default


def field_description(hyper: Hyper) -> str:
    """The documentation of ``hyper`` in :class:`ModelHypers` (the table's, with the
    unit of lengths)."""
    if hyper.unit == "length":
        return f"{hyper.doc} (in the dataset's length unit)"
    return hyper.doc


def model_hypers_class(table: List[Hyper]) -> type:
    """``ModelHypers`` as metatrain reads it: a ``TypedDict`` whose class attributes
    are the defaults, one field per entry of ``table``, documented by a pydantic
    ``Field`` description (shown by metatrain's options schema)."""
    annotations: Dict[str, Any] = {}
    namespace: Dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": "ModelHypers",
        "__doc__": "Model hyper-parameters, built from :data:`pet_mta.hypers."
        "MODEL_HYPERS` (see :mod:`pet_mta.hypers`).",
        "__annotations__": annotations,
    }
    for hyper in table:
        annotations[hyper.name] = Annotated[
            field_type(hyper), Field(description=field_description(hyper))
        ]
        namespace[hyper.name] = field_default(hyper)
    return types.new_class(
        "ModelHypers", (TypedDict,), {}, lambda body: body.update(namespace)
    )


ModelHypers = model_hypers_class(MODEL_HYPERS)


class NoFinetuneHypers(TypedDict):
    """No fine-tuning: train from scratch (or restart)."""

    read_from: None = None
    """``null``: no fine-tuning; the other keys are then ignored."""
    method: NotRequired[Any]
    config: NotRequired[Any]
    inherit_heads: NotRequired[Any]


class FinetuneHypers(TypedDict):
    """Fine-tune a pet_mta checkpoint on the training set of this run."""

    read_from: str
    """Path of the ``.ckpt`` file to start from."""
    method: Literal["full", "heads", "lora"] = "full"
    """``full``: train every weight; ``heads``: train only the read-out heads of
    every target (the transformer is frozen); ``lora``: train only low-rank
    adapters of the attention projections (exported merged into the weights)."""
    config: NotRequired[Any]
    """``lora``: ``{rank: 4, alpha: 8, target_modules: [qkv, out]}`` (the update
    ``B A`` is multiplied by ``alpha / rank``; metatrain's ``input_linear`` and
    ``output_linear`` name ``qkv`` and ``out``). Unused by ``full`` and ``heads``."""
    inherit_heads: dict[str, str] = {}
    """``{new target: existing target}``: start the heads of a new target from a
    copy of an existing target's heads instead of random weights."""


class TrainerHypers(TypedDict):
    """Training hyper-parameters; names and meanings follow metatrain's ``pet``."""

    distributed: NotRequired[bool]
    """Data-parallel training (torch DDP) over the processes of the launcher; when
    unset, enabled automatically under more than one SLURM task."""
    distributed_port: int = 39591
    """Port used by the processes of a distributed run to talk to each other."""
    batch_size: int = 16
    """Structures per optimisation step (per process in distributed runs)."""
    num_epochs: int = 1000
    """Number of passes over the training set."""
    warmup_fraction: float = 0.01
    """Fraction of all optimisation steps spent ramping the learning rate up
    linearly from zero; the rest follows a cosine decay to zero."""
    learning_rate: float = 1e-4
    """Peak learning rate of Adam/AdamW."""
    weight_decay: Optional[float] = None
    """``null``: Adam; a number: AdamW with this decoupled weight decay."""
    log_interval: int = 1
    """Log training metrics every this many epochs (validation: every epoch)."""
    checkpoint_interval: int = 100
    """Write ``model_<epoch>.ckpt`` every this many epochs."""
    atomic_baseline: FixedCompositionWeights | str = {}
    """Per-species baselines. By default fitted by least squares on the training
    set for every scalar target; ``{target: value}`` or
    ``{target: {Z: value}}`` fixes some of them; a path to a composition-model
    checkpoint loads them all. Stored inside the exported model."""
    scale_targets: bool = True
    """Learn targets divided by a fitted scale, stored inside the exported model:
    the root-mean-square per-atom value after the baseline, or, for an energy
    trained with forces, the mean absolute force component times 1 Å when that is
    larger (otherwise energies drift while forces are fitted on data whose energies
    per atom vary little, such as molecular clusters)."""
    refit_baseline: bool = False
    """After every epoch, refit the per-species offsets of the scalar targets and
    add them to the baseline: the least-squares shift of the per-atom residuals of
    the training structures (all of them up to 1,000, a fixed random tenth but at
    least 1,000 beyond), in their own orientation, from one forward pass without
    gradients (+14-27 % CPU per epoch on small sets). Forces do not constrain these
    offsets, so energies can wander from epoch to epoch while forces are fitted;
    the refit stops that (HEA with 100 structures, four seeds: energies 11 % and
    forces 7 % better), but methane with 500 structures lost 11-18 % in energies
    on two seeds of three and water clusters with 100 structures 24 % in forces on
    one seed of two, hence off by default. Baselines fixed by ``atomic_baseline``
    are kept, and so are all baselines when fine-tuning."""
    fixed_scaling_weights: FixedScalerWeights | str = {}
    """``{target: scale}`` fixes the scale of some targets instead of fitting it
    (a single number per target; per-species scales are not supported)."""
    per_structure_targets: list[str] = []
    """Targets whose loss and errors are computed per structure instead of per
    atom."""
    num_workers: Optional[int] = None
    """Processes for data loading; chosen automatically when ``null``."""
    log_mae: bool = True
    """Log the mean absolute error next to the root-mean-square error."""
    log_separate_blocks: bool = False
    """Log the errors of every block of multi-block targets separately."""
    best_model_metric: Literal["rmse_prod", "mae_prod", "loss"] = "mae_prod"
    """Validation metric that selects the model kept at the end: the product of
    the RMSEs (or MAEs) of all targets and gradients, or the validation loss."""
    grad_clip_norm: float = 1.0
    """Gradients are rescaled so that their global norm is at most this value."""
    ema_decay: Optional[float] = None
    """``null``: no averaging; a number in [0, 1): validation, the best-model rule,
    export and fine-tuning use an exponential moving average of the weights,
    updated after every optimisation step with this decay (after a warm-up of
    ``(1 + t) / (10 + t)`` at step ``t``); the optimiser keeps stepping the live
    weights, and ``--restart`` continues both. With 0.99 it smoothed validation but
    only moved the exported epoch: methane with 250 structures gained on three
    seeds of three (forces 0.92x ``pet``), methane with 500 lost on two of three,
    HEA with 100 structures on two of two (the average lags at the end of a short
    run), water was unchanged, the methane dipole gained 7 %; hence off by
    default."""
    loss: str | dict[str, LossSpecification | str] = "mse"
    """Loss function(s) and their weights, per target and gradient, as for every
    metatrain architecture."""
    max_atoms_per_batch: Optional[int] = None
    """If set, batches are packed up to this number of atoms instead of holding
    ``batch_size`` structures."""
    min_atoms_per_batch: int = 0
    """With ``max_atoms_per_batch``: drop batches with fewer atoms than this."""
    finetune: NoFinetuneHypers | FinetuneHypers = {
        "read_from": None,
        "method": "full",
        "config": {},
        "inherit_heads": {},
    }
    """Start from the weights of an existing pet_mta checkpoint (see
    :class:`FinetuneHypers`)."""
