"""``pet-mta symmetrize IN.pt -o OUT.pt``: exact ECSE symmetrization of any exported
metatomic model."""

import argparse

from ..wrappers.ecse.symmetrized import FRAME_DEFAULTS, ROTATION_AVERAGE
from .arguments import (
    input_directory,
    input_file,
    output_file,
    positive_float,
    positive_int,
)

AUXILIARY_KEYWORDS = (ROTATION_AVERAGE, "none")


def auxiliary_model(text: str) -> str:
    """``rotation-average``, ``none`` or an existing model file."""
    return text if text in AUXILIARY_KEYWORDS else input_file(text)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "symmetrize",
        help="make an exported metatomic model exactly rotation-equivariant (ECSE)",
        description=(
            "Wrap an exported metatomic model (any architecture) with the Equivariant "
            "Coordinate System Ensemble and save the result as a new exported model."
        ),
    )
    parser.add_argument(
        "model", type=input_file, help="exported model to symmetrize (.pt)"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=output_file, help="where to save (.pt)"
    )
    parser.add_argument(
        "--mode",
        choices=["auto", "whole", "local"],
        default="auto",
        help="auto (default): at every call, whole mode for non-periodic systems "
        "of at most --whole-max-atoms atoms, local mode otherwise; "
        "whole: frames pooled over the structure, each rotating all of it (cheap "
        "for molecules, cost and memory N^2 in bulk); local: per-atom frames on "
        "cut-out receptive fields, cost and memory linear in N",
    )
    parser.add_argument(
        "--whole-max-atoms",
        type=positive_int,
        default=32,
        help="largest non-periodic system that --mode auto treats in whole mode",
    )
    parser.add_argument(
        "--auxiliary",
        type=auxiliary_model,
        default=ROTATION_AVERAGE,
        help="for degenerate environments (no well-spread pair of neighbours): an "
        "exported, exactly invariant model (e.g. a distance-only PET), "
        "'rotation-average' (the model's energies averaged over a Lebedev grid of "
        "rotations, nearly invariant) or 'none' (they fade to zero)",
    )
    parser.add_argument(
        "--aux-grid",
        type=positive_int,
        default=7,
        help="Lebedev grid order of the rotation-average auxiliary",
    )
    parser.add_argument(
        "--inversion",
        action="store_true",
        help="add mirrored frames: exact O(3) instead of SO(3) (twice the cost)",
    )
    parser.add_argument(
        "--outer-cutoff",
        type=positive_float,
        default=None,
        help="radius of the neighbours defining frames (default: the model's "
        "largest neighbour-list cutoff, at most 10)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="rotated copies per model call",
    )
    parser.add_argument(
        "--low-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="local mode: free every batch's autograd graph as soon as it is "
        "evaluated: forces, stress and per-atom energies stay exact, but there are "
        "NO second derivatives (no training through the wrapper). Default: on "
        "whenever every requested output is a single scalar (energies); "
        "--no-low-memory keeps every graph (needed to train through ECSE; memory "
        "grows with frames x atoms, GBs for a few dozen atoms); --low-memory "
        "forces it (other outputs are then an error)",
    )
    parser.add_argument(
        "--extensions",
        type=input_directory,
        default=None,
        help="directory of the TorchScript extensions of the input model",
    )
    for name, default in FRAME_DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            help="ECSE frame hyper-parameter (see the ECSE documentation)",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..wrappers.ecse import Symmetrized
    from ..wrappers.loading import load_file
    from .inputs import save_model

    model = load_file(args.model, args.extensions)
    auxiliary = args.auxiliary
    if auxiliary == "none":
        auxiliary = None
    elif auxiliary != ROTATION_AVERAGE:
        auxiliary = load_file(args.auxiliary, args.extensions)
    frame_hypers = {name: getattr(args, name) for name in FRAME_DEFAULTS}
    symmetrized = Symmetrized(
        model,
        auxiliary=auxiliary,
        mode=args.mode,
        inversion=args.inversion,
        outer_cutoff=args.outer_cutoff,
        batch_size=args.batch_size,
        aux_grid=args.aux_grid,
        low_memory=args.low_memory,
        whole_max_atoms=args.whole_max_atoms,
        **frame_hypers,
    )
    save_model(symmetrized.export(), args.output)
    mode = symmetrized.info.mode
    print(f"saved ECSE-symmetrized ({mode} mode) model to {args.output}")
    return 0
