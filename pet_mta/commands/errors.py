"""``pet-mta errors MODEL.pt DATA.xyz``: MAE and RMSE of an exported model on data."""

import argparse

from .arguments import frame_selection, input_file


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "errors",
        help="energy/forces/stress errors of an exported model on labelled data",
        description=__doc__,
    )
    parser.add_argument("model", type=input_file, help="exported model (.pt)")
    parser.add_argument(
        "data", type=input_file, help="labelled structures (energy, forces, stress)"
    )
    parser.add_argument(
        "--index",
        type=frame_selection,
        default=":",
        help="frames to use, in ASE's syntax (':' is all, '0:10', '-1')",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: the model's first)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metatomic_ase import MetatomicCalculator

    from ..metrics import prediction_errors
    from ..wrappers.loading import load_file
    from .inputs import read_structures

    frames = read_structures(args.data, args.index)
    calculator = MetatomicCalculator(load_file(args.model), device=args.device)
    try:
        errors = prediction_errors(frames, calculator)
    except ValueError as error:  # no labels, NaN geometry: name the file
        selection = "" if args.index == ":" else f" (--index {args.index})"
        raise ValueError(f"'{args.data}'{selection}: {error}") from error
    print(f"{len(frames)} structures from {args.data}")
    for name, (mae, rmse, unit) in errors.items():
        print(f"  {name:<16s} MAE {mae:10.3f}   RMSE {rmse:10.3f}   {unit}")
    return 0
