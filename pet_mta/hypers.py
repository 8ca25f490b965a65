"""Every model hyper-parameter of PET, in one place.

:data:`MODEL_HYPERS` is the one table: names, defaults, types, units and meanings.
Everything else is derived from it: the defaults (:data:`DEFAULT_MODEL_HYPERS`), the
validation (:func:`resolve_hypers`), the documentation table (:func:`hypers_table`)
and metatrain's ``ModelHypers`` (:mod:`pet_mta.metatrain.documentation`, built from
this table when imported). A new hyper-parameter is one new :class:`Hyper` here.

Names and meanings follow metatrain's ``pet`` architecture wherever the same concept
exists, so an options file written for ``name: pet`` works after renaming the
architecture to ``pet_mta``. Lengths are in the model's length unit (Å by default).

A few keys exist only so that such options files are accepted: they describe features
of metatrain's PET that pet_mta does not implement (``zbl``, ``long_range``,
``system_conditioning``, adaptive cutoffs). Their default value is accepted; asking for
the feature raises a clear error instead of being silently ignored.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .checks import non_negative_int, positive_int, positive_number


@dataclass(frozen=True)
class Hyper:
    """One hyper-parameter.

    :param name: key in options files and keyword of :class:`pet_mta.PET`
    :param default: value when not given
    :param type: Python type of the value (``float``, ``int``, ``str``, ``bool``,
        ``Optional[int]``, ...); a ``str`` with ``choices`` is one of them
    :param unit: ``"length"`` for lengths (model length unit), ``""`` otherwise
    :param doc: one-line meaning (reStructuredText, shown in every documentation)
    :param choices: the only values pet_mta accepts, when not every value of
        ``type`` is (empty: any value of ``type``)
    :param legacy: ``(value,)`` for a hyper-parameter added after the first release:
        what every model written before it existed behaves as (read by
        :func:`with_legacy_values`); empty for the original ones
    :param check: the check of :mod:`pet_mta.checks` that every value must pass
        (sizes, counts, lengths), run by :func:`resolve_hypers`; ``None``: none
        beyond ``choices``
    """

    name: str
    default: Any
    type: Any
    unit: str
    doc: str
    choices: Tuple[Any, ...] = ()
    legacy: Tuple[Any, ...] = ()
    check: Optional[Callable[[str, Any], Any]] = None


MODEL_HYPERS: List[Hyper] = [
    Hyper(
        "cutoff",
        4.5,
        float,
        "length",
        "radius of the atomic environments (neighbour tokens)",
        check=positive_number,
    ),
    Hyper(
        "num_neighbors_adaptive",
        None,
        Optional[int],
        "",
        "not implemented (adaptive cutoff): must be null, the cutoff is fixed",
        (None,),
    ),
    Hyper(
        "adaptive_cutoff_method",
        "solver",
        str,
        "",
        "unused (no adaptive cutoff); accepted for `pet` options files",
        ("grid", "solver"),
    ),
    Hyper(
        "cutoff_function",
        "Bump",
        str,
        "",
        "shape of the switch: `Bump` (C-infinity) or `Cosine`",
        ("Cosine", "Bump"),
    ),
    Hyper(
        "cutoff_width",
        0.5,
        float,
        "length",
        "width of the smooth switch below `cutoff` that weighs attention and read-outs",
        check=positive_number,
    ),
    Hyper(
        "cutoff_width_adaptive",
        1.0,
        float,
        "length",
        "unused (no adaptive cutoff); accepted for `pet` options files",
    ),
    Hyper(
        "d_pet",
        128,
        int,
        "",
        "width of the edge tokens inside the transformers",
        check=positive_int,
    ),
    Hyper(
        "d_head",
        128,
        int,
        "",
        "width of the hidden layers of the read-out heads",
        check=positive_int,
    ),
    Hyper(
        "d_node",
        256,
        int,
        "",
        "width of the per-atom (node) features fed to the heads",
        check=positive_int,
    ),
    Hyper(
        "d_feedforward",
        256,
        int,
        "",
        "hidden width of the transformer feed-forward block",
        check=positive_int,
    ),
    Hyper(
        "num_heads",
        8,
        int,
        "",
        "attention heads per attention layer (must divide `d_pet`)",
        check=positive_int,
    ),
    Hyper(
        "num_attention_layers",
        2,
        int,
        "",
        "transformer blocks inside every GNN layer",
        check=positive_int,
    ),
    Hyper(
        "num_gnn_layers",
        2,
        int,
        "",
        "message-passing layers (edge j->i feeds edge i->j); the receptive field is "
        "this times `cutoff`",
        check=positive_int,
    ),
    Hyper(
        "normalization",
        "RMSNorm",
        str,
        "",
        "normalisation inside transformer blocks",
        ("RMSNorm", "LayerNorm"),
    ),
    Hyper(
        "activation",
        "SwiGLU",
        str,
        "",
        "activation of the transformer feed-forward block",
        ("SiLU", "SwiGLU"),
    ),
    Hyper(
        "attention_temperature",
        1.0,
        float,
        "",
        "attention logits are divided by this number",
        check=positive_number,
    ),
    Hyper(
        "transformer_type",
        "PreLN",
        str,
        "",
        "normalise before (`PreLN`) or after (`PostLN`) each sub-block",
        ("PreLN", "PostLN"),
    ),
    Hyper(
        "featurizer_type",
        "feedforward",
        str,
        "",
        "`feedforward`: read out after the last GNN layer; `residual`: read out after "
        "every GNN layer and sum (the original PET)",
        ("residual", "feedforward"),
    ),
    Hyper(
        "edge_embedding",
        "cartesian",
        str,
        "",
        "`cartesian`: tokens see (x, y, z, |r|) of every edge (PET); `distance`: only "
        "|r| (exactly rotation-invariant, e.g. the ECSE fallback model)",
        ("cartesian", "distance"),
        legacy=("cartesian",),
    ),
    Hyper(
        "radial_basis",
        8,
        int,
        "",
        "Gaussians of |r| (centres spread over [0, `cutoff`]) added to the geometry "
        "every edge token sees; 0: (x, y, z, |r|) alone, as in PET",
        legacy=(0,),
        check=non_negative_int,
    ),
    Hyper(
        "central_stream",
        False,
        bool,
        "",
        "every atom carries a `d_node`-wide state through the transformer blocks "
        "(contracted to its `d_pet` token for the attention, updated from the output "
        "with its own feed-forward block); false: the centre is a `d_pet` token",
        (True, False),
        legacy=(False,),
    ),
    Hyper(
        "edge_stream",
        False,
        bool,
        "",
        "the edge tokens of every GNN layer after the first also see their own output "
        "of the layer before (through weights of their own, zero at initialisation); "
        "false: only the geometry and the reverse edge's message",
        (True, False),
        legacy=(False,),
    ),
    # accepted for compatibility with metatrain's `pet` options files
    Hyper("zbl", False, bool, "", "not implemented: must be false", (False,)),
    Hyper(
        "long_range",
        None,
        Optional[dict],
        "",
        "not implemented: must stay disabled (`enable: false`)",
    ),
    Hyper(
        "system_conditioning",
        False,
        bool,
        "",
        "not implemented: must be false",
        (False,),
    ),
    Hyper("max_charge", 10, int, "", "unused (no system conditioning)"),
    Hyper("max_spin_multiplicity", 10, int, "", "unused (no system conditioning)"),
]

DEFAULT_MODEL_HYPERS: Dict[str, Any] = {h.name: h.default for h in MODEL_HYPERS}


def legacy_value(name: str) -> Any:
    """What models written before hyper-parameter ``name`` existed behave as."""
    for h in MODEL_HYPERS:
        if h.name == name and h.legacy:
            return h.legacy[0]
    raise KeyError(f"hyper-parameter '{name}' has no legacy value")


def with_legacy_values(hypers: Dict[str, Any]) -> Dict[str, Any]:
    """``hypers`` of a model written by an older pet_mta, completed in place with the
    :func:`legacy_value` of every hyper-parameter it predates; returns it."""
    for h in MODEL_HYPERS:
        if h.legacy:
            hypers.setdefault(h.name, h.legacy[0])
    return hypers


def resolve_hypers(**overrides: Any) -> Dict[str, Any]:
    """Merge ``overrides`` into the defaults and validate them.

    :raises ValueError: naming the hyper-parameter, for an unknown name, a value outside
        the allowed choices, a size that is not a positive integer, a length or
        temperature that is not a positive finite number, or sizes that cannot work
        together.
    """
    known = {h.name: h for h in MODEL_HYPERS}
    for name in overrides:
        if name not in known:
            raise ValueError(
                f"unknown PET hyper-parameter '{name}'; known ones are: "
                + ", ".join(sorted(known))
            )
    hypers = dict(DEFAULT_MODEL_HYPERS)
    hypers.update(overrides)

    for h in MODEL_HYPERS:
        if h.choices and hypers[h.name] not in h.choices:
            raise ValueError(
                f"hyper-parameter '{h.name}' = {hypers[h.name]!r} is not supported; "
                f"choose one of {list(h.choices)}"
            )
    long_range = hypers["long_range"]
    if long_range is not None and not isinstance(long_range, dict):
        raise ValueError(
            f"hyper-parameter 'long_range' must be null or a dict, got {long_range!r}"
        )
    if isinstance(long_range, dict) and long_range.get("enable", False):
        raise ValueError("long-range interactions are not implemented in pet_mta")

    for h in MODEL_HYPERS:
        if h.check is not None:
            hypers[h.name] = h.check(f"hyper-parameter '{h.name}'", hypers[h.name])
    if hypers["cutoff_width"] > hypers["cutoff"]:
        raise ValueError(
            f"hyper-parameter 'cutoff_width' ({hypers['cutoff_width']}) must not "
            f"exceed 'cutoff' ({hypers['cutoff']})"
        )
    if hypers["d_pet"] % hypers["num_heads"] != 0:
        raise ValueError(
            f"hyper-parameter 'd_pet' ({hypers['d_pet']}) must be divisible by "
            f"num_heads ({hypers['num_heads']})"
        )
    return hypers


# the accepted values of a hyper-parameter with a check, in words
CHECK_NAMES = {
    positive_int: "int >= 1",
    non_negative_int: "int >= 0",
    positive_number: "float > 0",
}


def type_name(hyper: Hyper) -> str:
    """``hyper``'s accepted values in words: its choices, its check, or its type."""
    if hyper.choices:
        return " or ".join(repr(c) for c in hyper.choices)
    if hyper.check is not None:
        return CHECK_NAMES[hyper.check]
    return getattr(hyper.type, "__name__", None) or str(hyper.type).replace(
        "typing.", ""
    )


def hypers_table() -> str:
    """The hyper-parameters as a reStructuredText table (used by the docs)."""
    rows = ["   * - name\n     - default\n     - values\n     - unit\n     - meaning"]
    for h in MODEL_HYPERS:
        rows.append(
            f"   * - ``{h.name}``\n     - ``{h.default!r}``\n     - {type_name(h)}\n"
            f"     - {h.unit or '-'}\n     - {h.doc}"
        )
    return ".. list-table::\n   :header-rows: 1\n\n" + "\n".join(rows) + "\n"
